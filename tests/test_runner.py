"""The papermill runner (defectlib.course.run, defectlib.course.execute) on tiny throwaway notebooks: one
passes, one fails."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from defectlib.course import execute
from defectlib.course import run as runner

PASS_CELLS = [
    "import json\nfrom defectlib.record import Recorder\n"
    "rec = Recorder(output_dir, '01_pass', profile, config={'epochs': 3}, seed=seed, "
    "device=device, data_root=data_root)",
    "rec.metric('phase5/AP50/crazing', 41.2, paper='danet/table3/phase5/crazing', "
    "dataset='NEU-DET', real=data_root is not None, unit='%')\n"
    "rec.note(json.dumps({'profile': profile, 'seed': seed, 'device': device, "
    "'data_root': data_root, 'output_dir': output_dir, 'dry_run': dry_run}))\n"
    "import os\nrec.note('cwd=' + os.getcwd())\n"
    "rec.save()",
]
FAIL_CELLS = ["x = 1", "raise ValueError('boom from the failing notebook')", "print('never')"]


# --- fast unit tests (no kernel) ------------------------------------------------------------------
def test_parse_only():
    assert runner.parse_only("01,3") == ["01", "03"]
    assert runner.parse_only("02 04") == ["02", "04"]
    assert runner.parse_only(None) is None and runner.parse_only("") is None
    with pytest.raises(ValueError, match="notebook numbers"):
        runner.parse_only("danet")


def test_discover_orders_filters_and_names_missing(tmp_path):
    for name in ("02_b.ipynb", "00_a.ipynb", "01_c.ipynb", "notes.ipynb", "1_bad.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in runner.discover(tmp_path)] == ["00_a.ipynb", "01_c.ipynb", "02_b.ipynb"]
    assert [p.name for p in runner.discover(tmp_path, ["02", "00"])] == ["00_a.ipynb", "02_b.ipynb"]
    with pytest.raises(FileNotFoundError, match="no notebook numbered 07"):
        runner.discover(tmp_path, ["07"])


def test_new_run_dir_never_reuses_a_folder(tmp_path):
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    first = runner.new_run_dir(tmp_path, "smoke", now=now)
    (first / "keep.txt").write_text("x")
    second = runner.new_run_dir(tmp_path, "smoke", now=now)
    dry = runner.new_run_dir(tmp_path, "paper", dry_run=True, now=now)
    assert first.name == "20260102T030405Z-smoke"
    assert second.name == "20260102T030405Z-smoke-2"
    assert dry.name == "20260102T030405Z-paper-dryrun"
    assert (first / "keep.txt").read_text() == "x" and not any(second.iterdir())


def test_detect_gpus_from_env():
    assert execute.detect_gpus({"CUDA_VISIBLE_DEVICES": "0,2"}) == ["0", "2"]
    assert execute.detect_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert execute.detect_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []


def test_child_env_controls_data_backend_and_threads(monkeypatch):
    monkeypatch.setenv("DEFECTLIB_DATA", "/somewhere")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = execute.child_env(jobs=2, cpu_parallel=True)
    assert "DEFECTLIB_DATA" not in env and "MPLBACKEND" not in env
    assert int(env["OMP_NUM_THREADS"]) >= 1
    assert "OMP_NUM_THREADS" not in execute.child_env(jobs=1, cpu_parallel=True)


def test_papermill_command_injects_parameters(tmp_path, make_notebook):
    nb = make_notebook(tmp_path / "01_x.ipynb", ["pass"])
    job = execute.Job(nb, tmp_path / "run", {"profile": "cpu", "data_root": None, "seed": 3})
    cmd = execute.papermill_command(job, kernel="gpu-kernel", cwd=tmp_path)
    params = json.loads(cmd[cmd.index("-y") + 1])
    assert params == {"profile": "cpu", "data_root": None, "seed": 3}
    assert cmd[cmd.index("-k") + 1] == "gpu-kernel"
    assert cmd[cmd.index("--cwd") + 1] == str(tmp_path)
    assert execute.papermill_command(job, None, tmp_path)[-1] == "python3"  # from the notebook


def test_failure_from_notebook_points_at_the_failing_cell(tmp_path):
    import nbformat
    nb = nbformat.v4.new_notebook()
    injected = nbformat.v4.new_code_cell("seed = 1")
    injected.metadata["tags"] = ["injected-parameters"]
    bad = nbformat.v4.new_code_cell("y = 2\nraise KeyError('k')", execution_count=3)
    bad.outputs = [nbformat.v4.new_output("error", ename="KeyError", evalue="'k'",
                                          traceback=["\x1b[0;31mKeyError\x1b[0m: 'k'"])]
    nb.cells = [nbformat.v4.new_markdown_cell("x"), injected, nbformat.v4.new_code_cell("a=1"), bad]
    nbformat.write(nb, tmp_path / "e.ipynb")
    err = execute.failure_from_notebook(tmp_path / "e.ipynb")
    assert err["cell"] == 3 and err["execution_count"] == 3  # injected cell not counted
    assert err["ename"] == "KeyError" and "raise KeyError" in err["source"]
    assert "\x1b" not in err["traceback"]


def test_parse_seeds():
    assert runner.parse_seeds("0,1,2") == [0, 1, 2] and runner.parse_seeds("7") == [7]
    assert runner.parse_seeds(3) == [3]
    for bad in ("a", "1,1", ""):
        with pytest.raises(ValueError, match="--seed"):
            runner.parse_seeds(bad)


def test_bad_options_are_clear_errors(tmp_path, capsys, make_notebook):
    make_notebook(tmp_path / "01_a.ipynb", ["pass"])
    with pytest.raises(SystemExit) as exc:
        runner.main(["--notebooks", str(tmp_path), "--only", "03", "--out", str(tmp_path / "r")])
    assert exc.value.code == 2 and "no notebook numbered 03" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        runner.main(["--notebooks", str(tmp_path), "--data-root", str(tmp_path / "nope")])
    assert "is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# --- the real thing: papermill kernels (a few seconds) --------------------------------------------
@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, make_notebook):
    base = tmp_path_factory.mktemp("runner")
    nbs, out, data = base / "notebooks", base / "runs", base / "mydata"
    data.mkdir()
    make_notebook(nbs / "01_pass.ipynb", PASS_CELLS)
    make_notebook(nbs / "02_fail.ipynb", FAIL_CELLS)
    common = ["--notebooks", str(nbs), "--out", str(out), "--quiet"]
    rc1 = runner.main(common + ["--jobs", "2", "--profile", "paper", "--dry-run", "--seed", "7",
                                "--data-root", str(data), "--device", "cpu"])
    first = sorted(out.iterdir())
    snapshot = {p: p.read_bytes() for p in first[0].rglob("*") if p.is_file()}
    rc2 = runner.main(common + ["--only", "01", "--profile", "paper", "--dry-run"])
    return {"rc1": rc1, "rc2": rc2, "out": out, "nbs": nbs, "data": data, "snapshot": snapshot,
            "first": first[0]}


def test_failing_notebook_gives_nonzero_exit_and_others_still_run(two_runs):
    run = two_runs["first"]
    assert two_runs["rc1"] == 1
    assert (run / "01_pass.ipynb").is_file() and (run / "02_fail.ipynb").is_file()
    results = json.loads((run / "results.json").read_text())
    status = {nb["notebook"]: nb["status"] for nb in results["notebooks"]}
    assert status == {"01_pass": "ok", "02_fail": "failed"}
    assert results["failed"] == ["02_fail"]
    err = results["notebooks"][1]["error"]
    assert err["cell"] == 4 and err["ename"] == "ValueError"  # markdown, parameters, x = 1, raise
    assert "boom from the failing notebook" in err["evalue"]
    executed = json.loads((run / "02_fail.ipynb").read_text())
    assert not any(o.get("text") == "never\n" for c in executed["cells"] for o in c.get("outputs", []))


def test_parameters_are_injected(two_runs):
    run = two_runs["first"]
    own = json.loads((run / "01_pass" / "results.json").read_text())
    injected = json.loads(own["notes"][0])
    assert injected == {"profile": "paper", "seed": 7, "device": "cpu", "dry_run": True,
                        "data_root": str(two_runs["data"].resolve()),
                        "output_dir": str((run / "01_pass").resolve())}
    assert own["notes"][1] == "cwd=" + str(two_runs["nbs"].resolve())  # runs inside notebooks/


def test_report_has_paper_number_dataset_and_failure(two_runs):
    text = (two_runs["first"] / "report.md").read_text()
    assert "| phase5/AP50/crazing | 41.20 % | 51.42 % | -10.22 | NEU-DET (real) |" in text
    assert "## Failures" in text and "ValueError: boom from the failing notebook" in text
    assert "cell 4" in text and "raise ValueError" in text
    assert "dry run" in text


def test_datasets_missing_from_the_data_root_are_named_per_notebook(two_runs):
    # --data-root holds none of the datasets: each notebook says which stand-ins it fell back to
    results = json.loads((two_runs["first"] / "results.json").read_text())
    assert {nb["notebook"]: nb["standins"] for nb in results["notebooks"]} == {
        "01_pass": ["neu-det"], "02_fail": ["severstal", "neu-seg", "mtd"]}
    text = (two_runs["first"] / "report.md").read_text()
    assert "**not in data root: neu-det**" in text
    assert "> **Not in the data root** (" in text and "severstal, neu-seg, mtd. This notebook used" in text
    second = json.loads((sorted(two_runs["out"].iterdir())[1] / "results.json").read_text())
    assert second["notebooks"][0]["standins"] == []  # no --data-root: stand-ins are the default


def test_progress_line_names_missing_datasets(tmp_path, make_notebook, capsys):
    nb = make_notebook(tmp_path / "nbs" / "04_x.ipynb", ["pass"])
    data = tmp_path / "data"
    (data / "mtd").mkdir(parents=True)
    (data / "mtd" / "x.txt").write_text("x")
    runner.run([nb], data_root=str(data), out=tmp_path / "runs", device="cpu")
    out = capsys.readouterr().out
    assert "04_x: started  (not in --data-root, generated stand-in used: neu-seg)" in out


def test_real_data_in_place_of_an_absent_dataset_is_not_called_a_stand_in(tmp_path, make_notebook, capsys):
    """Notebook 02 without Severstal trains on real NEU-Seg and MTD: the progress line used to say
    "generated stand-in used: severstal", and --require-real refused the run."""
    from defectlib.course.preflight import missing_datasets, substituted
    data = tmp_path / "data"
    for name in ("neu-seg", "mtd"):
        (data / name).mkdir(parents=True)
        (data / name / "x.txt").write_text("x")
    subs = {"severstal": ("neu-seg", "mtd")}
    names = ("severstal", "neu-seg", "mtd")
    assert missing_datasets(names, data, subs) == [] and substituted(names, data, subs) == subs
    assert missing_datasets(names, data) == ["severstal"]               # without the substitution rule
    nb = make_notebook(tmp_path / "nbs" / "02_x.ipynb", ["pass"])
    runner.run([nb], data_root=str(data), out=tmp_path / "runs", device="cpu")
    out = capsys.readouterr().out
    assert "02_x: started  (no severstal in --data-root: real neu-seg + mtd in its place)" in out
    assert "generated stand-in used" not in out
    assert runner.main(["--notebooks", str(nb.parent), "--only", "02", "--data-root", str(data),
                        "--require-real", "--out", str(tmp_path / "runs2"), "-q"]) == 0
    (data / "mtd" / "x.txt").unlink()
    assert missing_datasets(names, data, subs) == ["severstal", "mtd"] and substituted(names, data, subs) == {}


def test_second_call_makes_a_new_folder_and_leaves_the_first_alone(two_runs):
    runs = sorted(two_runs["out"].iterdir())
    assert two_runs["rc2"] == 0 and len(runs) == 2
    assert runs[0].name.endswith("-paper-dryrun") and runs[1] != runs[0]
    for path, content in two_runs["snapshot"].items():
        assert path.read_bytes() == content, f"{path} was modified by the second run"
    second = json.loads((runs[1] / "results.json").read_text())
    assert [nb["notebook"] for nb in second["notebooks"]] == ["01_pass"]
    assert second["data_root"] is None  # no --data-root: the embedded default


def test_failure_outside_a_cell_is_read_from_the_log(tmp_path):
    log = tmp_path / "papermill.log"
    log.write_text("Traceback (most recent call last):\n  File x\n"
                   "jupyter_client.kernelspec.NoSuchKernel: No such kernel named gpu\n")
    err = execute.log_failure(log)
    assert err["cell"] is None and err["ename"] == "NoSuchKernel" and "named gpu" in err["evalue"]
    assert execute.log_failure(log, "stopped after 5:00")["ename"] == "Timeout"


def test_unknown_kernel_is_refused_before_anything_runs(tmp_path, capsys, make_notebook):
    make_notebook(tmp_path / "01_a.ipynb", ["pass"])
    with pytest.raises(SystemExit):
        runner.main(["--notebooks", str(tmp_path), "--kernel", "no-such-kernel",
                     "--out", str(tmp_path / "r")])
    assert "no Jupyter kernel named 'no-such-kernel'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _sleeping_notebook(make_notebook, folder):
    """A notebook whose kernel writes its pid to ``folder/pid`` and then sleeps for two minutes."""
    return make_notebook(folder / "nb" / "01_sleep.ipynb",
                         [f"import os, time\nopen({str(folder / 'pid')!r}, 'w').write(str(os.getpid()))",
                          "time.sleep(120)"])


def _gone(pid: int, within: float = 20.0) -> bool:
    import os
    import time
    end = time.time() + within
    while time.time() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False


def test_timeout_stops_the_notebook_and_its_kernel(tmp_path, make_notebook):
    nb = _sleeping_notebook(make_notebook, tmp_path)
    t0 = dt.datetime.now()
    rc = runner.main(["--notebooks", str(nb.parent), "--out", str(tmp_path / "runs"), "--timeout", "6",
                      "--quiet"])
    # the cell sleeps 120 s: a run that ends sooner was cut (a bound set by the notebook, not the machine's speed)
    assert rc == 1 and (dt.datetime.now() - t0).total_seconds() < 120
    (run,) = (tmp_path / "runs").iterdir()
    nb = json.loads((run / "results.json").read_text())["notebooks"][0]
    assert nb["status"] == "timeout" and nb["error"]["ename"] == "Timeout"
    assert "## Failures" in (run / "report.md").read_text()
    assert _gone(int((tmp_path / "pid").read_text())), "the kernel outlived its timeout"


def test_sigterm_stops_the_runner_its_notebooks_and_writes_the_run(tmp_path, make_notebook):
    import signal
    import subprocess
    import sys
    import time
    nb = _sleeping_notebook(make_notebook, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "defectlib.course.run", "--notebooks", str(nb.parent),
                             "--out", str(tmp_path / "runs"), "--quiet"])
    pid_file = tmp_path / "pid"
    for _ in range(120):
        if pid_file.is_file() and pid_file.read_text():
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    (run,) = (tmp_path / "runs").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["notebooks"][0]["status"] == "interrupted" and results.get("finished")
    assert _gone(int(pid_file.read_text())), "the kernel outlived the runner"


def test_several_seeds_run_each_notebook_once_per_seed(tmp_path, make_notebook):
    make_notebook(tmp_path / "nbs" / "01_pass.ipynb", PASS_CELLS)
    rc = runner.main(["--notebooks", str(tmp_path / "nbs"), "--out", str(tmp_path / "runs"), "--quiet",
                      "--seed", "1,2", "--jobs", "2"])
    run = next((tmp_path / "runs").iterdir())
    results = json.loads((run / "results.json").read_text())
    assert rc == 0 and results["seed"] == [1, 2], [nb.get("error") for nb in results["notebooks"]]
    assert [(nb["notebook"], nb["source"], nb["seed"]) for nb in results["notebooks"]] == [
        ("01_pass-seed1", "01_pass", 1), ("01_pass-seed2", "01_pass", 2)]
    for nb in results["notebooks"]:
        assert json.loads(nb["results"]["notes"][0])["seed"] == nb["seed"]  # each kernel got its seed
    assert "| 01_pass | phase5/AP50/crazing | NEU-DET (stand-in) | 41.20 % +- 0.00 |" in (run / "report.md").read_text()
    spread = json.loads((run / "seed_spread.json").read_text())["01_pass"]
    assert spread["seeds"] == [1, 2] and spread["rows"][0]["values"] == {"1": 41.2, "2": 41.2}


def _flaky_kernel(home: Path, fails: int) -> str:
    """A kernelspec whose first ``fails`` launches exit before the kernel binds its ports (what
    the port race of two kernels started at once looks like to papermill), then a real kernel."""
    import sys
    spec = home / "kernels" / "flaky"
    spec.mkdir(parents=True)
    count = home / "launches"
    (home / "launch.py").write_text(
        "import pathlib, runpy, sys\n"
        f"count = pathlib.Path({str(count)!r})\n"
        "n = int(count.read_text()) + 1 if count.exists() else 1\n"
        "count.write_text(str(n))\n"
        f"if n <= {fails}:\n"
        "    sys.exit('zmq.error.ZMQError: Address already in use (simulated)')\n"
        "sys.argv = ['ipykernel_launcher'] + sys.argv[1:]\n"
        "runpy.run_module('ipykernel_launcher', run_name='__main__')\n")
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, str(home / "launch.py"), "-f", "{connection_file}"],
        "display_name": "flaky", "language": "python"}))
    return "flaky"


@pytest.mark.parametrize("fails, ok", [(2, True), (3, False)])
def test_a_kernel_that_did_not_start_is_relaunched(tmp_path, make_notebook, monkeypatch, fails, ok):
    home = tmp_path / "jupyter"
    kernel = _flaky_kernel(home, fails)
    monkeypatch.setenv("JUPYTER_PATH", str(home))
    make_notebook(tmp_path / "nbs" / "01_pass.ipynb", PASS_CELLS)
    rc = runner.main(["--notebooks", str(tmp_path / "nbs"), "--out", str(tmp_path / "runs"), "--quiet",
                      "--kernel", kernel])
    (run,) = (tmp_path / "runs").iterdir()
    (nb,) = json.loads((run / "results.json").read_text())["notebooks"]
    launches = int((home / "launches").read_text())
    log = (run / "01_pass" / "papermill.log").read_text()
    assert launches == min(fails + 1, runner.KERNEL_START_ATTEMPTS)
    assert log.count("Address already in use (simulated)") == min(fails, runner.KERNEL_START_ATTEMPTS)
    if ok:  # relaunched until it started; the earlier failures stay in the log
        assert rc == 0 and nb["status"] == "ok" and "relaunch 3" in log
    else:   # it gives up after KERNEL_START_ATTEMPTS launches and says why
        assert rc != 0 and nb["status"] == "failed"


def test_a_failing_cell_is_not_relaunched(tmp_path, make_notebook):
    make_notebook(tmp_path / "nbs" / "01_fail.ipynb", ["raise ValueError('boom in the first cell')"])
    runner.main(["--notebooks", str(tmp_path / "nbs"), "--out", str(tmp_path / "runs"), "--quiet"])
    (run,) = (tmp_path / "runs").iterdir()
    (nb,) = json.loads((run / "results.json").read_text())["notebooks"]
    assert nb["status"] == "failed" and "boom in the first cell" in nb["error"]["evalue"]
    assert "relaunch" not in (run / "01_fail" / "papermill.log").read_text()


# --- --check: the reproducibility check at the end of a run ----------------------------------------
def _reference(folder: Path, value: float = 41.2, seeds: dict | None = None) -> Path:
    """A committed-layout results folder for the ``01_pass`` notebook: seed 0 and, optionally,
    a seeds.json with the metric's value per seed."""
    nb = folder / "01_pass"
    nb.mkdir(parents=True)
    metric = {"name": "phase5/AP50/crazing", "value": value, "paper": None, "dataset": "NEU-DET",
              "real": False, "unit": "%", "note": ""}
    (nb / "results.json").write_text(json.dumps({"notebook": "01_pass", "profile": "smoke", "seed": 0,
                                                 "config": {"epochs": 3}, "metrics": [metric]}))
    if seeds:
        (nb / "seeds.json").write_text(json.dumps({"seeds": list(seeds), "rows": [
            {"notebook": "01_pass", "name": metric["name"], "dataset": "NEU-DET (stand-in)",
             "unit": "%", "values": {str(s): v for s, v in seeds.items()}}]}))
    return folder


def _fake_run(tmp_path, value: float, status: str = "ok", name: str = "fake"):
    """Stands in for ``runner.run``: writes a run folder whose 01_pass recorded ``value``."""
    def fake(notebooks, **kw):
        run_dir = tmp_path / "runs" / f"{name}-{value}-{status}"
        run_dir.mkdir(parents=True)
        metric = {"name": "phase5/AP50/crazing", "value": value, "dataset": "NEU-DET", "real": False,
                  "unit": "%"}
        nb = {"notebook": "01_pass", "source": "01_pass", "seed": kw["seed"][0], "status": status,
              "elapsed_s": 1.0, "executed": "01_pass.ipynb", "output_dir": "01_pass", "log": "x.log",
              "error": None, "results": {"metrics": [metric], "config": {"epochs": 3}} if status == "ok" else None}
        (run_dir / "results.json").write_text(json.dumps({
            "run": run_dir.name, "seed": kw["seed"][0], "notebooks": [nb], "summary": "-",
            "failed": [] if status == "ok" else ["01_pass"]}))
        return run_dir
    return fake


def test_check_exit_status_follows_the_seed_spread(tmp_path, monkeypatch, make_notebook, capsys):
    make_notebook(tmp_path / "nbs" / "01_pass.ipynb", ["pass"])
    # mean 43.07, sd 1.90: 95 % prediction interval [33.6, 52.5]; one metric may land outside it
    # by chance, not beyond the 97.5 % one, [29.4, 56.7]
    ref = _reference(tmp_path / "results", seeds={0: 41.2, 1: 43.0, 2: 45.0})
    args = ["--notebooks", str(tmp_path / "nbs"), "--check", str(ref), "--quiet"]
    for value, status, rc in ((41.2, "ok", 0), (46.5, "ok", 0), (53.0, "ok", 0), (57.0, "ok", 1),
                              (41.2, "failed", 1)):
        monkeypatch.setattr(runner, "run", _fake_run(tmp_path, value, status))
        assert runner.main(args) == rc, (value, status)
        out = capsys.readouterr().out
        assert ("NOT REPRODUCED" in out) == (rc == 1), out  # a failed notebook misses its metric
    monkeypatch.setattr(runner, "run", _fake_run(tmp_path, 47.5, name="nocheck"))
    assert runner.main(args[:2]) == 0  # without --check the numbers are not judged


def test_check_reference_is_resolved_before_the_run(tmp_path, monkeypatch, make_notebook, capsys):
    make_notebook(tmp_path / "nbs" / "01_a.ipynb", ["pass"])
    common = ["--notebooks", str(tmp_path / "nbs"), "--out", str(tmp_path / "r")]
    with pytest.raises(SystemExit) as exc:
        runner.main(common + ["--check", str(tmp_path / "nope")])
    assert exc.value.code == 2 and "nope: not a results folder" in capsys.readouterr().err
    assert runner.default_results_dir() == Path(runner.__file__).resolve().parents[2] / "results"
    monkeypatch.setattr(runner, "default_results_dir", lambda: tmp_path / "no-results-here")
    with pytest.raises(SystemExit):
        runner.main(common + ["--check"])  # no REF: the repository's results/
    assert "no-results-here: not a results folder" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_check_after_a_real_run(tmp_path, make_notebook):
    make_notebook(tmp_path / "nbs" / "01_pass.ipynb", PASS_CELLS)
    ref = _reference(tmp_path / "results")
    rc = runner.main(["--notebooks", str(tmp_path / "nbs"), "--out", str(tmp_path / "runs"), "--quiet",
                      "--check", str(ref)])
    (run,) = (tmp_path / "runs").iterdir()
    text = (run / "report.md").read_text()
    assert rc == 0 and "## Against results" in text
    assert "1 identical, 0 within the seed spread, 0 outside (up to 0 by chance), 0 far outside, 0 missing" in text


def test_heartbeat_names_the_running_cell_and_its_section(tmp_path):
    """The runner's progress line reads the notebook papermill saves as it goes (papermill's own bar
    in the log stays at ``0/N`` while a long first cell runs)."""
    from defectlib.course.execute import Job, progress, running_cell

    def cell(kind, src, status=None):
        c = {"cell_type": kind, "source": [src], "metadata": {}}
        if status:
            c["metadata"]["papermill"] = {"status": status}
        return c
    job = Job(path=tmp_path / "02_x.ipynb", run_dir=tmp_path, parameters={})
    job.output_dir.mkdir()
    job.log.write_text("Executing:   0%|          | 0/5 [00:00<?, ?cell/s]")
    assert progress(job) == "cell 0/5"                               # no output notebook yet: the log
    cells = [cell("markdown", "# 02 · Title"), cell("code", "x = 1", "completed"),
             cell("markdown", "## 4. Training the U-Net\n\ntext"), cell("code", "fit()", "running"),
             cell("code", "y = 2", "pending")]
    job.executed.write_text(json.dumps({"cells": cells}))
    assert running_cell(job.executed) == progress(job) == "cell 4/5 (4. Training the U-Net)"
    job.executed.write_text('{"cells": [')                           # caught mid-write
    assert running_cell(job.executed) is None and progress(job) == "cell 0/5"


def test_device_plan_for_gpus_cpu_and_one_named_gpu():
    """--device / --jobs with a faked GPU list (no GPU here): the plans a GPU node gets."""
    from defectlib.course.execute import plan_devices
    two = ["0", "1"]
    p = plan_devices("auto", 4, two)
    assert (p.jobs, p.gpus) == (2, two) and "capped to 2" in p.notes[0]        # one notebook per GPU
    assert plan_devices("cuda", 1, two).gpus == []                              # one job sees every GPU
    p = plan_devices("cpu", 4, two)
    assert (p.jobs, p.gpus, p.notes) == (4, [], [])                             # GPUs neither used nor counted
    p = plan_devices("cuda:1", 2, two)
    assert (p.jobs, p.gpus) == (1, []) and "one at a time" in p.notes[0]        # cuda:1 stays addressable
    with pytest.raises(ValueError, match="shows 2 GPU"):
        plan_devices("cuda:2", 1, two)
    assert plan_devices("cuda:3", 3, []).jobs == 3                              # no GPU visible: nothing to plan
