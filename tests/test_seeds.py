"""defectlib.course.seeds: separately run seeds gathered into the committed results/ layout."""
from __future__ import annotations

import json
import statistics

import pytest

from defectlib.course import seeds

NB = "03_ocinet_nrsd"


def _run(tmp_path, name, seed, iou, profile="cpu", status="ok", dry_run=False):
    own = {"notebook": NB, "profile": profile, "seed": seed, "config": {"dry_run": dry_run}, "git_commit": "abc",
           "timings": {"train": 1.0},
           "metrics": [{"name": "full/IoU", "value": iou, "unit": "%", "dataset": "NEU-Seg test", "real": True},
                       {"name": "note", "value": "text", "dataset": "-", "real": False}]}
    entry = {"notebook": NB, "source": NB, "seed": seed, "status": status, "results": own}
    folder = tmp_path / name
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"run": name, "profile": profile, "notebooks": [entry]}))
    return folder


def test_three_single_seed_runs_become_results_and_seed_table(tmp_path):
    runs = [_run(tmp_path, f"r{s}", s, v) for s, v in ((0, 66.0), (1, 70.0), (2, 71.0))]
    written = seeds.commit(runs, tmp_path / "results")
    folder = tmp_path / "results" / NB
    assert sorted(p.name for p in written) == ["results.json", "seeds.json"]
    assert json.loads((folder / "results.json").read_text())["seed"] == 0
    table = json.loads((folder / "seeds.json").read_text())
    assert table["seeds"] == [0, 1, 2] and table["profile"] == "cpu"
    (row,) = table["rows"]                              # the text metric has no spread
    assert row["values"] == {"0": 66.0, "1": 70.0, "2": 71.0}
    assert row["mean"] == pytest.approx(69.0) and row["sd"] == pytest.approx(statistics.stdev([66, 70, 71]))
    assert table["runs"][f"{NB}-seed1"]["run"] == "r1"


@pytest.mark.parametrize("bad, message", [({"profile": "smoke"}, "profile"), ({"status": "failed"}, "did not finish"),
                                          ({"dry_run": True}, "dry run"), ({"seed": 0}, "also in")])
def test_mixed_or_unfinished_runs_are_refused(tmp_path, bad, message):
    good = _run(tmp_path, "good", 0, 66.0)
    kw = {"seed": 1, **bad}
    other = _run(tmp_path, "other", kw.pop("seed"), 70.0, **kw)
    with pytest.raises(ValueError, match=message):
        seeds.commit([good, other], tmp_path / "results")
    assert seeds.main([str(good), str(other), "--into", str(tmp_path / "r2")]) == 1


def test_seed_table_carries_the_verdict_on_the_papers_claim(tmp_path):
    """OCINet vs Base over three seeds: the seeds tool writes the paired-t verdict into seeds.json."""
    def run(name, seed, full, base, real=True):
        folder = _run(tmp_path, name, seed, full)
        data = json.loads((folder / "results.json").read_text())
        data["notebooks"][0]["results"]["metrics"] = [
            {"name": "full/NEU-Seg test/IoU", "value": full, "real": real},
            {"name": "base/NEU-Seg test/IoU", "value": base, "real": real}]
        (folder / "results.json").write_text(json.dumps(data))
        return folder
    runs = [run(f"r{s}", s, f, b) for s, f, b in ((0, 66.4, 67.2), (1, 65.3, 66.4), (2, 67.5, 68.1))]
    seeds.commit(runs, tmp_path / "results")
    (v,) = json.loads((tmp_path / "results" / NB / "seeds.json").read_text())["verdicts"]
    assert v["status"] == "does not hold" and "OCINet beats its Base" in v["statement"]   # Base wins every seed
    fake = [run(f"s{s}", s, f, b, real=False) for s, f, b in ((0, 70.0, 60.0), (1, 71.0, 60.0), (2, 72.0, 60.0))]
    seeds.commit(fake, tmp_path / "fake")
    (v,) = json.loads((tmp_path / "fake" / NB / "seeds.json").read_text())["verdicts"]
    assert v["status"] == "not tested"
