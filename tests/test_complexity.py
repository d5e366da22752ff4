"""Parameter count, FLOPs (hand-counted) and the throughput/report functions."""
import pytest
import torch
from torch import nn

from defectlib import complexity


def tiny():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 2))


def test_parameters_and_flops_hand_counted():
    m = tiny()
    assert complexity.count_parameters(m) == 3 * 8 * 9 + 8 + 8 * 2 + 2
    m[0].weight.requires_grad_(False)
    assert complexity.count_parameters(m, trainable_only=True) == 8 + 8 * 2 + 2
    # conv: 2 FLOPs per multiply-add, 27 per output, 8 x 16 x 16 outputs; linear: 2 x 8 x 2
    assert complexity.count_flops(m, (1, 3, 16, 16)) == 2 * 27 * 8 * 16 * 16 + 2 * 8 * 2
    assert complexity.count_flops(m, torch.zeros(2, 3, 16, 16)) == 2 * (2 * 27 * 8 * 16 * 16 + 2 * 8 * 2)
    assert m.training  # restored


def test_throughput_is_median_of_synchronised_repeats(monkeypatch):
    synced = []
    monkeypatch.setattr(complexity, "_sync", lambda device: synced.append(device))
    r = complexity.measure_throughput(tiny(), (4, 3, 16, 16), warmup=2, repeats=5)
    assert len(r["times"]) == 5 and len(synced) == 6  # once after warm-up, once per repeat
    assert r["seconds"] == sorted(r["times"])[2]
    assert r["images_per_s"] == pytest.approx(4 / r["seconds"])


def test_report_prints_table(capsys):
    rows = complexity.complexity_report({"tiny": tiny()}, (1, 3, 16, 16), repeats=2, warmup=1,
                                        paper={"tiny": (29.95, 18.82, 108)})
    out = capsys.readouterr().out
    assert "| tiny | 0.00 |" in out and "29.95 | 18.82 | 108" in out and "GMACs" in out
    assert rows[0].gmacs == pytest.approx(rows[0].gflops / 2) and rows[0].images_per_s > 0


def test_list_inputs_like_torchvision_detectors():
    class ListModel(nn.Module):  # takes a list of images, as torchvision's detection models do
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, images):
            return [self.conv(x[None]) for x in images]

    images = [torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)]
    assert complexity.count_flops(ListModel(), images) == 2 * 2 * (3 * 4 * 8 * 8)
    r = complexity.measure_throughput(ListModel(), images, warmup=1, repeats=2)
    assert r["images_per_s"] == pytest.approx(2 / r["seconds"])
