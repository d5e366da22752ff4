"""Training recipe of the Severstal two-stage paper (paper 001, section 5).

A. Bionda, "Severstal defect segmentation", IACV 2019-2020. What this module turns into code
(the data and the batches it trains on are in :mod:`.data`):

- The losses: BCE + Dice then Tversky for the U-Net, BCE on the defective flag for the gate (Sec. 5.2).
- :func:`train_stage`: Adam 1e-3 halved on a 3-epoch plateau (the paper: "a plateau long three
  epochs", of no named loss; the validation loss is the course's reading), one
  :func:`defectlib.engine.fit` call per loss (BCE + Dice, then Tversky), a fixed number of steps.
- :func:`train_unet`: a U-Net through both stages (Tversky where the profile trains it).
- :func:`train_gate`: the defective / clean classifier (Sec. 5.2), with its ROC AUC learning curve.

Evaluation (both Dice definitions, the pipeline, "predict nothing") is in :mod:`.pipeline`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F
from torch import nn

from ...engine import TrainConfig, fit, loss_evaluator, supervised_loss, to_device
from ...engine import distributed as D
from ...losses import BCEDiceLoss, TverskyLoss
from ...models.classifier import build_classifier, classifier_from_encoder
from ...models.unet import build_unet
from ...progress import tqdm
from .. import command
from ..registry import Probe, train_config
from .data import build_tasks, eval_loader, gate_loader, loading, seg_loader
from .evaluation import count
from .pipeline import mean_iou_from_counts


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


def train_stage(model, train_loader, val_loader, loss_fn, cfg: TrainConfig, *, device, desc: str = "",
                curve: Callable | None = None) -> StageResult:
    """One :func:`fit` call with the engine settings ``cfg`` (from the profile: Adam at ``lr``,
    halved after ``plateau_patience`` epochs without a better validation loss: paper Sec. 5's "a
    plateau long three epochs", the validation loss being the course's reading; or
    another engine ``schedule``, e.g. ``"onecycle"`` peaking at ``lr``; see
    :func:`defectlib.experiments.registry.train_config`), stopped early by ``max_steps`` (dry runs)
    or by ``time_budget_s``, a user's opt-in (the profiles never set it). ``curve(model)`` -> dict
    (e.g. :func:`iou_curve`) adds learning-curve points to every epoch's record; they
    are drawn, never used to choose anything."""
    val_losses = loss_evaluator(val_loader, loss_fn, device, max_batches=cfg.max_eval_batches)

    def evaluate(model):
        return {**val_losses(model), **(curve(model) if curve is not None else {})}
    t0 = time.perf_counter()
    if desc and D.is_main_process():    # under torchrun, once
        tqdm.write(desc)
    history = fit(model, train_loader, cfg, loss_fn=loss_fn, device=device, evaluate=evaluate)
    last_lr = history.epochs[-1]["lr"] if history.epochs else cfg.lr
    steps = history.steps[-1]["step"] if history.steps else 0
    return StageResult(history, steps, time.perf_counter() - t0, history.stopped == "time_budget", last_lr)


def parameter_counts() -> list[tuple[str, int]]:
    """Parameters of every U-Net encoder (4 classes, grey input) and both gates, each built with
    fresh random weights, in that order (notebook 02 draws these from the global generator before
    it trains, so its command builds them too)."""
    from ...models.unet import ENCODERS
    rows = [(f"U-Net, {enc} encoder, 4 classes", sum(p.numel() for p in build_unet(enc, 4, in_channels=1).parameters()))
            for enc in ENCODERS]
    rows += [(f"gate, {bb} + GAP + 1 sigmoid", sum(p.numel() for p in build_classifier(bb, in_channels=1).parameters()))
             for bb in ("resnet34", "resnet50")]
    return rows


def per_rank(cfg, world_size: int):
    """The profile as each of ``world_size`` torchrun processes trains it: ``seg_batch_size`` and
    ``cls_batch_size`` are the global batches, each process draws batches of ``1/N`` of them, N times
    as many per epoch, which the class-balanced samplers then share out (``ceil(batches / N)`` each),
    so the steps per epoch stay the profile's. A batch that does not split is a ValueError naming
    the setting and the values that split (:func:`defectlib.experiments.command.per_rank_batch`)."""
    if world_size == 1:
        return cfg
    more = {k: getattr(cfg, k) * world_size for k in ("steps_per_epoch", "cls_steps_per_epoch") if getattr(cfg, k)}
    return cfg.replace(seg_batch_size=command.per_rank_batch(cfg.seg_batch_size, world_size, "seg_batch_size"),
                       cls_batch_size=command.per_rank_batch(cfg.cls_batch_size, world_size, "cls_batch_size"), **more)


def _batch(global_batch: int, rank_batch: int, processes: int) -> str:
    """``batch 4``, under torchrun ``batch 4 (4 processes x 1)``: the notes name the global batch."""
    return f"batch {global_batch}" + (f" ({processes} processes x {rank_batch})" if processes > 1 else "")


def iou_curve(loader, device="cpu", threshold: float = 0.5, name: str = "test_mIoU",
              max_batches: int | None = None, precision: str = "fp32",
              channels_last: bool = False) -> Callable[[nn.Module], dict]:
    """An ``evaluate`` hook for a learning curve: mean over classes of :func:`.pipeline.class_iou` (in
    %) of the segmenter's masks at ``threshold`` on ``loader`` (predicted as :func:`.pipeline.collect`
    does, each batch reduced to pixel counts as it is made: :func:`.evaluation.count`; no map of the
    split is kept). It is drawn, never used to choose."""
    def evaluate(model: nn.Module) -> dict[str, float]:
        counts = count(model, loader, (threshold,), device=device, max_batches=max_batches, progress=False,
                       precision=precision, channels_last=channels_last)
        return {name: 100 * mean_iou_from_counts(*counts.at(threshold))}
    return evaluate


def train_unet(task, encoder: str, cfg, *, seed: int, device, rec=None, predict: dict | None = None,
               processes: int = 1):
    """A U-Net with ``encoder`` on ``task``: BCE + Dice, then Tversky fine-tuning when the profile
    has ``tversky_epochs`` (at ``tversky_lr``, else the lr the first stage ended at). The learning
    curve is the test mean IoU at 0.5 after every epoch (drawn, never used to choose); ``predict``
    holds how it predicts (``max_batches``, ``precision``, ``channels_last``). Returns the model
    and ``[(stage name, StageResult)]``; each stage's time and steps go to ``rec``. The curve reads
    ``cfg.curve_limit`` test images (a seeded subset; all when None), the validation loss
    ``cfg.val_limit``, both with the profile's loader workers. ``processes``: how many torchrun
    processes share the profile's (global) ``seg_batch_size``; each trains on its share
    (:func:`per_rank`), while the validation loss and the curve (rank 0's) read batches of the
    global size, as one process does."""
    model = build_unet(encoder, task.num_classes, in_channels=1)
    mine = per_rank(cfg, processes)
    loader = seg_loader(task, mine.seg_batch_size, mine.steps_per_epoch, cfg.dark_threshold, seed, cfg.num_workers)
    val = eval_loader(task.val, cfg.seg_batch_size, cfg.val_limit, **loading(cfg))
    predict = {k: v for k, v in (predict or {}).items() if k != "device"}
    test = eval_loader(task.test, cfg.seg_batch_size, cfg.curve_limit, seed=seed, **loading(cfg))
    curve = iou_curve(test, device=device, **predict)
    name = f"{task.dataset} U-Net-{encoder}"
    folder = f"{task.dataset.replace(' ', '-')}/unet-{encoder}"    # its checkpoints (cfg.checkpoint_dir)
    first = train_stage(model, loader, val, seg_loss(BCEDiceLoss()),
                        train_config(cfg, "unet", seed=seed, name=f"{folder}/bce_dice"),
                        device=device, curve=curve, desc=f"{name}: BCE + Dice")
    stages = [("BCE + Dice", first)]
    if cfg.tversky_epochs:
        went_on = {} if cfg.tversky_lr else {"lr": first.final_lr}   # no lr of its own: where stage 1 ended
        stages.append(("Tversky", train_stage(
            model, loader, val, seg_loss(TverskyLoss(alpha=cfg.tversky_alpha)),
            train_config(cfg, "tversky", seed=seed, name=f"{folder}/tversky", **went_on), device=device, curve=curve,
            desc=f"{name}: Tversky fine-tuning")))
    elif D.is_main_process():
        tqdm.write(f"{name}: no Tversky stage in this profile (tversky_epochs = 0)")
    for stage, result in stages if rec is not None else ():
        key = stage.lower().replace(" + ", "_")
        rec.timing(f"{task.dataset}/unet-{encoder}/{key}", result.seconds)
        rec.note(f"{name} {key}: {result.steps} steps of {_batch(cfg.seg_batch_size, mine.seg_batch_size, processes)} "
                 f"in {result.seconds:.0f} s")
    return model, stages


def train_gate(task, cfg, *, seed: int, device, predict: dict | None = None, unet=None, encoder: str = "",
               rec=None, say=print, processes: int = 1):
    """The gate on ``task``: initialised from ``unet``'s encoder (``cfg.gate_init == "unet"``:
    in-domain pre-training, the trunk the U-Net learned from the training masks) or a classifier
    of its own (the paper's; from random weights here, the paper does not say which), trained with
    BCE on the defective flag (:func:`train_stage`). The learning curve is the test ROC AUC after every
    epoch, on ``cfg.curve_limit`` test images (drawn, never used to choose). Returns the gate and its
    :class:`StageResult`. ``processes``: as for :func:`train_unet` (``cls_batch_size`` is the global batch)."""
    import torch

    from ...metrics.classification import roc_auc
    from .pipeline import collect_scores
    if cfg.gate_init == "unet":
        gate = classifier_from_encoder(unet.encoder)
        say(f"gate: {encoder} trunk copied from the {task.dataset} U-Net's encoder, a fresh one-logit head")
    else:
        gate = build_classifier(cfg.classifier, in_channels=1)
    mine = per_rank(cfg, processes)
    train = gate_loader(task, mine.cls_batch_size, mine.cls_steps_per_epoch, seed, cfg.num_workers)
    val = eval_loader(task.val, cfg.cls_batch_size, cfg.val_limit, gate=True, **loading(cfg))
    test = eval_loader(task.test, cfg.cls_batch_size, cfg.curve_limit, gate=True, seed=seed, **loading(cfg))
    truth = torch.cat([y for _, y in test]).bool()
    predict = predict or {}

    def auc_curve(model):
        s = collect_scores(model, test, progress=False, **predict)
        y = truth[: len(s)]
        return {"test_AUC": roc_auc(y, s) if 0 < int(y.sum()) < len(y) else float("nan")}

    stage = train_stage(gate, train, val, gate_loss,
                        train_config(cfg, "gate", seed=seed,
                                     name=f"{task.dataset.replace(' ', '-')}/gate-{cfg.classifier}"),
                        device=device,
                        curve=auc_curve, desc=f"{task.dataset} gate ({cfg.classifier})")
    if rec is not None:
        rec.timing(f"{task.dataset}/gate-{cfg.classifier}", stage.seconds)
        rec.note(f"{task.dataset} gate {cfg.classifier} (initialised: {cfg.gate_init}): {stage.steps} steps of "
                 f"{_batch(cfg.cls_batch_size, mine.cls_batch_size, processes)} in {stage.seconds:.0f} s")
    return gate, stage


# --- defectlib doctor -----------------------------------------------------------------------------
def _planned(cfg, epochs: int, per_epoch: int) -> int:
    steps = epochs * per_epoch
    return min(steps, cfg.max_steps or steps)


def doctor_probes(cfg, data_root=None, seed: int = 0):
    """Every U-Net encoder of the profile and its gate, for ``defectlib doctor``."""
    seg_task, gate_task = build_tasks(cfg, data_root, seed)
    workers = cfg.num_workers

    def seg_batches():
        return seg_loader(seg_task, cfg.seg_batch_size, cfg.steps_per_epoch, cfg.dark_threshold, seed,
                          workers)

    def gate_batches():
        return gate_loader(gate_task, cfg.cls_batch_size, cfg.cls_steps_per_epoch, seed, workers)

    seg_steps = _planned(cfg, cfg.seg_epochs, len(seg_batches())) + (
        _planned(cfg, cfg.tversky_epochs, len(seg_batches())) if cfg.tversky_epochs else 0)
    out = [Probe("02", f"U-Net-{enc}, {seg_task.num_classes} classes",
                 lambda enc=enc: build_unet(enc, seg_task.num_classes, in_channels=1), seg_batches,
                 seg_loss(BCEDiceLoss()), train_config(cfg, "unet", seed=seed), seg_steps, dataset=seg_task.dataset)
           for enc in cfg.encoders]
    out.append(Probe("02", f"gate {cfg.classifier}", lambda: build_classifier(cfg.classifier, in_channels=1),
                     gate_batches, gate_loss, train_config(cfg, "gate", seed=seed),
                     _planned(cfg, cfg.cls_epochs, len(gate_batches())),
                     dataset=gate_task.dataset))
    return out
