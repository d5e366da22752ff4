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
from defectlib import run as runner

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
    assert nb["elapsed_s"] < 300, f"{path.name}: smoke profile took {nb['elapsed_s']:.0f} s"


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
