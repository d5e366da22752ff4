"""Optimizers, learning-rate schedules with linear warm-up, and early stopping.

The schedules are torch's own (``LinearLR``, ``MultiStepLR``, ``StepLR``, ``ReduceLROnPlateau``);
this module only wires them the way the papers use them:

- warm-up: ``lr_t = lr * (f + (1 - f) * t / T)`` for the first ``T = warmup_iters`` optimizer steps
  (Goyal et al. 2017; torchvision's detection recipe with ``f = 0.001``);
- then an epoch schedule: ``multistep`` (``lr * gamma^k`` after the k-th milestone, DANet, OCINet),
  ``step`` (``lr * gamma^floor(epoch / step_size)``, paper 004 halves every 50 epochs) or
  ``plateau`` (``lr * factor`` once the monitored validation value has gone ``patience``
  validations in a row without improving; Severstal: Adam halved "every time it reaches a plateau
  long three epochs", i.e. ``patience=3`` - torch's ``ReduceLROnPlateau`` counts one more, so it
  gets ``patience - 1``);
- or a schedule over the whole run, stepped per optimizer step: ``cosine`` (warm-up, then
  ``lr_t = min_lr + (lr - min_lr) (1 + cos(pi t / T)) / 2``, Loshchilov & Hutter 2017) or
  ``onecycle`` (torch's ``OneCycleLR``, Smith & Topin 2018, warm-up built in).

Both parts are multiplicative, so a milestone that falls inside the warm-up composes correctly.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch.optim import lr_scheduler

from .config import TrainConfig


def build_optimizer(params: Iterable[Any], cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW over ``params`` (tensors or torch param-group dicts)."""
    params = list(params)
    if not params:
        raise ValueError("no parameters to optimise: every parameter has requires_grad=False")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


class LRSchedule:
    """Warm-up stepped per optimizer step, then the epoch schedule stepped per epoch/validation."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, monitor_mode: str = "min",
                 total_steps: int | None = None):
        self.optimizer = optimizer
        self.cfg = cfg
        self.warmup = None
        self.per_step: Any = None
        if cfg.schedule in ("cosine", "onecycle"):
            if not total_steps:
                raise ValueError(f"schedule={cfg.schedule!r} spans the run: LRSchedule needs total_steps")
            self.per_step = _per_step_schedule(optimizer, cfg, int(total_steps))
            self.per_step_total = int(total_steps)
        elif cfg.warmup_iters > 0:
            self.warmup = lr_scheduler.LinearLR(
                optimizer, start_factor=cfg.warmup_factor, end_factor=1.0, total_iters=cfg.warmup_iters)
        self.decay: Any = None
        if cfg.schedule == "multistep":
            self.decay = lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.milestones), gamma=cfg.gamma)
        elif cfg.schedule == "step":
            self.decay = lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
        elif cfg.schedule == "plateau":
            self.decay = lr_scheduler.ReduceLROnPlateau(
                optimizer, mode=monitor_mode, factor=cfg.plateau_factor, patience=cfg.plateau_patience - 1,
                threshold=cfg.plateau_threshold, min_lr=cfg.min_lr)

    @property
    def needs_metric(self) -> bool:
        return isinstance(self.decay, lr_scheduler.ReduceLROnPlateau)

    def step_iteration(self) -> None:
        """Call after every optimizer step."""
        if self.per_step is not None:
            if self.per_step.last_epoch < self.per_step_total:  # the run's last step is not stepped past
                self.per_step.step()
            return
        if self.warmup is not None and self.warmup.last_epoch < self.cfg.warmup_iters:
            self.warmup.step()

    def step_epoch(self, metric: float | None = None) -> None:
        """Call after every epoch; ``metric`` is the monitored value (plateau only, None = no validation)."""
        if self.decay is None:
            return
        if self.needs_metric:
            if metric is not None:
                self.decay.step(metric)
        else:
            self.decay.step()

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        return {"warmup": None if self.warmup is None else self.warmup.state_dict(),
                "decay": None if self.decay is None else _plain(self.decay.state_dict()),
                "per_step": None if self.per_step is None else _plain(self.per_step.state_dict())}

    def load_state_dict(self, state: dict) -> None:
        if self.per_step is not None and state.get("per_step") is not None:
            self.per_step.load_state_dict(state["per_step"])
        if self.warmup is not None and state.get("warmup") is not None:
            self.warmup.load_state_dict(state["warmup"])
        if self.decay is not None and state.get("decay") is not None:
            decay = dict(state["decay"])
            if "milestones" in decay and isinstance(self.decay, lr_scheduler.MultiStepLR):
                from collections import Counter
                decay["milestones"] = Counter({int(k): int(v) for k, v in decay["milestones"].items()})
            self.decay.load_state_dict(decay)


def _per_step_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total: int):
    """``cosine`` (with the linear warm-up) or ``onecycle`` over ``total`` optimizer steps."""
    if cfg.schedule == "onecycle":
        # total + 1: OneCycleLR refuses a step past its end, and the last step of a run steps it once more
        return lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total + 1, pct_start=cfg.pct_start,
                                       anneal_strategy="cos")
    warm, floor = cfg.warmup_iters, cfg.min_lr / cfg.lr

    def factor(t: int) -> float:
        w = cfg.warmup_factor + (1 - cfg.warmup_factor) * t / warm if t < warm else 1.0
        progress = min(1.0, max(0, t - warm) / max(1, total - warm))
        return w * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))

    return lr_scheduler.LambdaLR(optimizer, factor)


def _plain(state: dict) -> dict:
    """Counters become dicts so checkpoints load with ``torch.load(weights_only=True)``."""
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in state.items()}


def lr_curve(cfg: TrainConfig, iters_per_epoch: int, epochs: int | None = None) -> list[float]:
    """The learning rate of every optimizer step under ``cfg`` (no plateau decay), to plot a schedule."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], cfg)
    sched = LRSchedule(opt, cfg, total_steps=iters_per_epoch * (epochs or cfg.epochs))
    out = []
    for _ in range(epochs or cfg.epochs):
        for _ in range(iters_per_epoch):
            out.append(sched.lr())
            opt.step()
            sched.step_iteration()
        sched.step_epoch(None)
    return out


class EarlyStopping:
    """Stop when the monitored value has not improved by ``min_delta`` (relative) for ``patience`` checks.

    Paper 004 (Sec. 5.1): "early stopping when relative decrease in validation loss is under 0.01
    for 5 consecutive validations" -> ``EarlyStopping(patience=5, min_delta=0.01, mode="min")``.
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.01, mode: str = "min"):
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping mode={mode!r}; use 'min' or 'max'")
        self.patience, self.min_delta, self.mode = int(patience), float(min_delta), mode
        self.best: float | None = None
        self.bad = 0

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        margin = self.min_delta * abs(self.best)
        return value < self.best - margin if self.mode == "min" else value > self.best + margin

    def step(self, value: float) -> bool:
        """Record one validation; True when training should stop."""
        if not math.isfinite(value):
            self.bad += 1
        elif self.improved(value):
            self.best, self.bad = float(value), 0
        else:
            self.bad += 1
        return self.bad >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad = state["best"], int(state["bad"])
