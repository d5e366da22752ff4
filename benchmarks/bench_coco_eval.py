"""Benchmark: defectlib's COCO evaluation against pycocotools and faster-coco-eval, one run.

Case (issue 4): 360 images x 6 classes x 100 detections per image, as after evaluating a
NEU-DET test split with torchvision's default ``box_detections_per_img=100``. Ground truth: 1-6
boxes per image; detections: 40% jittered copies of ground-truth boxes, the rest random boxes.
All three tools get the same boxes; the printed numbers are ratios (their time / ours), measured
as the median of ``--repeats`` runs each, interleaved, in one process. Also checks the 12 stats agree.

    OMP_NUM_THREADS=1 python benchmarks/bench_coco_eval.py
"""
from __future__ import annotations

import argparse
import contextlib
import io

import numpy as np
import torch

from defectlib.complexity import median_times
from defectlib.metrics.detection import evaluate_detections


def make_case(seed=0, n_img=360, n_cls=6, n_det=100, size=200.0):
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(n_img):
        n_gt = int(rng.integers(1, 7))
        xy = rng.uniform(0, size - 40, (n_gt, 2))
        gb = np.concatenate([xy, np.minimum(xy + rng.uniform(8, 120, (n_gt, 2)), size)], 1)
        gl = rng.integers(1, n_cls + 1, n_gt)
        src = rng.integers(0, n_gt, n_det)
        near = rng.random(n_det) < 0.4
        rxy = rng.uniform(0, size - 10, (n_det, 2))
        rnd = np.concatenate([rxy, rxy + rng.uniform(4, 100, (n_det, 2))], 1)
        db = np.where(near[:, None], gb[src] + rng.normal(0, 8, (n_det, 4)), rnd)
        db[:, 2:] = np.maximum(db[:, 2:], db[:, :2] + 1)
        dl = np.where(near & (rng.random(n_det) < 0.7), gl[src], rng.integers(1, n_cls + 1, n_det))
        targets.append({"boxes": gb, "labels": gl})
        preds.append({"boxes": db, "scores": rng.random(n_det), "labels": dl})
    return preds, targets


def to_coco(preds, targets, n_cls):
    images, anns, dets = [], [], []
    for i, (p, t) in enumerate(zip(preds, targets)):
        images.append({"id": i + 1, "width": 200, "height": 200})
        for b, c in zip(t["boxes"], t["labels"]):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c),
                         "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0})
        for b, s, c in zip(p["boxes"], p["scores"], p["labels"]):
            dets.append({"image_id": i + 1, "category_id": int(c),
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": float(s)})
    cats = [{"id": c, "name": str(c)} for c in range(1, n_cls + 1)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def run_cocoapi(coco_cls, eval_cls, gt_dict, dets):
    """What a user of that tool times: load results, evaluate, accumulate, summarize."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_cls()
        gt.dataset = gt_dict
        gt.createIndex()
        ev = eval_cls(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)[:12]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    preds, targets = make_case()
    gt_dict, dets = to_coco(preds, targets, 6)  # each tool gets its natural input, untimed:
    # torchvision-style dicts of tensors for defectlib, COCO json dicts for the COCO APIs
    tv_preds = [{k: torch.as_tensor(v) for k, v in p.items()} for p in preds]
    tv_targets = [{k: torch.as_tensor(v) for k, v in t.items()} for t in targets]
    tools = {"defectlib": lambda: evaluate_detections(tv_preds, tv_targets, num_classes=6).stats}
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
        tools["pycocotools"] = lambda: run_cocoapi(COCO, COCOeval, gt_dict, dets)
    except ImportError:
        print("pycocotools not installed: skipped")
    try:
        import faster_coco_eval as fce
        tools["faster-coco-eval"] = lambda: run_cocoapi(fce.COCO, fce.COCOeval_faster, gt_dict, dets)
    except ImportError:
        print("faster-coco-eval not installed: skipped")
    stats = {k: f() for k, f in tools.items()}  # warm-up + agreement check
    med = median_times(tools, args.repeats)  # interleaved: same load for every tool
    print(f"case: {len(preds)} images x 6 classes x 100 detections per image "
          f"({sum(len(t['boxes']) for t in targets)} GT boxes); median of {args.repeats} runs")
    for k in tools:
        if k != "defectlib":
            diff = np.abs(stats[k] - stats["defectlib"]).max()
            print(f"{k:>17}: ratio {k} / defectlib = {med[k] / med['defectlib']:5.2f}x   "
                  f"(max |stat difference| = {diff:.1e})")
    print(f"{'':>17}  AP = {stats['defectlib'][0]:.4f}, AP50 = {stats['defectlib'][1]:.4f}")


if __name__ == "__main__":
    main()
