"""Benchmark: defectlib's batched weighted F-measure against PySODMetrics, one run.

Case: a NEU-Seg-sized test set, ``--n`` (840) 200x200 masks with soft prediction maps (blurred,
shifted, noisy masks). Uses the real NEU-Seg test masks when ``$DEFECTLIB_DATA/neu-seg`` exists,
else random blobs. Prints the ratio PySODMetrics time / defectlib time (median of ``--repeats``,
interleaved) and the largest difference between the two scores.

    OMP_NUM_THREADS=1 python benchmarks/bench_wfm.py
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from defectlib.complexity import median_times
from defectlib.metrics.wfm import weighted_fmeasure


def load_masks(n, rng):
    folder = Path(os.environ.get("DEFECTLIB_DATA", "/nonexistent")) / "neu-seg" / "annotations" / "test"
    if folder.is_dir():
        from PIL import Image

        files = sorted(folder.glob("*.png"))[:n]
        return np.stack([np.array(Image.open(f)) > 0 for f in files]), f"NEU-Seg test masks ({folder})"
    yy, xx = np.mgrid[:200, :200]
    gt = np.zeros((n, 200, 200), bool)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            cy, cx, r = rng.integers(0, 200, 2).tolist() + [int(rng.integers(3, 40))]
            gt[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    return gt, "random blobs (DEFECTLIB_DATA/neu-seg not found)"


def soft_maps(gt, rng):
    out = np.empty(gt.shape, np.uint8)
    for i, g in enumerate(gt):
        m = ndimage.gaussian_filter(np.roll(g.astype(float), rng.integers(-3, 4, 2), (0, 1)), 2.0)
        m += 0.2 * rng.random(g.shape)
        out[i] = np.round(255 * (m - m.min()) / (m.max() - m.min() + 1e-12))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=840)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    gt, source = load_masks(args.n, rng)
    pred = soft_maps(gt, rng)
    # each tool gets its natural input, untimed: float maps in [0, 1] (a sigmoid output) for
    # defectlib, 8-bit images for PySODMetrics (which divides by 255 and min-max normalises)
    gt255 = gt.astype(np.uint8) * 255
    pred01 = pred / 255.0

    def ours():
        return weighted_fmeasure(pred01, gt, reduction="none")

    def pysod():
        from py_sod_metrics import WeightedFmeasure

        out = []
        for p, g in zip(pred, gt255):
            m = WeightedFmeasure(beta=1)
            m.step(pred=p, gt=g)
            out.append(float(m.get_results()["wfm"]))
        return np.array(out)

    tools = {"defectlib": ours}
    try:
        import py_sod_metrics  # noqa: F401
        tools["pysodmetrics"] = pysod
    except ImportError:
        print("pysodmetrics not installed: nothing to compare with")
    scores = {k: f() for k, f in tools.items()}
    med = median_times(tools, args.repeats)  # interleaved: same load for every tool
    print(f"case: {len(gt)} maps of {gt.shape[1]}x{gt.shape[2]} from {source}; median of {args.repeats} runs")
    if "pysodmetrics" in tools:
        print(f"ratio pysodmetrics / defectlib = {med['pysodmetrics'] / med['defectlib']:.2f}x   "
              f"(max |wFm difference| = {np.abs(scores['pysodmetrics'] - scores['defectlib']).max():.1e}, "
              f"mean wFm = {scores['defectlib'].mean():.4f})")


if __name__ == "__main__":
    main()
