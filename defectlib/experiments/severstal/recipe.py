"""Training recipe of the Severstal two-stage paper (paper 001, section 5).

A. Bionda, "Severstal defect segmentation", IACV 2019-2020. What this module turns into code
(the data and the batches it trains on are in :mod:`.data`):

- The losses: BCE + Dice then Tversky for the U-Net, BCE on the defective flag for the gate (Sec. 5.2).
- :func:`train_stage`: Adam 1e-3 halved on a 3-epoch plateau of the validation loss (one
  :func:`defectlib.engine.fit` call per loss: BCE + Dice, then Tversky), a fixed number of steps.

Evaluation (both Dice definitions, the pipeline, "predict nothing") is in :mod:`.pipeline`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F

from ...engine import TrainConfig, fit, loss_evaluator, supervised_loss, to_device
from ...engine.progress import tqdm
from ...losses import BCEDiceLoss
from ...models.classifier import build_classifier
from ...models.unet import build_unet
from .data import build_tasks, gate_loader, seg_loader


# --- training ------------------------------------------------------------------------------------
def gate_loss(model, batch, device):
    """BCE on one logit per image (paper Sec. 5.2)."""
    x, y = to_device(batch[0], device), to_device(batch[1], device)
    return {"loss": F.binary_cross_entropy_with_logits(model(x), y)}


def seg_loss(criterion) -> Callable:
    """``loss_fn`` for (image, mask) batches: the engine's :func:`supervised_loss` (criterion in fp32)."""
    return supervised_loss(criterion)


@dataclass
class StageResult:
    history: object
    steps: int
    seconds: float
    cut_by_budget: bool
    final_lr: float


def train_stage(model, train_loader, val_loader, loss_fn, *, epochs: int, lr: float, device,
                plateau_factor=0.5, plateau_patience=3, budget_s=None, max_steps=None,
                max_eval_batches=None, seed=0, desc="", schedule: str = "plateau", precision: str = "fp32",
                channels_last: bool = False, curve: Callable | None = None) -> StageResult:
    """One :func:`fit` call: Adam at ``lr``, halved after ``plateau_patience`` epochs without a
    better validation loss (paper Sec. 5; or another engine ``schedule``, e.g. ``"onecycle"``
    peaking at ``lr``), stopped early by ``max_steps`` (dry runs) or by ``budget_s``, a user's
    opt-in (the profiles never set it). ``curve(model)`` -> dict (e.g.
    :func:`.pipeline.iou_curve`) adds learning-curve points to every epoch's record; they
    are drawn, never used to choose anything."""
    cfg = TrainConfig(epochs=epochs, optimizer="adam", lr=lr, schedule=schedule,
                      plateau_factor=plateau_factor, plateau_patience=plateau_patience,
                      max_steps=max_steps, max_eval_batches=max_eval_batches, time_budget_s=budget_s, seed=seed,
                      precision=precision, channels_last=channels_last)
    val_losses = loss_evaluator(val_loader, loss_fn, device, max_batches=max_eval_batches)

    def evaluate(model):
        return {**val_losses(model), **(curve(model) if curve is not None else {})}
    t0 = time.perf_counter()
    if desc:
        tqdm.write(desc)
    history = fit(model, train_loader, cfg, loss_fn=loss_fn, device=device, evaluate=evaluate)
    last_lr = history.epochs[-1]["lr"] if history.epochs else lr
    steps = history.steps[-1]["step"] if history.steps else 0
    return StageResult(history, steps, time.perf_counter() - t0, history.stopped == "time_budget", last_lr)


# --- defectlib doctor -----------------------------------------------------------------------------
def _planned(cfg, epochs: int, per_epoch: int) -> int:
    steps = epochs * per_epoch
    return min(steps, cfg.get("max_steps") or steps)


def doctor_probes(cfg, data_root=None, seed: int = 0):
    """Every U-Net encoder of the profile and its gate, for ``defectlib doctor``."""
    from ...doctor import Probe
    seg_task, gate_task = build_tasks(cfg, data_root, seed)
    workers = cfg.get("num_workers", 0)

    def seg_batches():
        return seg_loader(seg_task, cfg["seg_batch_size"], cfg["steps_per_epoch"], cfg["dark_threshold"], seed,
                          workers)

    def gate_batches():
        return gate_loader(gate_task, cfg["cls_batch_size"], cfg["cls_steps_per_epoch"], seed, workers)

    adam = {"optimizer": "adam", "lr": cfg["lr"]}
    seg_steps = _planned(cfg, cfg["seg_epochs"], len(seg_batches())) + (
        _planned(cfg, cfg["tversky_epochs"], len(seg_batches())) if cfg["tversky_epochs"] else 0)
    out = [Probe("02", f"U-Net-{enc}, {seg_task.num_classes} classes",
                 lambda enc=enc: build_unet(enc, seg_task.num_classes, in_channels=1), seg_batches,
                 seg_loss(BCEDiceLoss()), adam, seg_steps, dataset=seg_task.dataset)
           for enc in cfg["encoders"]]
    out.append(Probe("02", f"gate {cfg['classifier']}", lambda: build_classifier(cfg["classifier"], in_channels=1),
                     gate_batches, gate_loss, adam, _planned(cfg, cfg["cls_epochs"], len(gate_batches())),
                     dataset=gate_task.dataset))
    return out
