"""report.md and `defectlib report RUN --against OTHER`, on hand-written results (no kernels)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectlib.course import report
from defectlib.course.execute import Job


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
        _metric("dice", 0.5, paper="severstal/intro/two-stage/Dice", unit="%"),
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


def test_run_against_a_single_seed_run_uses_only_the_tolerance():
    from defectlib.course import reproduce
    a = _results("A", [_metric("m1", 50.0), _metric("m2", 60.0), _metric("m3", 70.0),
                       _metric("new", 1.0), _metric("m1", 50.0, dataset="MTD")])
    b = _results("B", [_metric("m1", 50.0), _metric("m2", 60.4), _metric("m3", 71.0),
                       _metric("old", 1.0), _metric("m1", 49.0, dataset="MTD")])
    rows, counts = reproduce.compare(reproduce.from_run(a), reproduce.from_run(b), tol=0.5)
    assert counts == {"identical": 1, "within": 1, "outside": 0, "far outside": 2, "missing": 1,
                      "new": 1, "speed": 0, "allowed": 0}  # no seed spread: the tolerance decides
    by = {(r["name"], r["dataset"]): r for r in rows}
    assert (by[("m2", "NEU-DET (real)")]["status"], by[("m2", "NEU-DET (real)")]["rule"]) == ("within", "tol")
    assert by[("m1", "MTD (real)")]["status"] == "far outside"  # matched per dataset
    assert by[("old", "NEU-DET (real)")]["status"] == "missing" and by[("new", "NEU-DET (real)")]["status"] == "new"


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
    from defectlib.course.execute import fmt_time
    assert [fmt_time(t) for t in (None, 0.0223, 0.5, 3.44, 75.2, 3725)] == [
        "-", "22.3 ms", "500 ms", "3.4 s", "1:15", "1:02:05"]


# --- the reproducibility check against the committed results/ layout (defectlib.course.reproduce) --------
REPO_RESULTS = Path(__file__).resolve().parents[1] / "results"
NB = "01_danet_neu_det"
# the reference's seeds of phase5/mAP: 40, 41, 48 -> mean 43, sample sd sqrt(19) = 4.359; the 95 %
# prediction interval for one new seed is 43 +- t(0.975, 2) * 4.359 * sqrt(1 + 1/3), t = 4.3027:
# [21.34, 64.66]. "Far" for m metrics checked is the same at level 1 - 0.025 / m: for m = 2,
# t(1 - 0.00625, 2) = 8.8602 -> [-1.60, 87.60]; for m = 1, t(0.9875, 2) = 6.2053 -> [11.77, 74.23].
SEEDS = {0: 40.0, 1: 41.0, 2: 48.0}


def _committed(tmp_path, spread=None, seed0=None, name="results", nb=NB):
    """A committed-layout folder: ``<name>/<nb>/results.json`` (seed 0) and ``seeds.json``."""
    spread = {"phase5/mAP": SEEDS, "params_M": {0: 2.91, 1: 2.91, 2: 2.91}} if spread is None else spread
    seed0 = seed0 if seed0 is not None else (
        [_metric(n, v[0], dataset="-" if n.startswith("params") else "NEU-DET",
                 unit="M" if n.startswith("params") else "%") for n, v in spread.items()]
        + [_metric("phase5/AR100", 30.0)])  # no seeds.json row: only --tol applies to it
    folder = tmp_path / name / nb
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(
        {"notebook": nb, "profile": "cpu", "config": {"epochs": 2}, "seed": 0, "device": "cpu",
         "versions": {"torch": "2.14.1"}, "metrics": seed0}))
    rows = [{"notebook": nb, "name": n, "dataset": "-" if n.startswith("params") else "NEU-DET (real)",
             "unit": "%", "values": {str(k): v for k, v in vals.items()}} for n, vals in spread.items()]
    (folder / "seeds.json").write_text(json.dumps({"profile": "cpu", "seeds": [0, 1, 2], "rows": rows}))
    return tmp_path / name


def _run(tmp_path, values: dict, seed: int = 0, name="run", extra=(), status="ok"):
    """A run folder (one seed) whose notebook recorded ``values`` (metric name -> value)."""
    metrics = [_metric(n, v, dataset="-" if n.startswith("params") else "NEU-DET",
                       unit="M" if n.startswith("params") else "%") for n, v in values.items()]
    res = _results(name, metrics + list(extra), status=status)
    res["notebooks"][0].update(seed=seed, source=NB)
    return _save(tmp_path, name, dict(res, seed=seed))


def _statuses(rows):
    return {(r["name"], r["seed"]): r["status"] for r in rows}


def test_check_classifies_identical_within_and_outside_the_prediction_interval(tmp_path):
    from defectlib.course import reproduce
    ref = reproduce.load(_committed(tmp_path))
    assert ref.layout == "committed" and ref.spread((NB, "phase5/mAP", "NEU-DET (real)"))["sd"] == pytest.approx(19 ** 0.5)
    assert reproduce.prediction_interval(ref.spread((NB, "phase5/mAP", "NEU-DET (real)"))) == \
        pytest.approx((21.3438, 64.6562), abs=1e-4)
    # m = 2 (phase5/mAP and params_M have seed spreads): one of two may land outside by chance
    cases = {40.0: "identical", 40.0 + 1e-12: "identical", 40.0 + 1e-6: "within",
             41.0: "within",  # 41 is seed 1's value, not seed 0's
             64.6: "within", 21.4: "within", 64.7: "outside", 21.3: "outside", 87.5: "outside",
             87.7: "far outside", -1.7: "far outside"}
    for value, want in cases.items():
        run = reproduce.load(_run(tmp_path, {"phase5/mAP": value, "params_M": 2.91,
                                             "phase5/AR100": 30.0}, name=f"run{value}"))
        rows, counts = reproduce.compare(run, ref)
        assert _statuses(rows)[("phase5/mAP", 0)] == want, value
        assert counts["identical"] == (3 if want == "identical" else 2) and counts["allowed"] == 1
        assert reproduce.failed(counts) == (want == "far outside"), value


def test_allowed_outside_is_the_binomial_tail():
    import math
    from defectlib.course import reproduce

    def more_than(k, m, p=0.05):  # P(Binomial(m, p) > k), summed by hand
        return 1 - sum(math.comb(m, i) * p ** i * (1 - p) ** (m - i) for i in range(k + 1))
    # of 36 metrics at 95 %: P(more than 4 outside) = 0.032 > 0.025, P(more than 5) = 0.0088
    assert more_than(4, 36) == pytest.approx(0.0324, abs=1e-4) and more_than(5, 36) < 0.025
    assert reproduce.allowed_outside(36) == 5
    for m in (0, 1, 2, 10, 140):
        k = reproduce.allowed_outside(m)
        assert more_than(k, m) <= 0.025 + 1e-12 and (k == 0 or more_than(k - 1, m) > 0.025), m


def test_check_compares_each_seed_of_the_run_with_the_same_seed(tmp_path):
    from defectlib.course import reproduce
    ref = reproduce.load(_committed(tmp_path))
    nbs = []
    for seed, value in ((1, 41.0), (2, 41.0)):  # seed 1 reproduces exactly, seed 2 does not
        nb = _results(metrics=[_metric("phase5/mAP", value)])["notebooks"][0]
        nb.update(notebook=f"{NB}-seed{seed}", source=NB, seed=seed)
        nbs.append(nb)
    run = reproduce.from_run(dict(_results(), notebooks=nbs, seed=[1, 2]))
    rows, counts = reproduce.compare(run, ref)
    assert _statuses(rows)[("phase5/mAP", 1)] == "identical"
    assert _statuses(rows)[("phase5/mAP", 2)] == "within"
    assert _statuses(rows)[("params_M", 1)] == "missing"  # in seeds.json for seed 1, not in the run
    assert ("phase5/AR100", 1) not in _statuses(rows)  # the reference has it for seed 0 only
    assert counts["missing"] == 2 and reproduce.failed(counts)


def test_check_without_a_spread_falls_back_to_the_tolerance(tmp_path):
    from defectlib.course import reproduce
    ref = reproduce.load(_committed(tmp_path))  # phase5/AR100 has seed 0 only: 30.0
    run = reproduce.load(_run(tmp_path, {"phase5/mAP": 40.0, "params_M": 2.91, "phase5/AR100": 30.4}))
    rows, counts = reproduce.compare(run, ref, tol=0.5)
    row = next(r for r in rows if r["name"] == "phase5/AR100")
    assert (row["status"], row["rule"], row["low"], row["high"]) == ("within", "tol", 29.5, 30.5)
    # a tolerance leaves nothing to chance: outside it fails at once
    rows, counts = reproduce.compare(run, ref, tol=0.3)
    assert _statuses(rows)[("phase5/AR100", 0)] == "far outside" and reproduce.failed(counts)
    # params_M has a spread of zero width: only float noise passes, anything else fails
    run = reproduce.load(_run(tmp_path, {"phase5/mAP": 40.0, "params_M": 2.92, "phase5/AR100": 30.0},
                              name="run2"))
    rows, counts = reproduce.compare(run, ref)
    assert _statuses(rows)[("params_M", 0)] == "far outside" and reproduce.failed(counts)


def test_check_lists_missing_and_new_metrics_and_ignores_notebooks_not_run(tmp_path):
    from defectlib.course import reproduce
    ref_dir = _committed(tmp_path)
    _committed(tmp_path, nb="03_ocinet_nrsd")  # in the reference, not in the run: not missing
    run = reproduce.load(_run(tmp_path, {"phase5/mAP": 40.0, "params_M": 2.91, "extra": 1.0}))
    rows, counts = reproduce.compare(run, reproduce.load(ref_dir))
    assert counts == {"identical": 2, "within": 0, "outside": 0, "far outside": 0, "missing": 1,
                      "new": 1, "speed": 0, "allowed": 1}
    assert _statuses(rows)[("phase5/AR100", 0)] == "missing" and _statuses(rows)[("extra", 0)] == "new"
    assert {r["notebook"] for r in rows} == {NB}
    # a notebook that failed misses every metric the reference has for it
    failed = reproduce.load(_run(tmp_path, {}, name="failed", status="failed"))
    assert reproduce.compare(failed, reproduce.load(ref_dir))[1]["missing"] == 3
    # nothing in common is not a pass
    other = reproduce.load(_run(tmp_path, {"extra": 1.0}, name="other"))
    other.seeds = {"05_new": [0]}
    assert reproduce.failed(reproduce.compare(other, reproduce.load(ref_dir))[1])


def test_reference_may_be_a_run_with_several_seeds_or_one_notebook_folder(tmp_path):
    from defectlib.course import reproduce
    nbs = []
    for seed, value in SEEDS.items():
        nb = _results(metrics=[_metric("phase5/mAP", value)])["notebooks"][0]
        nb.update(notebook=f"{NB}-seed{seed}", source=NB, seed=seed)
        nbs.append(nb)
    ref_dir = _save(tmp_path, "ref", dict(_results("ref"), notebooks=nbs, seed=list(SEEDS)))
    assert reproduce.layout(ref_dir) == "run"
    for ref in (reproduce.load(ref_dir), reproduce.load(_committed(tmp_path) / NB)):
        for value, want in ((48.0, "within"), (40.0, "identical"), (70.0, "outside"),
                            (75.0, "far outside")):  # m = 1: far beyond [11.77, 74.23]
            run = reproduce.load(_run(tmp_path, {"phase5/mAP": value}, name=f"r{ref.layout}{value}"))
            assert _statuses(reproduce.compare(run, ref)[0])[("phase5/mAP", 0)] == want


def test_report_against_results_folder_exit_codes_and_section(tmp_path, capsys):
    ref = _committed(tmp_path)
    base = {"phase5/mAP": 40.0, "params_M": 2.91, "phase5/AR100": 30.0}
    assert report.main([str(_run(tmp_path, base, name="same")), "--against", str(ref)]) == 0
    assert "REPRODUCED" in capsys.readouterr().out
    within = _run(tmp_path, dict(base, **{"phase5/mAP": 52.2}), name="within")
    assert report.main([str(within), "--against", str(ref)]) == 0
    text = (within / "report.md").read_text()
    assert "## Against results" in text and "2 identical, 1 within the seed spread, 0 outside" in text
    assert "| 01_danet_neu_det | phase5/mAP | NEU-DET (real) | 0 | 52.20 % | 40.00 % | 40.00 % to 48.00 % (4.36) | 21.34 to 64.66 | within (prediction interval) |" in text
    by_chance = _run(tmp_path, dict(base, **{"phase5/mAP": 70.0}), name="by_chance")
    assert report.main([str(by_chance), "--against", str(ref)]) == 0  # one of two outside: chance
    out = capsys.readouterr().out
    assert "REPRODUCED" in out and "1 outside (up to 1 by chance)" in out and "| outside |" in out
    outside = _run(tmp_path, dict(base, **{"phase5/mAP": 90.0}), name="outside")
    assert report.main([str(outside), "--against", str(ref)]) == 1
    out = capsys.readouterr().out
    assert "NOT REPRODUCED" in out and "| **far outside** |" in out
    missing = _run(tmp_path, {"phase5/mAP": 40.0, "params_M": 2.91}, name="missing")
    assert report.main([str(missing), "--against", str(ref)]) == 1
    assert report.main([str(missing), "--against", str(ref / NB)]) == 1  # one notebook's folder
    assert "| **missing** |" in (missing / "report.md").read_text()


def test_report_against_names_a_bad_reference(tmp_path, capsys):
    run = _run(tmp_path, {"phase5/mAP": 40.0})
    with pytest.raises(SystemExit):
        report.main([str(run), "--against", str(tmp_path / "nope")])
    assert "nope: not a results folder" in capsys.readouterr().err
    ref = _committed(tmp_path)
    (ref / NB / "seeds.json").write_text('{"seeds": [0, 1], "rows": [')
    with pytest.raises(SystemExit):
        report.main([str(run), "--against", str(ref)])
    assert f"{ref / NB / 'seeds.json'}: not valid JSON" in capsys.readouterr().err
    (ref / NB / "seeds.json").write_text('{"seeds": [0, 1]}')
    with pytest.raises(SystemExit):
        report.main([str(run), "--against", str(ref)])
    assert "seeds.json: not a seeds.json (no list of 'rows')" in capsys.readouterr().err
    (ref / NB / "seeds.json").unlink()
    (ref / NB / "results.json").write_text('{"notebook": "x"}')
    with pytest.raises(SystemExit):
        report.main([str(run), "--against", str(ref)])
    assert "results.json: neither a run's combined results.json" in capsys.readouterr().err


def _committed_as_run(tmp_path) -> Path:
    """A run folder holding exactly the committed seed-0 results.json of every notebook."""
    nbs = []
    for own in sorted(REPO_RESULTS.glob("*/results.json")):
        d = json.loads(own.read_text())
        nbs.append({"notebook": d["notebook"], "source": d["notebook"], "seed": d["seed"],
                    "status": "ok", "elapsed_s": 1.0, "executed": f"{d['notebook']}.ipynb",
                    "output_dir": d["notebook"], "log": "x.log", "error": None, "results": d})
    return _save(tmp_path, "committed-run", {"run": "committed-run", "profile": "cpu", "seed": 0,
                                             "notebooks": nbs, "summary": "ok", "failed": []})


def test_committed_results_reproduce_themselves(tmp_path, capsys):
    from defectlib.course import reproduce
    ref = reproduce.load(REPO_RESULTS)
    assert ref.layout == "committed" and ref.all_seeds() == [0, 1, 2]
    rows, counts = reproduce.compare(ref, ref)
    n_values = sum(len(by_seed) for by_seed in ref.values.values())
    assert {k: counts[k] for k in reproduce.STATUSES} == dict.fromkeys(reproduce.STATUSES, 0) | {"identical": n_values}
    n_metrics = sum(len(json.loads(p.read_text())["metrics"]) for p in REPO_RESULTS.glob("*/results.json"))
    assert n_values >= n_metrics > 100 and not reproduce.failed(counts)  # every seed-0 metric, plus the other seeds
    # the committed seed-0 results as a run, checked the way a user would
    run = _committed_as_run(tmp_path)
    assert report.main([str(run), "--against", str(REPO_RESULTS)]) == 0
    assert f"REPRODUCED: committed-run against results: {n_metrics} identical, 0 within" in capsys.readouterr().out


def test_speed_measurements_are_listed_never_failed(tmp_path):
    from defectlib.course import reproduce
    spread = {"phase5/mAP": SEEDS, "complexity/OCINet/images_per_s@224": {0: 3.0, 1: 3.1, 2: 2.9}}
    ref = reproduce.load(_committed(tmp_path, spread=spread))
    run = reproduce.load(_run(tmp_path, {"phase5/mAP": 40.0, "complexity/OCINet/images_per_s@224": 108.0,
                                         "phase5/AR100": 30.0}))
    rows, counts = reproduce.compare(run, ref)
    assert _statuses(rows)[("complexity/OCINet/images_per_s@224", 0)] == "speed"
    assert counts["speed"] == 1 and not reproduce.failed(counts)
    assert reproduce.machine_dependent("x", "images/s") and not reproduce.machine_dependent("phase5/mAP", "%")
