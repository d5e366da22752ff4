"""Benchmark: accuracy reached in the same wall time by two CPU training recipes, measured in one run.

Model: notebook 02's U-Net-ResNet34 (3 sigmoid outputs: inclusion, patches, scratches), trained
from the same seeded initial weights on NEU-Seg's training split (decoded once and kept in memory,
random horizontal and vertical flips), for ``--minutes`` of wall time each, one after the other in
this process:

A. **defectlib cpu recipe**: ``defectlib.engine.fit``, whole 200x200 images, batch 16, all threads,
   ``precision="auto"`` (bf16 autocast on a CPU with native bf16) + channels_last, AdamW 1e-3
   (weight decay 1e-4) with a one-cycle schedule. One-cycle needs the run's length, so the step
   time is measured first (warm-up steps on a copy of the model, not counted) and the run is
   planned as ``steps = wall time / step time``: fine for a benchmark, not for the notebooks.
B. **plain loop at torch defaults**: what a user would write: fp32, contiguous tensors, default
   threads, Adam 1e-3 constant, batch 8, a hand-written loop that stops once the wall time is used.

Both minimise ``BCEDiceLoss`` (BCE with logits + Dice, paper 001) and are scored by the same
function on the same seeded subset of the NEU-Seg test images (near-duplicates of training images
dropped, as in notebook 02), each predicting in its own numerics: pooled IoU of each class at
probability 0.5, their mean, and the Kaggle Dice of paper 001. Prints a Markdown table and the
ratios A / B of mean IoU and of images per second.

    python benchmarks/time_to_accuracy.py --minutes 10 --data-root ../shared/datasets
    python benchmarks/time_to_accuracy.py --minutes 0.2 --test-limit 16     # smoke run, stand-in data

Run it on an otherwise idle machine: while another process keeps the cores busy, every
multi-threaded torch op waits for them (torch.stack of 300 small tensors: 2.3 s with 2 threads,
1 ms with 1), and the times say more about that process than about the recipes.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from tqdm import tqdm

from defectlib.data import NEUSeg
from defectlib.synth import locate
from defectlib.data.splits import neu_seg_clean_test_ids
from defectlib.engine import TrainConfig, cpu_has_native_bf16, fit, predict, resolve_precision, supervised_loss
from defectlib.losses import BCEDiceLoss
from defectlib.metrics import kaggle_dice, segmentation_scores
from defectlib.models.unet import build_unet

CLASSES = ("inclusion", "patches", "scratches")  # mask values 1, 2, 3 (0 = background)
WARMUP_STEPS = 3                                 # recipe A's step time: median of steps 2 and 3


@dataclass
class Result:
    name: str
    steps: int
    batch: int
    wall_s: float
    scores: dict[str, float]

    @property
    def images_per_s(self) -> float:
        return self.steps * self.batch / self.wall_s


# ------------------------------------------------------------------------------------------ data
def load_split(root: Path, split: str, ids: Sequence[str] | None = None) -> TensorDataset:
    """Images uint8 [N, 1, H, W] and class-index masks uint8 [N, H, W], decoded once."""
    ds = NEUSeg(root, split, ids=ids)
    images, masks = zip(*(ds.load_arrays(i) for i in tqdm(range(len(ds)), desc=f"decode NEU-Seg {split}",
                                                          leave=False)))
    return TensorDataset(torch.from_numpy(np.stack(images)[:, None]), torch.from_numpy(np.stack(masks)))


def to_float(images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images -> [0, 1] floats; class indices -> one {0, 1} channel per defect class."""
    return images.float().div_(255), torch.stack([masks == k for k in (1, 2, 3)], 1).float()


def flip_collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack a batch and flip each sample horizontally / vertically with probability 1/2."""
    x, y = to_float(torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch]))
    for dim in (-1, -2):
        sel = torch.rand(len(x)) < 0.5
        x[sel], y[sel] = x[sel].flip(dim), y[sel].flip(dim)
    return x, y


def train_loader(ds: TensorDataset, batch: int, seed: int, steps: int | None = None) -> DataLoader:
    """Shuffled batches; with ``steps``, one 'epoch' of exactly ``steps`` batches (reshuffled per pass)."""
    g = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(ds, num_samples=None if steps is None else steps * batch, generator=g)
    return DataLoader(ds, batch_size=batch, sampler=sampler, drop_last=True, collate_fn=flip_collate)


# ------------------------------------------------------------------------------------- evaluation
def evaluate(model: torch.nn.Module, test: TensorDataset, precision: str, channels_last: bool,
             desc: str) -> dict[str, float]:
    """Pooled IoU per class at probability 0.5, mean IoU of the 3 classes, Kaggle Dice."""
    loader = DataLoader(TensorDataset(*to_float(*test.tensors)), batch_size=16)
    logits = predict(model, loader, device="cpu", precision=precision, channels_last=channels_last,
                     progress=True, desc=desc)
    pred, target = torch.sigmoid(logits) > 0.5, loader.dataset.tensors[1] > 0.5
    scores = {c: segmentation_scores(pred[:, k], target[:, k], reduction="pooled")["iou"]
              for k, c in enumerate(CLASSES)}
    scores["mean IoU"] = float(np.mean([scores[c] for c in CLASSES]))
    scores["Kaggle Dice"] = kaggle_dice(pred, target)
    return scores


# ---------------------------------------------------------------------------------------- recipes
def recipe_a(model: torch.nn.Module, train: TensorDataset, budget_s: float, seed: int) -> tuple[int, float, str]:
    """defectlib fit, planned from a measured step time; returns (steps, wall time, plan note)."""
    base = TrainConfig(precision="auto", channels_last=True, optimizer="adamw", lr=1e-3, weight_decay=1e-4,
                       schedule="onecycle", seed=seed)
    loss_fn = supervised_loss(BCEDiceLoss())
    stamps: list[float] = []

    def timed_loss(net: torch.nn.Module, batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
        stamps.append(time.perf_counter())  # one call per step: the gaps are whole steps
        return loss_fn(net, batch, device)

    t0 = time.perf_counter()
    fit(copy.deepcopy(model), train_loader(train, 16, seed, WARMUP_STEPS),
        replace(base, max_steps=WARMUP_STEPS, progress=False), loss_fn=timed_loss, device="cpu")
    stamps.append(time.perf_counter())
    step_s = statistics.median(np.diff(stamps)[1:].tolist())  # step 1 pays one-time costs
    steps = max(1, int(budget_s / step_s))
    note = (f"A planned {steps} steps from {step_s:.3f} s/step ({WARMUP_STEPS} warm-up steps on a copy, "
            f"{time.perf_counter() - t0:.1f} s, not counted)")
    tqdm.write(note)
    cfg = replace(base, epochs=1, max_steps=steps, progress=True)  # the loader's length is the run
    t0 = time.perf_counter()
    history = fit(model, train_loader(train, 16, seed, steps), cfg, loss_fn=loss_fn, device="cpu")
    return len(history.steps), time.perf_counter() - t0, note


def recipe_b(model: torch.nn.Module, train: TensorDataset, budget_s: float, seed: int) -> tuple[int, float]:
    """The hand-written loop: fp32, Adam 1e-3 constant, batch 8, stop when the time is used up."""
    torch.use_deterministic_algorithms(False)  # fit (recipe A) turned it on: back to torch's default
    torch.manual_seed(seed)
    loader = train_loader(train, 8, seed)
    criterion = BCEDiceLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    steps = 0
    bar = tqdm(total=round(budget_s), desc="B plain loop", unit="s", dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n:.0f}/{total} s {postfix}")
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < budget_s:
        for x, y in loader:
            loss = criterion(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            bar.n = min(bar.total, time.perf_counter() - t0)
            bar.set_postfix(step=steps, loss=f"{loss.item():.4f}")
            if time.perf_counter() - t0 >= budget_s:
                break
    wall = time.perf_counter() - t0
    bar.close()
    model.zero_grad(set_to_none=True)
    return steps, wall


# ------------------------------------------------------------------------------------------- main
def fresh_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_unet("resnet34", num_classes=len(CLASSES), in_channels=1)


def table(results: list[Result]) -> str:
    head = ["recipe", "steps", "images seen", "wall time (s)", "images/s", *[f"IoU {c}" for c in CLASSES],
            "mean IoU", "Kaggle Dice"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for r in results:
        cells = [r.name, str(r.steps), str(r.steps * r.batch), f"{r.wall_s:.1f}", f"{r.images_per_s:.2f}",
                 *[f"{r.scores[c]:.3f}" for c in CLASSES], f"{r.scores['mean IoU']:.3f}",
                 f"{r.scores['Kaggle Dice']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="training wall time of EACH recipe (default 10)")
    p.add_argument("--data-root", default=None,
                   help="folder holding neu-seg/ (default: $DEFECTLIB_DATA, else the generated stand-in)")
    p.add_argument("--test-limit", type=int, default=240, help="seeded subset of the test images (default 240)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    budget_s = 60.0 * args.minutes
    auto = resolve_precision("auto", "cpu").name
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), native bf16: {cpu_has_native_bf16()} "
          f"(precision 'auto' -> {auto}), {args.minutes:g} min per recipe, seed {args.seed}")

    root, real = locate("neu-seg", args.data_root)
    ids = neu_seg_clean_test_ids(root)
    n_clean = len(ids)
    if len(ids) > args.test_limit:
        ids = sorted(np.random.default_rng(args.seed).choice(ids, args.test_limit, replace=False).tolist())
    train, test = load_split(root, "training"), load_split(root, "test", ids)
    print(f"NEU-Seg{'' if real else ' stand-in'} at {root}: {len(train)} training images, "
          f"{len(test)} test images (seeded subset of {n_clean} without near-duplicates of training images)")

    model = fresh_model(args.seed)
    steps, wall, note = recipe_a(model, train, budget_s, args.seed)
    results = [Result("A: defectlib cpu recipe", steps, 16, wall, evaluate(model, test, "auto", True, "evaluate A"))]
    del model
    model = fresh_model(args.seed)  # the same initial weights
    steps, wall = recipe_b(model, train, budget_s, args.seed)
    results.append(Result("B: plain loop at torch defaults", steps, 8, wall,
                          evaluate(model, test, "fp32", False, "evaluate B")))

    a, b = results
    print(f"\n{note}\n\n{table(results)}\n")
    print(f"A: defectlib.engine.fit, batch 16, precision auto ({auto}) + channels_last, AdamW 1e-3 one-cycle; "
          "B: hand-written loop, batch 8, fp32, contiguous, Adam 1e-3 constant; both BCE + Dice, random flips")
    ratio_iou = a.scores["mean IoU"] / b.scores["mean IoU"] if b.scores["mean IoU"] > 0 else float("inf")
    print(f"A / B mean IoU: {ratio_iou:.2f}x; A / B images/s: {a.images_per_s / b.images_per_s:.2f}x "
          f"(same {args.minutes:g} min of training each, this run)")


if __name__ == "__main__":
    main()
