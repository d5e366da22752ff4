"""defectlib.experiments.danet: the starting weights, the parameter counts and the summary notebook
01 and its command record (the command itself: tests/test_experiment_cli.py)."""
from __future__ import annotations

from types import SimpleNamespace

from defectlib import profiles
from defectlib.experiments import danet as E
from defectlib.models import danet
from defectlib.record import Recorder


def test_starting_weights_coco_only_for_the_paper_profile_and_never_in_a_dry_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))   # no cached file: a dry run says where it goes
    said = []
    assert E.starting_weights(profiles.get("01", "cpu"), say=said.append) is None and not said
    paper = profiles.get("01", "paper")
    assert E.starting_weights(paper, say=said.append).name == "COCO_V1" and not said
    assert E.starting_weights(paper, dry_run=True, say=said.append) is None
    file, url = danet.pretrained_file(E.starting_weights(paper))
    assert said == [f"dry run: the full run downloads {url}; a machine without internet needs that file at {file}"]


def test_params_and_summary_are_recorded_as_the_notebook_shows_them():
    cfg = profiles.get("01", "smoke")
    rec = Recorder(None, "01_danet_neu_det", "smoke")
    counts = E.record_params(rec, cfg)
    assert list(counts) == list(danet.PHASES) and counts[5] > counts[2]
    assert [(m["name"], m["value"]) for m in rec.data["metrics"]] == [
        (f"phase{ph}/params_M", n / 1e6) for ph, n in counts.items()]
    results = {2: SimpleNamespace(ap50=0.25), 5: SimpleNamespace(ap50=0.30)}
    lines, claims = E.record_summary(rec, results, "NEU-DET stand-in", False, "smoke", dry_run=False)
    assert lines.splitlines()[1] == "phase 2 -> 5: +5.0 points (paper +6.53)"
    assert rec.data["notes"] == [lines.replace("\n", "; "), claims] and claims.startswith("**This run**")
