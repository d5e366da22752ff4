"""Weighted F-measure against PySODMetrics on random and real (NEU-Seg) masks."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from defectlib.metrics.wfm import gaussian_kernel_1d, weighted_fmeasure

psm = pytest.importorskip("py_sod_metrics")


def oracle(pred_u8, gt):
    """PySODMetrics on uint8 maps (it divides by 255 and min-max normalises) and 0/255 masks."""
    out = []
    for p, g in zip(pred_u8, gt):
        m = psm.WeightedFmeasure(beta=1)
        m.step(pred=p, gt=g.astype(np.uint8) * 255)
        out.append(float(m.get_results()["wfm"]))
    return np.array(out)


def soft_maps(rng, gt):
    """Blurred, shifted, noisy versions of the masks as uint8 maps spanning 0..255."""
    maps = []
    for g in gt:
        m = ndimage.gaussian_filter(np.roll(g.astype(float), rng.integers(-3, 4, 2), (0, 1)), rng.uniform(0.5, 3))
        m = m + 0.3 * rng.random(g.shape) * (rng.random() < 0.5)
        m = (m - m.min()) / (m.max() - m.min() + 1e-12)
        maps.append(np.round(m * 255).astype(np.uint8))
    return np.stack(maps)


def test_equals_pysodmetrics_random():
    rng = np.random.default_rng(0)
    n, h, w = 10, 64, 80
    yy, xx = np.mgrid[:h, :w]
    gt = np.zeros((n, h, w), bool)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):  # blobs and thin lines, some touching the border
            cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(2, 12)
            gt[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        gt[i, rng.integers(0, h)] |= rng.random(w) < 0.5
    pred = soft_maps(rng, gt)
    pred[-1] = np.where(gt[-1], 255, 0)  # a binary prediction
    ours = weighted_fmeasure(torch.from_numpy(pred / 255.0), torch.from_numpy(gt), reduction="none")
    ref = oracle(pred, gt)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)
    assert weighted_fmeasure(pred / 255.0, gt) == pytest.approx(ref.mean(), abs=1e-12)
    assert ref.std() > 0.05  # the cases differ: not a test of constants


def test_perfect_prediction_scores_one_and_empty_gt_scores_zero():
    gt = np.zeros((2, 20, 20), bool)
    gt[0, 5:9, 4:15] = True
    pred = gt.astype(float)
    scores = weighted_fmeasure(pred, gt, reduction="none")
    assert scores[0] == pytest.approx(1.0, abs=1e-12)
    assert scores[1] == 0.0  # empty ground truth: 0, as PySODMetrics scores it
    assert oracle((pred * 255).astype(np.uint8), gt)[1] == 0.0
    assert weighted_fmeasure(pred, gt, empty_gt_score=float("nan"), reduction="none")[1] != 0


def test_far_false_alarm_costs_more_than_near_one():
    gt = np.zeros((1, 40, 40), bool)
    gt[0, 18:22, 18:22] = True
    near, far = gt.astype(float), gt.astype(float)
    near[0, 17, 17] = 1.0
    far[0, 0, 0] = 1.0
    assert weighted_fmeasure(near, gt) > weighted_fmeasure(far, gt)


def test_kernel_is_matlab_fspecial():
    k = gaussian_kernel_1d()
    y, x = np.mgrid[-3:4, -3:4]
    h = np.exp(-(x * x + y * y) / 50.0)
    np.testing.assert_allclose(np.outer(k, k), h / h.sum(), atol=1e-15)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="binary"):
        weighted_fmeasure(np.zeros((1, 4, 4)), np.full((1, 4, 4), 0.5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        weighted_fmeasure(np.full((1, 4, 4), 2.0), np.zeros((1, 4, 4)))


@pytest.mark.realdata
def test_equals_pysodmetrics_on_neu_seg_masks():
    root = os.environ.get("DEFECTLIB_DATA")
    folder = Path(root or "/nonexistent") / "neu-seg" / "annotations" / "test"
    if not folder.is_dir():
        pytest.skip(f"NEU-Seg masks not found (DEFECTLIB_DATA={root!r}, looked in {folder})")
    from PIL import Image

    files = sorted(folder.glob("*.png"))[::42][:20]
    gt = np.stack([np.array(Image.open(f)) > 0 for f in files])
    rng = np.random.default_rng(1)
    pred = soft_maps(rng, gt)
    ours = weighted_fmeasure(pred / 255.0, gt, reduction="none")
    np.testing.assert_allclose(ours, oracle(pred, gt), rtol=0, atol=1e-9)
