"""report.md and `defectlib report RUN --against OTHER`, on hand-written results (no kernels)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectlib import report
from defectlib.execute import Job


def _metric(name, value, paper=None, dataset="NEU-DET", real=True, unit="%", note=""):
    return {"name": name, "value": value, "paper": paper, "dataset": dataset, "real": real,
            "unit": unit, "note": note}


def _results(run="A", metrics=None, status="ok", error=None, versions=None, config=None):
    nb = {"notebook": "01_danet_neu_det", "status": status, "elapsed_s": 65.0,
          "executed": "01_danet_neu_det.ipynb", "output_dir": "01_danet_neu_det",
          "log": "01_danet_neu_det/papermill.log", "error": error,
          "results": None if status != "ok" else {
              "metrics": metrics or [], "notes": ["a note"], "timings": {"train_s": 3.5},
              "figures": ["figures/pr.png"], "config": config or {"epochs": 2}, "seed": 0,
              "device": "cpu", "data_root": None}}
    return {"run": run, "profile": "cpu", "dry_run": False, "seed": 0, "device": "auto",
            "versions": versions or {"torch": "2.14.1"}, "notebooks": [nb],
            "summary": "1 of 1 notebooks ok", "failed": [] if status == "ok" else [nb["notebook"]]}


def _save(tmp_path, name, results):
    d = tmp_path / name
    d.mkdir()
    (d / "results.json").write_text(json.dumps(results))
    return d


def test_metric_sits_beside_the_paper_number_with_its_dataset():
    text = report.build_report(_results(metrics=[
        _metric("phase5/mAP", 70.0, paper="danet/table3/phase5/mAP"),
        _metric("IoU man-made", 60.5, paper="ocinet/table1/OCINet/man-made/IoU",
                dataset="NRSD-MN", real=False),
        _metric("steps/s", 3.0, unit="steps/s"),
        _metric("params", 29.95, paper="ocinet/table1/OCINet/params_M", dataset="-", unit="M")]))
    assert "| phase5/mAP | 70.00 % | 78.27 % | -8.27 | NEU-DET (real) |" in text
    assert "| IoU man-made | 60.50 % | 71.80 % | -11.30 | NRSD-MN (stand-in) |" in text
    assert "| steps/s | 3 steps/s | - | - | NEU-DET (real) |" in text
    assert "paper 003, Table I" in text and "| 4 | NEU-DET (real), NRSD-MN (stand-in) |" in text
    assert "| params | 29.95 M | 29.95 M | +0 | - |" in text
    assert "[pr](01_danet_neu_det/figures/pr.png)" in text and "a note" in text
    assert "reduced-scale" in text  # the cpu profile's caveat


def test_units_and_unknown_keys_are_flagged_not_subtracted():
    rows = report.metric_rows(_results(metrics=[
        _metric("dice", 0.5, paper="severstal/abstract/two-stage/Dice", unit="%"),
        _metric("x", 1.0, paper="danet/table9/nothing")]))
    assert rows[0]["delta"] is None and "units differ" in rows[0]["paper_source"]
    assert rows[1]["delta"] is None and "unknown paper key" in rows[1]["paper_source"]


def test_failure_section_names_cell_and_error():
    err = {"cell": 5, "execution_count": 3, "ename": "RuntimeError", "evalue": "CUDA out of memory",
           "source": "model(x)", "traceback": "RuntimeError: CUDA out of memory"}
    text = report.build_report(_results(status="failed", error=err))
    assert "**FAILED**" in text and "cell 5 (In [3])" in text
    assert "**RuntimeError: CUDA out of memory**" in text and "model(x)" in text
    assert "did not reach `rec.save()`" in text


def test_compare_classifies_every_metric():
    a = _results("A", [_metric("m1", 50.0), _metric("m2", 60.0), _metric("m3", 70.0),
                       _metric("new", 1.0), _metric("m1", 50.0, dataset="MTD")])
    b = _results("B", [_metric("m1", 50.0), _metric("m2", 60.4), _metric("m3", 71.0),
                       _metric("old", 1.0), _metric("m1", 49.0, dataset="MTD")])
    rows, counts = report.compare(a, b, tol=0.5)
    assert counts == {"identical": 1, "within tol": 1, "changed": 2, "new": 1, "gone": 1}
    by = {(r["name"], r["dataset"]): r for r in rows}
    assert by[("m2", "NEU-DET (real)")]["delta"] == pytest.approx(-0.4)
    assert by[("m1", "MTD (real)")]["status"] == "changed"  # matched per dataset


def test_report_cli_against_another_run(tmp_path, capsys):
    a = _save(tmp_path, "runA", _results("runA", [_metric("m", 50.0)],
                                         versions={"torch": "2.15.0"}, config={"epochs": 3}))
    b = _save(tmp_path, "runB", _results("runB", [_metric("m", 50.0)],
                                         versions={"torch": "2.14.1"}, config={"epochs": 2}))
    assert report.main([str(a), "--against", str(b)]) == 0
    out = capsys.readouterr().out
    assert "1 identical" in out and "torch: 2.14.1 -> 2.15.0" in out and "epochs: 2 -> 3" in out
    text = (a / "report.md").read_text()
    assert "## Against runB" in text

    (a / "results.json").write_text(json.dumps(_results("runA", [_metric("m", 52.0)])))
    assert report.main(["runA", "--runs-dir", str(tmp_path), "--against", "runB"]) == 1
    assert report.main(["runA", "--runs-dir", str(tmp_path), "--against", "runB",
                        "--tol", "2.5"]) == 0
    assert report.main(["latest", "--runs-dir", str(tmp_path)]) == 0
    assert "runA" in capsys.readouterr().out  # the newest results.json


def test_report_cli_names_a_missing_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        report.main([str(tmp_path / "nope")])
    assert "not a run folder" in capsys.readouterr().err


def test_write_results_collects_each_notebook(tmp_path):
    run = tmp_path / "run"
    job = Job(Path("/x/01_a.ipynb"), run, {"seed": 1}, status="ok", elapsed_s=2.0)
    job.output_dir.mkdir(parents=True)
    (job.output_dir / "results.json").write_text(json.dumps({"metrics": [_metric("m", 1.0)]}))
    broken = Job(Path("/x/02_b.ipynb"), run, {}, status="failed", error={"ename": "E"})
    report.write_results(run, {"run": "run"}, [job, broken], finished=True)
    data = json.loads((run / "results.json").read_text())
    assert data["failed"] == ["02_b"] and "finished" in data
    assert data["notebooks"][0]["results"]["metrics"][0]["value"] == 1.0
    assert data["notebooks"][1]["results"] is None


def test_seed_spread_is_mean_and_sample_sd_over_the_seeds():
    import numpy as np
    values = {0: 41.0, 1: 47.5, 2: 44.0}
    base = _results()["notebooks"][0]
    nbs = []
    for seed, v in values.items():
        nb = json.loads(json.dumps(base))
        nb.update(notebook=f"01_danet_neu_det-seed{seed}", source="01_danet_neu_det", seed=seed)
        nb["results"]["metrics"] = [_metric("phase5/mAP", v, paper="danet/table3/phase5/mAP"),
                                    _metric("steps", 10, unit="")]
        nbs.append(nb)
    results = dict(_results(), notebooks=nbs, seed=list(values))
    rows = {r["name"]: r for r in report.seed_spread(results)}
    want = np.array(list(values.values()))
    assert rows["phase5/mAP"]["mean"] == pytest.approx(want.mean())
    assert rows["phase5/mAP"]["sd"] == pytest.approx(want.std(ddof=1))
    assert (rows["phase5/mAP"]["min"], rows["phase5/mAP"]["max"], rows["phase5/mAP"]["n"]) == (41.0, 47.5, 3)
    assert rows["steps"]["sd"] == 0.0
    text = report.build_report(results)
    assert "## Seed spread" in text
    assert "| 01_danet_neu_det | phase5/mAP | NEU-DET (real) | 44.17 % +- 3.25 | 41.00 % to 47.50 % | 3 | 78.27 % |" in text
    assert "## Seed spread" not in report.build_report(_results(metrics=[_metric("a", 1.0)]))  # one seed


def test_fmt_time_keeps_short_times_readable():
    from defectlib.execute import fmt_time
    assert [fmt_time(t) for t in (None, 0.0223, 0.5, 3.44, 75.2, 3725)] == [
        "-", "22.3 ms", "500 ms", "3.4 s", "1:15", "1:02:05"]
