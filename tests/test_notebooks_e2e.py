"""Every notebooks/NN_*.ipynb, executed through the runner with the smoke profile.

One runner call executes all notebooks (two at a time); each notebook then gets its own test, so a
failure names the notebook, its failing cell and the error. New notebooks are covered as they
appear in notebooks/.
"""
from __future__ import annotations

from pathlib import Path

import json

import pytest

from defectlib import papers
from defectlib.course import run as runner
from defectlib.course.execute import child_env as runner_env

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = runner.discover(REPO / "notebooks") if (REPO / "notebooks").is_dir() else []
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    runner.main(["--profile", "smoke", "--jobs", "2", "--out", str(out), "--timeout", "480"])
    (run_dir,) = list(out.iterdir())
    return run_dir, json.loads((run_dir / "results.json").read_text())


def _entry(results, stem):
    return next(nb for nb in results["notebooks"] if nb["notebook"] == stem)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_with_smoke_profile(smoke_run, path):
    run_dir, results = smoke_run
    nb = _entry(results, path.stem)
    err = nb.get("error") or {}
    assert nb["status"] == "ok", (
        f"{path.name} {nb['status']} at cell {err.get('cell')}: {err.get('ename')}: "
        f"{err.get('evalue')}\n{err.get('source', '')}\n{err.get('traceback', '')}")
    executed = json.loads((run_dir / nb["executed"]).read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_records_honest_results(smoke_run, path):
    run_dir, results = smoke_run
    nb = _entry(results, path.stem)
    if nb["status"] != "ok":
        pytest.skip("notebook failed (see the test above)")
    own = nb["results"]
    assert own is not None, f"{path.name} wrote no results.json (call rec.save())"
    assert own["profile"] == "smoke" and own["seed"] == 0
    for m in own["metrics"]:
        assert m["dataset"], f"{path.name}: metric {m['name']} names no dataset"
        if m["dataset"] != "-":  # "-": a number no dataset produced (a parameter count)
            assert not m["real"], f"{path.name}: {m['name']} claims real data but none was given"
        if m["paper"]:
            papers.ref(m["paper"])  # raises KeyError naming the nearest keys
    assert path.stem in (run_dir / "report.md").read_text()


def test_same_seed_same_numbers(smoke_run, tmp_path, monkeypatch):
    """Runs are fixed-step and seeded: notebook 04 run again with seed 0 (alone this time, so under a
    different load, with the same thread count) gives every metric bit-identical."""
    run_dir, results = smoke_run
    stem = "04_synthetic_data"
    first = _entry(results, stem)
    if first["status"] != "ok":
        pytest.skip("notebook failed (see its own test)")
    first_env = runner_env(2)                   # the thread count the first run's 2 jobs got (cores // 2)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, first_env[var])
    runner.main(["--profile", "smoke", "--only", "04", "--out", str(tmp_path), "--timeout", "480"])
    (again_dir,) = list(tmp_path.iterdir())
    again = _entry(json.loads((again_dir / "results.json").read_text()), stem)
    values = lambda nb: {m["name"]: m["value"] for m in nb["results"]["metrics"]}  # noqa: E731
    a, b = values(first), values(again)
    assert a and a.keys() == b.keys()
    assert {k: (a[k], b[k]) for k in a if a[k] != b[k]} == {}


# the trained models each notebook's smoke run writes a last.pt for before the kill (the kill comes
# right after that many checkpoints; later models are trained by the resumed run)
KILL_AFTER = {"01": 2, "02": 2, "03": 1, "04": 2, "05": 1}


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2] in KILL_AFTER],
                         ids=[p.stem for p in NOTEBOOKS if p.name[:2] in KILL_AFTER])
def test_killed_and_resumed_gives_the_same_numbers(smoke_run, path, tmp_path, monkeypatch):
    """A notebook's kernel SIGKILLed right after a checkpoint (as a lost GPU node dies: no clean-up),
    then ``defectlib run --resume``: the models that had finished are loaded, the others trained, and
    every metric equals the uninterrupted run's, bit for bit (same machine, same thread count), but
    for the speed measurements (images/s: they measure the machine at that moment)."""
    from defectlib.course.reproduce import machine_dependent
    from defectlib.engine.checkpoint import KILL_AFTER_CHECKPOINTS
    _, results = smoke_run
    first = _entry(results, path.stem)
    if first["status"] != "ok":
        pytest.skip("notebook failed (see its own test)")
    first_env = runner_env(2)                   # the thread count the uninterrupted run's 2 jobs got
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, first_env[var])
    monkeypatch.setenv(KILL_AFTER_CHECKPOINTS, str(KILL_AFTER[path.name[:2]]))
    assert runner.main(["--profile", "smoke", "--only", path.name[:2], "--out", str(tmp_path), "--quiet",
                        "--timeout", "480"]) == 1
    (run_dir,) = list(tmp_path.iterdir())
    killed = _entry(json.loads((run_dir / "results.json").read_text()), path.stem)
    assert killed["status"] == "failed" and killed["results"] is None
    written = sorted((run_dir / path.stem / "checkpoints").rglob("last.pt"))
    assert len(written) == KILL_AFTER[path.name[:2]]
    monkeypatch.delenv(KILL_AFTER_CHECKPOINTS)
    assert runner.main(["--resume", str(run_dir), "--quiet", "--timeout", "480"]) == 0
    resumed = _entry(json.loads((run_dir / "results.json").read_text()), path.stem)
    assert resumed["status"] == "ok" and resumed["parameters"]["resume"] is True
    assert (run_dir / path.stem / "attempt-1.ipynb").is_file()       # the killed attempt, kept
    assert "--- resumed" in (run_dir / path.stem / "papermill.log").read_text()
    values = lambda nb: {m["name"]: m["value"] for m in nb["results"]["metrics"]  # noqa: E731
                         if not machine_dependent(m["name"], m.get("unit", ""))}
    a, b = values(first), values(resumed)
    assert a and a.keys() == b.keys()
    assert {k: (a[k], b[k]) for k in a if a[k] != b[k]} == {}
