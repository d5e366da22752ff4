"""TwoStagePipeline (paper 001): the gate, thresholds tuned on validation, and a valid Kaggle submission.

The RLE code belongs to defectlib.data.severstal; here it is exercised through the submission the
notebook writes, checked against a decoder written independently below.
"""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from defectlib.models.classifier import build_classifier
from defectlib.models.unet import ENCODERS, build_unet
from defectlib.experiments.severstal.pipeline import TwoStagePipeline, apply_thresholds, tune_thresholds


class Fixed(nn.Module):
    """A stand-in network returning preset logits and recording the batch sizes it was given."""

    def __init__(self, logits: torch.Tensor, num_classes: int | None = None):
        super().__init__()
        self.logits, self.seen = logits, []
        if num_classes is not None:
            self.num_classes = num_classes

    def forward(self, x):
        self.seen.append(x.shape[0])
        idx = x[:, 0, 0, 0].long()  # images carry their index in pixel (0, 0)
        return self.logits[idx]


def _images(n, h=8, w=8):
    x = torch.zeros(n, 1, h, w)
    x[:, 0, 0, 0] = torch.arange(n).float()
    return x


def test_gate_empties_masks_and_skips_segmentation():
    n, c = 4, 2
    cls_logits = torch.tensor([3.0, -3.0, 0.1, -0.1])                  # p = .95 .05 .52 .48
    seg_logits = torch.full((n, c, 8, 8), 5.0)                          # U-Net: defect everywhere
    seg = Fixed(seg_logits, num_classes=c)
    pipe = TwoStagePipeline(Fixed(cls_logits), seg, gate_threshold=0.5)
    masks, scores = pipe.predict(_images(n))
    assert masks.dtype == torch.bool and masks.shape == (n, c, 8, 8)
    assert masks[[0, 2]].all() and not masks[[1, 3]].any()
    torch.testing.assert_close(scores, torch.sigmoid(cls_logits))
    assert seg.seen == [2]                                              # gated images never segmented
    pipe.gate_threshold = 0.99                                          # all gated out
    masks, _ = pipe.predict(_images(n))
    assert not masks.any() and seg.seen == [2]


def test_pipeline_equals_rule_on_precomputed_outputs():
    torch.manual_seed(0)
    n, c = 6, 3
    cls_logits, seg_logits = torch.randn(n), torch.randn(n, c, 8, 8)
    pipe = TwoStagePipeline(Fixed(cls_logits), Fixed(seg_logits, c), 0.4, [0.3, 0.5, 0.7], 5)
    masks, scores = pipe.predict(_images(n))
    probs = torch.sigmoid(seg_logits)
    # reference written out element by element
    ref = torch.zeros(n, c, 8, 8, dtype=torch.bool)
    for i in range(n):
        for k, t in enumerate([0.3, 0.5, 0.7]):
            m = probs[i, k] >= t
            if torch.sigmoid(cls_logits[i]) >= 0.4 and m.sum() >= 5:
                ref[i, k] = m
    assert torch.equal(masks, ref)
    # without a classifier the pipeline is the U-Net alone
    alone, _ = TwoStagePipeline(None, Fixed(seg_logits, c)).predict(_images(n))
    assert torch.equal(alone, probs >= 0.5)


def test_apply_thresholds_validates():
    with pytest.raises(ValueError, match="per-class"):
        apply_thresholds(torch.rand(2, 3, 4, 4), None, pixel_threshold=[0.5, 0.5])
    with pytest.raises(ValueError, match="scores must have shape"):
        apply_thresholds(torch.rand(2, 3, 4, 4), torch.rand(3))


def _mean_dice(pred, target):  # per (image, class), empty-empty = 1: the Kaggle rule, written here
    p, t = pred.flatten(2).float(), target.flatten(2).float()
    inter, total = (p * t).sum(-1), p.sum(-1) + t.sum(-1)
    return torch.where(total == 0, 1.0, 2 * inter / total.clamp(min=1)).mean().item()


def test_tune_thresholds_finds_the_gate_that_helps():
    torch.manual_seed(0)
    n = 20
    target = torch.zeros(n, 1, 8, 8)
    target[:10, :, 2:6, 2:6] = 1                                         # 10 defective, 10 clean
    probs = torch.where(target.bool(), 0.6 + 0.05 * torch.rand(n, 1, 8, 8),  # defects at .60-.65
                        0.3 * torch.rand(n, 1, 8, 8))
    probs[10:, :, 0, 0] = 0.66                                           # one false pixel per clean image
    scores = torch.cat([torch.rand(10) * 0.3 + 0.7, torch.rand(10) * 0.3])  # a perfect gate at 0.5
    best, table = tune_thresholds(probs, target.bool(), _mean_dice, scores,
                                  gate_grid=(0.0, 0.5, 0.9), pixel_grid=(0.5, 0.7))
    assert best["gate_threshold"] == 0.5 and best["pixel_threshold"] == 0.5
    assert best["score"] == pytest.approx(1.0) and len(table) == 6
    alone, _ = tune_thresholds(probs, target.bool(), _mean_dice, None, pixel_grid=(0.5, 0.7))
    # the U-Net alone cannot both keep the defects and drop the false pixels: 0.5 at best
    assert alone["gate_threshold"] is None and alone["score"] == pytest.approx(0.5)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_pipeline_builds_and_trains_a_step(encoder):
    torch.manual_seed(0)
    unet, gate = build_unet(encoder, 4, 1), build_classifier("resnet34", 1)
    x = torch.rand(2, 1, 64, 128)
    y = torch.zeros(2, 4, 64, 128)
    y[0, 2, 10:20, 30:60] = 1
    opt = torch.optim.Adam([*unet.parameters(), *gate.parameters()], lr=1e-3)
    loss = (F.binary_cross_entropy_with_logits(unet(x), y)
            + F.binary_cross_entropy_with_logits(gate(x), y.flatten(1).amax(1)))
    loss.backward()
    opt.step()
    masks, scores = TwoStagePipeline(gate, unet).predict(x)
    assert masks.shape == (2, 4, 64, 128) and scores.shape == (2,)
    assert not unet.training and not gate.training


# --- Kaggle submission ---------------------------------------------------------------------------
def reference_rle_decode(rle: str, h: int, w: int) -> np.ndarray:
    """Independent decoder: runs of (1-indexed start, length), pixels counted down columns."""
    out = np.zeros(h * w, np.uint8)
    nums = [int(v) for v in rle.split()]
    for start, length in zip(nums[0::2], nums[1::2]):
        out[start - 1:start - 1 + length] = 1
    return out.reshape(w, h).T                                            # column-major


def test_rle_column_major_one_indexed():
    sev = pytest.importorskip("defectlib.data.severstal")
    m = np.zeros((256, 1600), np.uint8)
    m[0, 0] = 1
    assert sev.rle_encode(m) == "1 1"
    m[1, 0] = 1
    assert sev.rle_encode(m) == "1 2"                                     # down the column first
    m[:] = 0
    m[0, 1] = 1
    assert sev.rle_encode(m) == "257 1"                                   # next column starts at 257
    m[255, 1599] = 1
    assert sev.rle_encode(m) == f"257 1 {256 * 1600} 1"


def test_submission_round_trip_and_validity(tmp_path):
    sev = pytest.importorskip("defectlib.data.severstal")
    rng = np.random.default_rng(0)
    preds = {}
    for i in range(5):
        m = np.zeros((4, 256, 1600), bool)
        if i:                                                             # image 0 stays clean
            m[i % 4, rng.integers(0, 200):, rng.integers(0, 1500):][:40, :80] = True
            m[(i + 1) % 4] = rng.random((256, 1600)) > 0.999                 # scattered pixels
            m[(i + 1) % 4, :, -1] = True                                     # a run ending on the last pixel
        preds[f"{i:04d}.jpg"] = m
    path = sev.write_submission(tmp_path / "submission.csv", preds)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ImageId", "EncodedPixels", "ClassId"]
    rows = rows[1:]
    assert len(rows) == 4 * len(preds)                                    # one row per image x class
    assert {(r[0], int(r[2])) for r in rows} == {(k, c) for k in preds for c in (1, 2, 3, 4)}
    for image_id, rle, cls in rows:
        nums = [int(v) for v in rle.split()]
        starts, lengths = np.array(nums[0::2]), np.array(nums[1::2])
        assert len(nums) % 2 == 0 and (lengths >= 1).all() and (starts >= 1).all()
        assert (np.diff(starts) > 0).all() and (starts[1:] > starts[:-1] + lengths[:-1]).all()
        assert (starts + lengths - 1 <= 256 * 1600).all()
        truth = preds[image_id][int(cls) - 1]
        assert np.array_equal(reference_rle_decode(rle, 256, 1600), truth)
        assert np.array_equal(sev.rle_decode(rle) > 0, truth)
    assert all(r[1] == "" for r in rows if r[0] == "0000.jpg")


def test_class_iou_equals_scikit_learn_jaccard_per_class_and_the_report_carries_it():
    from sklearn.metrics import jaccard_score

    from defectlib.experiments.severstal.pipeline import Outputs, class_iou, dice_report
    from defectlib.experiments.severstal.recipe import iou_curve

    g = torch.Generator().manual_seed(4)
    targets = torch.rand(6, 3, 16, 16, generator=g) > 0.7
    targets[:, 2] = False                                    # a class absent from every image
    probs = (0.6 * targets + 0.5 * torch.rand(6, 3, 16, 16, generator=g)).clamp(0, 1)
    probs[:2, 2, :4, :4] = 0.9                               # ... where the model marks pixels
    masks = probs >= 0.5
    ious = class_iou(masks, targets)
    for c in range(2):
        ref = jaccard_score(targets[:, c].flatten().numpy(), masks[:, c].flatten().numpy())
        assert ious[c] == pytest.approx(ref, abs=1e-12)
    empty = torch.zeros_like(masks)
    assert class_iou(empty, torch.zeros_like(targets))[2] == 1.0          # nothing to find, nothing found
    assert class_iou(masks, targets)[2] == pytest.approx(0.0)             # false positives only
    with pytest.raises(ValueError, match="differ in shape"):
        class_iou(masks[:, :2], targets)
    rep = dice_report(Outputs(probs.half(), None, targets))
    assert rep["U-Net alone"]["iou_per_class"] == pytest.approx(class_iou(probs.half() >= 0.5, targets))

    class Fixed(torch.nn.Module):                           # a "segmenter" answering the stored logits
        def forward(self, x):
            return torch.logit(probs[x[:, 0, 0, 0].long()].float(), eps=1e-6)

    loader = [(torch.arange(6.0).view(6, 1, 1, 1).expand(6, 1, 16, 16), targets)]
    value = iou_curve(loader)(Fixed())["test_mIoU"]
    assert value == pytest.approx(100 * sum(class_iou(probs.half().float() >= 0.5, targets)) / 3, abs=1e-6)


def test_collect_predicts_as_training_ran_bf16_channels_last():
    """``collect(precision="bf16", channels_last=True)`` runs the forward pass under bf16 autocast
    in channels_last (what the cpu profiles train with), close to the fp32 answer but not equal to
    it; the default stays exact fp32; the gate scores follow the same path."""
    from defectlib.experiments.severstal.pipeline import collect, collect_scores

    class Probe(nn.Module):                                 # records what the forward pass saw
        def __init__(self, out_channels):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(2, out_channels, 3, padding=1)
            self.seen = []

        def forward(self, x):
            self.seen.append((x.is_contiguous(memory_format=torch.channels_last), torch.is_autocast_enabled("cpu")))
            y = self.conv(x)
            return y if y.shape[1] > 1 else y.mean((1, 2, 3))

    x = torch.rand(4, 2, 24, 24)                          # 2 channels: with 1, both layouts coincide
    loader = [(x, torch.zeros(4, 2, 24, 24))]
    seg, gate = Probe(2), Probe(1)
    exact = collect(seg, loader, gate, progress=False)
    fast = collect(seg, loader, gate, progress=False, precision="bf16", channels_last=True)
    assert seg.seen == [(False, False), (True, True)] and gate.seen == [(False, False), (True, True)]
    ref = torch.sigmoid(seg.conv(x)).half()
    assert torch.equal(exact.probs, ref)
    assert not torch.equal(fast.probs, exact.probs)
    assert fast.probs.dtype == torch.float16 and (fast.probs.float() - exact.probs.float()).abs().max() < 0.02
    assert (fast.scores - exact.scores).abs().max() < 0.02
    scores = collect_scores(gate, loader, progress=False, precision="bf16", channels_last=True)
    assert torch.equal(scores, fast.scores) and gate.seen[-1] == (True, True)


def test_threshold_search_from_counts_equals_thresholding_every_grid_point(monkeypatch):
    """tune_thresholds reads the probabilities once per pixel threshold (the gate and the minimum
    area only empty whole class masks), and must give the direct search's table to the last bit:
    the notebook's chosen thresholds and its numbers must not move."""
    import defectlib.experiments.severstal.pipeline as P
    from defectlib.metrics import kaggle_dice
    g = torch.Generator().manual_seed(0)
    n, c = 12, 3
    targets = torch.zeros(n, c, 20, 24, dtype=torch.bool)
    for i in range(0, n, 2):                    # half the images clean; blobs of varying size
        targets[i, i % c, 2:4 + i, 3:6 + i] = True
    noise = torch.rand(n, c, 20, 24, generator=g)
    probs = (0.6 * targets + 0.5 * noise).clamp(0, 1).half()
    scores = torch.rand(n, generator=g)
    grids = dict(gate_grid=(0.1, 0.3, 0.5, 0.7), pixel_grid=(0.3, 0.5, (0.4, 0.6, 0.7)), min_area_grid=(0, 5, 40))
    for metric, sc in ((kaggle_dice, scores), (kaggle_dice, None), (P.mean_iou, None), (P.mean_iou, scores)):
        fast_best, fast = tune_thresholds(probs, targets, metric, sc, **grids)
        slow_best, slow = tune_thresholds(probs, targets, lambda m, t: metric(m, t), sc, **grids)
        assert fast == slow and fast_best == slow_best
        assert len({r["score"] for r in fast}) > 3              # the grid is not flat
    calls = []
    real = P.apply_thresholds
    monkeypatch.setattr(P, "apply_thresholds", lambda *a, **k: calls.append(1) or real(*a, **k))
    tune_thresholds(probs, targets, kaggle_dice, scores, **grids)
    assert calls == []                                          # 36 grid points, no mask thresholded


def test_dice_report_from_counts_equals_the_metrics_on_whole_masks_to_the_last_bit():
    """``dice_report`` / ``thresholded_iou`` / ``unet_on_clean``'s counts (per-(image, class) pixel
    counts, chunk by chunk: no mask of the whole split) give exactly (``==``) what ``kaggle_dice``,
    the author's Dice (on float64 copies, as before) and ``class_iou`` give on the whole masks, with
    a gate, minimum areas, per-class thresholds and more images than a chunk."""
    from defectlib.experiments.severstal.evaluation import max_probability
    from defectlib.experiments.severstal.pipeline import (Outputs, apply_thresholds, class_iou, dice_report,
                                                          mask_counts, thresholded_iou)
    from defectlib.metrics import kaggle_dice, severstal_author_dice

    g = torch.Generator().manual_seed(7)
    targets = torch.rand(21, 4, 24, 40, generator=g) > 0.8
    targets[::3] = False                                               # clean images
    targets[:, 3] = False                                              # a class absent everywhere
    probs = (0.5 * targets + 0.6 * torch.rand(21, 4, 24, 40, generator=g)).clamp(0, 1).half()
    scores = torch.rand(21, generator=g)
    out = Outputs(probs, scores, targets)

    def author_float64(masks, t):                                      # the former computation
        p, q = (a.numpy().astype(np.float64).reshape(len(a), -1) for a in (masks, t))
        return float(((2 * (p * q).sum(1) + 1.0) / (p.sum(1) + q.sum(1) + 1.0)).mean())

    for gate, pix, area in ((0.5, 0.5, 0), (0.3, (0.35, 0.5, 0.65, 0.4), 40), (0.7, 0.6, (0, 16, 64, 8))):
        rep = dice_report(out, gate, pix, area)
        rows = {"predict nothing": torch.zeros_like(targets),
                "U-Net alone": apply_thresholds(probs, None, 0.0, pix, area),
                "two-stage": apply_thresholds(probs, scores, gate, pix, area),
                "two-stage, perfect gate": apply_thresholds(probs, out.defective.float(), 0.5, pix, area)}
        assert list(rep) == list(rows)
        for name, masks in rows.items():
            k, per_class = kaggle_dice(masks, targets, per_class=True)
            assert rep[name]["kaggle"] == k and rep[name]["kaggle_per_class"] == [float(v) for v in per_class]
            assert rep[name]["author"] == author_float64(masks, targets) == severstal_author_dice(masks, targets)
            assert rep[name]["iou_per_class"] == class_iou(masks, targets)
        assert thresholded_iou(out, pix, area) == class_iou(rows["U-Net alone"], targets)
        _, pred, _ = mask_counts(probs, targets, None, 0.0, pix, area, chunk=4)
        assert torch.equal(torch.from_numpy(pred.sum(1) > 0), rows["U-Net alone"].flatten(1).any(1))
    assert torch.equal(max_probability(probs, chunk=4), probs.float().flatten(1).amax(1))
    assert "two-stage" not in dice_report(Outputs(probs, None, targets))
