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

from ...engine import TrainConfig, fit, loss_evaluator, supervised_loss, to_device
from ...losses import BCEDiceLoss, TverskyLoss
from ...models.classifier import build_classifier, classifier_from_encoder
from ...models.unet import build_unet
from ...progress import tqdm
from ..registry import Probe, train_config
from .data import build_tasks, eval_loader, gate_loader, seg_loader


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
    (e.g. :func:`.pipeline.iou_curve`) adds learning-curve points to every epoch's record; they
    are drawn, never used to choose anything."""
    val_losses = loss_evaluator(val_loader, loss_fn, device, max_batches=cfg.max_eval_batches)

    def evaluate(model):
        return {**val_losses(model), **(curve(model) if curve is not None else {})}
    t0 = time.perf_counter()
    if desc:
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


def train_unet(task, encoder: str, cfg, *, seed: int, device, rec=None, predict: dict | None = None):
    """A U-Net with ``encoder`` on ``task``: BCE + Dice, then Tversky fine-tuning when the profile
    has ``tversky_epochs`` (at ``tversky_lr``, else the lr the first stage ended at). The learning
    curve is the test mean IoU at 0.5 after every epoch (drawn, never used to choose); ``predict``
    holds how it predicts (``max_batches``, ``precision``, ``channels_last``). Returns the model
    and ``[(stage name, StageResult)]``; each stage's time and steps go to ``rec``."""
    from .pipeline import iou_curve   # late: pipeline's evaluation imports nothing of training
    model = build_unet(encoder, task.num_classes, in_channels=1)
    loader = seg_loader(task, cfg.seg_batch_size, cfg.steps_per_epoch, cfg.dark_threshold, seed, cfg.num_workers)
    val = eval_loader(task.val, cfg.seg_batch_size, cfg.val_limit)
    predict = {k: v for k, v in (predict or {}).items() if k != "device"}
    curve = iou_curve(eval_loader(task.test, cfg.seg_batch_size), device=device, **predict)
    name = f"{task.dataset} U-Net-{encoder}"
    first = train_stage(model, loader, val, seg_loss(BCEDiceLoss()), train_config(cfg, "unet", seed=seed),
                        device=device, curve=curve, desc=f"{name}: BCE + Dice")
    stages = [("BCE + Dice", first)]
    if cfg.tversky_epochs:
        went_on = {} if cfg.tversky_lr else {"lr": first.final_lr}   # no lr of its own: where stage 1 ended
        stages.append(("Tversky", train_stage(
            model, loader, val, seg_loss(TverskyLoss(alpha=cfg.tversky_alpha)),
            train_config(cfg, "tversky", seed=seed, **went_on), device=device, curve=curve,
            desc=f"{name}: Tversky fine-tuning")))
    else:
        tqdm.write(f"{name}: no Tversky stage in this profile (tversky_epochs = 0)")
    for stage, result in stages if rec is not None else ():
        key = stage.lower().replace(" + ", "_")
        rec.timing(f"{task.dataset}/unet-{encoder}/{key}", result.seconds)
        rec.note(f"{name} {key}: {result.steps} steps of batch {cfg.seg_batch_size} in {result.seconds:.0f} s")
    return model, stages


def train_gate(task, cfg, *, seed: int, device, predict: dict | None = None, unet=None, encoder: str = "",
               rec=None, say=print):
    """The gate on ``task``: initialised from ``unet``'s encoder (``cfg.gate_init == "unet"``:
    in-domain pre-training, the trunk the U-Net learned from the training masks) or a classifier
    of its own (the paper's; from random weights here, the paper does not say which), trained with
    BCE on the defective flag (:func:`train_stage`). The learning curve is the test ROC AUC after every
    epoch (drawn, never used to choose). Returns the gate and its :class:`StageResult`."""
    import torch

    from ...metrics.classification import roc_auc
    from .pipeline import collect_scores
    if cfg.gate_init == "unet":
        gate = classifier_from_encoder(unet.encoder)
        say(f"gate: {encoder} trunk copied from the {task.dataset} U-Net's encoder, a fresh one-logit head")
    else:
        gate = build_classifier(cfg.classifier, in_channels=1)
    train = gate_loader(task, cfg.cls_batch_size, cfg.cls_steps_per_epoch, seed, cfg.num_workers)
    val = eval_loader(task.val, cfg.cls_batch_size, cfg.val_limit, gate=True)
    test = eval_loader(task.test, cfg.cls_batch_size, gate=True)
    truth = torch.cat([y for _, y in test]).bool()
    predict = predict or {}

    def auc_curve(model):
        s = collect_scores(model, test, progress=False, **predict)
        y = truth[: len(s)]
        return {"test_AUC": roc_auc(y, s) if 0 < int(y.sum()) < len(y) else float("nan")}

    stage = train_stage(gate, train, val, gate_loss, train_config(cfg, "gate", seed=seed), device=device,
                        curve=auc_curve, desc=f"{task.dataset} gate ({cfg.classifier})")
    if rec is not None:
        rec.timing(f"{task.dataset}/gate-{cfg.classifier}", stage.seconds)
        rec.note(f"{task.dataset} gate {cfg.classifier} (initialised: {cfg.gate_init}): {stage.steps} steps of batch "
                 f"{cfg.cls_batch_size} in {stage.seconds:.0f} s")
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
