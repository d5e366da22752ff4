"""Peak host memory of notebook 02's evaluation at the full Severstal size (issue 27, item 2).

Builds the Severstal-format stand-in (256x1600 strips, ``--images`` of them, split 70/15/15 as the
notebook splits it), an untrained U-Net-ResNet34 (4 sigmoid outputs) and an untrained ResNet34
gate, and runs what notebook 02 runs after training, on CPU, full-size strips (scale 1):
:func:`evaluate_unet` (threshold search for Kaggle Dice and mean IoU on validation, the test
report), :func:`unet_on_clean` (reusing the U-Net's passes, one task for both stages, as the
command and the notebook do) and :func:`evaluate_gate` (the joint gate / pixel / area search),
then :func:`pipeline_predictions`. Prints the peak resident set size (``VmHWM``) after a warm-up
forward pass (the model's own working memory) and after the evaluation, and the growth per
evaluated strip (validation + test), which is what grows with the split (the evaluation keeps
the maps of at most a dozen or so strips for the notebook's figures: a fixed part of the growth):

    python benchmarks/bench_eval_memory.py --images 200
    python benchmarks/bench_eval_memory.py --images 400

Run each size in its own process (the peak of a process never goes down). Untrained networks give
meaningless scores; only the memory is measured.
"""
from __future__ import annotations

import argparse
import time

import torch


def peak_mb() -> float:
    """The peak resident set size of this process so far, in MB (``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=200, help="strips in the stand-in (all splits)")
    ap.add_argument("--batch", type=int, default=2, help="evaluation batch (U-Net and gate)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from defectlib.experiments.severstal.data import build_tasks, eval_loader
    from defectlib.experiments.severstal.evaluation import (evaluate_gate, evaluate_unet, pipeline_predictions,
                                                            unet_on_clean)
    from defectlib.experiments.severstal.pipeline import collect
    from defectlib.experiments.severstal.profile import PROFILES
    from defectlib.models.classifier import build_classifier
    from defectlib.models.unet import build_unet

    cfg = PROFILES["smoke"].replace(standin_images=args.images, severstal_scale=1.0, seg_batch_size=args.batch,
                                    cls_batch_size=args.batch, tune_limit=None, val_limit=None, eval_limit=None)
    t0 = time.time()
    seg_task, gate_task = build_tasks(cfg, None, 0)
    n_val, n_test = len(seg_task.val), len(seg_task.test)
    print(f"stand-in: {args.images} strips 256x1600, {n_val} val + {n_test} test ({time.time() - t0:.0f} s)")
    torch.manual_seed(0)
    unet = build_unet("resnet34", 4, in_channels=1).eval()
    gate = build_classifier("resnet34", in_channels=1).eval()
    predict = dict(device="cpu", max_batches=None, precision="fp32", channels_last=False, progress=False)

    collect(unet, eval_loader(seg_task.val, args.batch), max_batches=1,
            **{k: v for k, v in predict.items() if k != "max_batches"})   # warm-up: the forward's own memory
    base = peak_mb()
    print(f"peak RSS after one warm-up batch: {base:.0f} MB")

    t0 = time.time()
    ev = evaluate_unet(unet, seg_task, cfg, seed=0, predict=predict)
    after_unet = peak_mb()
    clean = unet_on_clean(unet, gate_task, cfg, seed=0, predict=predict, evaluated=ev)
    g = evaluate_gate(gate, gate_task, clean, cfg, seed=0, predict=predict)
    preds = pipeline_predictions(g, clean, cfg, "resnet34")
    peak = peak_mb()
    n = n_val + n_test
    print(f"evaluation: {time.time() - t0:.0f} s; kaggle (untrained) {ev.report['U-Net alone']['kaggle']:.4f}, "
          f"{len(preds)} predictions; maps kept for figures: {len(ev.test.samples)} strips")
    print(f"peak RSS after evaluate_unet: {after_unet:.0f} MB; after the whole evaluation: {peak:.0f} MB")
    print(f"growth over the warm-up peak: {peak - base:.0f} MB for {n} evaluated strips "
          f"= {(peak - base) / n:.1f} MB per strip")


if __name__ == "__main__":
    main()
