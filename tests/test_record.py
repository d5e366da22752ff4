"""Recorder: what a notebook writes so the runner's report can show it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from defectlib.record import Recorder


def test_recorder_writes_metrics_timings_figures_and_context(tmp_path):
    import matplotlib.pyplot as plt

    rec = Recorder(tmp_path / "nb", "01_x", "cpu", config={"epochs": 2, "size": (200, 200)},
                   seed=3, device=torch.device("cpu"), data_root=tmp_path)
    assert rec.metric("AP50", np.float32(41.5), paper="danet/table3/phase5/crazing",
                      dataset="NEU-DET", real=True, unit="%") == np.float32(41.5)
    rec.metric("dice", torch.tensor(0.5), paper="synth/table1/RealClutch/DeepLabV3",
               dataset="MTD", real=False)
    rec.timing("train_s", 12.5)
    rec.note("hello")
    fig = plt.figure()
    rec.figure(fig, "curve")
    plt.close(fig)
    data = json.loads(rec.save().read_text())
    assert [m["value"] for m in data["metrics"]] == [41.5, 0.5]
    assert data["metrics"][1]["paper"] == "synth/table1/RealClutch (baseline)/DLv3"  # canonical
    assert data["config"] == {"epochs": 2, "size": [200, 200]} and data["seed"] == 3
    assert data["device"] == "cpu" and data["timings"]["train_s"] == 12.5
    assert data["figures"] == ["figures/curve.png"] and (tmp_path / "nb/figures/curve.png").is_file()
    assert torch.__version__.startswith(data["versions"]["torch"]) and "notebook_total_s" in data["timings"]


def test_unknown_paper_key_fails_at_once():
    rec = Recorder(None, "01_x", "smoke")
    with pytest.raises(KeyError, match="danet/table3/phase5/mAP"):
        rec.metric("mAP", 1.0, paper="danet/table3/phase5/map", dataset="NEU-DET", real=False)
    assert rec.save() is None  # no output_dir: nothing written (interactive use)
