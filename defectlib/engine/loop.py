"""The training loop every notebook uses: :func:`fit` (a thin wrapper around :class:`Trainer`).

One optimizer step (what the papers call an iteration)::

    with autocast:                                # bf16 / fp16 forward when cfg.precision asks
        losses = loss_fn(model, batch, device)    # dict; "loss" is the one back-propagated
    scaler.scale(losses["loss"]).backward()       # fp16 loss scaling (identity in fp32 and bf16)
    clip_grad_norm_(params, grad_clip)            # optional: ||g||_2 <= grad_clip
    optimizer.step(); schedule.step_iteration()   # the warm-up advances per step

and after every epoch: evaluation (every ``eval_every`` epochs and at the end), the epoch
schedule, ``best.pt`` when the monitored value improved, ``last.pt``, early stopping. Runs on one
CPU, one GPU, or many GPUs under ``torchrun`` (see ``distributed``).

Exact resumption: at the start of epoch ``e`` every random generator (python, numpy, torch, the
loader's and its sampler's) is reseeded from ``(seed, e, rank)``, and ``last.pt`` also holds the
generators' states. What epoch ``e`` draws - shuffling order, augmentations, dropout - then
depends only on the seed and ``e``, so "2 epochs" and "1 epoch, stop, resume, 1 epoch" give
bit-identical weights on CPU. (Loaders with ``persistent_workers=True`` keep their worker RNGs
across epochs and are the exception.)
"""
from __future__ import annotations

import math
import random
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..runtime import deterministic_default, resolve_device, seed_everything
from . import distributed as D
from .checkpoint import fault_point, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .helpers import LossFn
from .history import History
from .precision import resolve_precision, to_channels_last
from ..progress import tqdm
from .schedules import EarlyStopping, LRSchedule, build_optimizer

# why a run ends for good: with slim_last its last.pt then keeps the weights, not the optimizer (a
# time budget, by contrast, is a pause: that last.pt can go on)
FINAL_STOPS = ("early_stopping", "max_steps")
# settings that may change between a run and its resumption without a warning
_RUN_LENGTH_KEYS = {"epochs", "max_steps", "max_eval_batches", "resume", "progress", "checkpoint_dir", "eval_every",
                    "time_budget_s", "sync_every",
                    "save_last", "checkpoint_every", "checkpoint_share", "slim_last"}


def fit(model: torch.nn.Module, train_loader: DataLoader, cfg: TrainConfig, loss_fn: LossFn | None = None,
        device: str | torch.device = "auto", evaluate: Callable[[torch.nn.Module], Mapping] | None = None,
        monitor: str | None = None, params: Iterable[Any] | None = None,
        curve: Callable[[torch.nn.Module], Mapping] | None = None) -> History:
    """Train ``model`` on ``train_loader`` as ``cfg`` says; returns the :class:`History`.

    - ``loss_fn(model, batch, device)`` returns a dict of scalar tensors; ``"loss"`` is minimised,
      the other terms are averaged into the history as ``loss_<name>`` (see ``supervised_loss``,
      ``detection_loss``).
    - ``evaluate(model)`` returns a dict of floats; it runs in eval mode without gradients every
      ``cfg.eval_every`` epochs and at the end (on rank 0 only under torchrun).
    - ``monitor`` names the value that drives the plateau schedule, early stopping and ``best.pt``;
      default ``"val_loss"`` (see ``loss_evaluator``) when ``evaluate`` is given, else the training
      ``"loss"``. Its direction is ``cfg.monitor_mode`` ("auto": minimised if the name has "loss").
    - ``curve(model)`` returns a dict of floats, e.g. a test metric for a learning curve: it runs
      like ``evaluate`` every ``cfg.curve_every`` optimizer steps, also inside an epoch, into
      ``History.curve``. The random generators are saved before and restored after it, so a run
      with a curve trains exactly as the same run without one.
    - ``params``: what to optimise (tensors, or torch param-group dicts with their own ``lr``);
      default every parameter with ``requires_grad``: freeze a backbone by clearing its flags.

    The model comes back without ``.grad`` tensors, so a trained model costs only its weights
    (a notebook that keeps 16 trained ablation variants would otherwise hold 16 sets of gradients).
    """
    history = Trainer(model, train_loader, cfg, loss_fn, device, evaluate, monitor, params, curve).run()
    model.zero_grad(set_to_none=True)
    return history


class Trainer:
    """The state of one training run; :meth:`run` trains, :meth:`state_dict` is the checkpoint."""

    def __init__(self, model: torch.nn.Module, train_loader: DataLoader, cfg: TrainConfig,
                 loss_fn: LossFn | None, device: str | torch.device = "auto",
                 evaluate: Callable[[torch.nn.Module], Mapping] | None = None, monitor: str | None = None,
                 params: Iterable[Any] | None = None,
                 curve: Callable[[torch.nn.Module], Mapping] | None = None):
        if loss_fn is None:
            raise TypeError("fit needs loss_fn(model, batch, device) -> {'loss': tensor, ...}; "
                            "see defectlib.engine.supervised_loss and detection_loss")
        if len(train_loader) == 0:
            raise ValueError(f"train_loader yields no batch ({len(train_loader.dataset)} samples, batch_size="
                             f"{train_loader.batch_size}, drop_last={train_loader.drop_last})")
        self.cfg, self.loss_fn, self.evaluate_fn, self.curve_fn = cfg, loss_fn, evaluate, curve
        self.dist = D.init_from_env()
        self.main = self.dist.is_main
        self.device = D.device_for(self.dist, resolve_device(device))
        self.seed = 0 if cfg.seed is None else int(cfg.seed)
        if cfg.seed is not None:
            seed_everything(self.seed, deterministic=deterministic_default(self.device) if cfg.deterministic is None
                            else cfg.deterministic)
        self.precision = resolve_precision(cfg.precision, self.device)
        # steps between reads of the loss on the host (each read waits for the GPU to catch up)
        self.sync_every = cfg.sync_every or (1 if self.device.type == "cpu" else 25)
        self.model = model.to(self.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        params = [p for p in model.parameters() if p.requires_grad] if params is None else list(params)
        self.optimizer = build_optimizer(params, cfg)
        self.clip_params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.scaler = self.precision.grad_scaler()
        self.loader = D.distributed_loader(train_loader, self.dist, self.seed)
        # what loss_fn sees: the model itself, or its DistributedDataParallel wrapper under torchrun
        self.net = D.wrap_model(model, self.dist, self.device, cfg.sync_bn, cfg.find_unused_parameters)
        self.ckpt_dir = None if cfg.checkpoint_dir is None else Path(cfg.checkpoint_dir)
        self.monitor = monitor or ("val_loss" if evaluate is not None else "loss")
        self.explicit_monitor = monitor is not None
        # per-step schedules span the planned run; max_steps only stops it (a dry run is the same run, cut)
        self.schedule = LRSchedule(self.optimizer, cfg, monitor_mode=cfg.mode_for(self.monitor),
                                   total_steps=cfg.epochs * len(self.loader))
        self.stopper = (EarlyStopping(cfg.early_stop_patience, cfg.early_stop_min_delta, cfg.mode_for(self.monitor))
                        if cfg.early_stopping else None)
        self.history = History()
        self.epoch = 0  # epochs completed
        self.step = 0   # optimizer steps taken
        self.checkpoint_every = cfg.checkpoint_every  # widened by cfg.checkpoint_share (see _save_last)

    # ----------------------------------------------------------------------------- checkpoints
    def state_dict(self, finished: bool = False) -> dict[str, Any]:
        """The checkpoint; ``finished``: the run is over, so only what loading it back needs (the
        weights, history, counters and random generators: a third of an Adam run's file)."""
        state = {"model": self.model.state_dict(), "rng": rng_state(), "rank": self.dist.rank, "epoch": self.epoch,
                 "step": self.step, "history": self.history.state_dict(), "config": self.cfg.to_dict(),
                 "finished": finished}
        if not finished:
            state.update(optimizer=self.optimizer.state_dict(), schedule=self.schedule.state_dict(),
                         scaler=self.scaler.state_dict(),
                         early_stopping=None if self.stopper is None else self.stopper.state_dict())
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if not state.get("finished"):
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            self.scaler.load_state_dict(state["scaler"])
        if self.stopper is not None and state.get("early_stopping") is not None:
            self.stopper.load_state_dict(state["early_stopping"])
        self.history = History.from_state_dict(state["history"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        if self.dist.rank == state.get("rank", 0):
            set_rng_state(state["rng"])

    def _maybe_resume(self) -> None:
        path = None if self.ckpt_dir is None else self.ckpt_dir / "last.pt"
        if not (self.cfg.resume and path is not None and path.is_file()):
            return
        # read onto the CPU: load_state_dict copies weights and optimizer moments to the model's
        # device, and the random generators' states must stay CPU byte tensors
        state = load_checkpoint(path, map_location="cpu")
        more = int(state["epoch"]) < self.cfg.epochs and state["history"].get("stopped") != "early_stopping" and (
            self.cfg.max_steps is None or int(state["step"]) < self.cfg.max_steps)
        if state.get("finished") and more:
            raise ValueError(f"{path} is a finished run (epoch {state['epoch']}, step {state['step']}): it kept the "
                             f"weights, not the optimizer state, so it cannot go on to epoch {self.cfg.epochs}"
                             + (f" / step {self.cfg.max_steps}" if self.cfg.max_steps else "")
                             + "; start a new run from its weights (engine.load_weights) or choose another folder")
        saved = state.get("config", {})
        changed = {k: (saved[k], v) for k, v in self.cfg.to_dict().items()
                   if k in saved and saved[k] != v and k not in _RUN_LENGTH_KEYS}
        if changed and self.main:
            warnings.warn(f"resuming {path} with different settings {changed} (checkpoint, now); the "
                          "optimizer and schedule states of the checkpoint are used", stacklevel=3)
        self.load_state_dict(state)
        h = self.history
        done = h.stopped == "early_stopping" or self.epoch >= self.cfg.epochs or (
            self.cfg.max_steps is not None and self.step >= self.cfg.max_steps)
        self._say(f"{'finished: loaded' if done else 'resumed from'} {path} after epoch {self.epoch} "
                  f"(step {self.step})")

    # ----------------------------------------------------------------------------- one epoch
    def _seed_epoch(self, epoch: int) -> None:
        if self.cfg.seed is not None:
            s = int(np.random.SeedSequence([self.seed, epoch, self.dist.rank]).generate_state(1)[0])
            random.seed(s)
            np.random.seed(s)
            torch.manual_seed(s)
            for gen in (getattr(self.loader, "generator", None), getattr(self.loader.sampler, "generator", None)):
                if isinstance(gen, torch.Generator):
                    gen.manual_seed(s)
        # DistributedSampler, or a batch sampler with epochs of its own (ClassBalancedBatchSampler):
        # told the epoch, so a resumed run shuffles and schedules crops as the uninterrupted one did
        for sampler in {id(s): s for s in (self.loader.sampler, self.loader.batch_sampler)}.values():
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)

    def train_epoch(self, epoch: int) -> tuple[dict[str, float], str | None]:
        """One pass over the loader (or up to ``max_steps``): mean loss terms and why it stopped early."""
        cfg = self.cfg
        self._seed_epoch(epoch)
        self.net.train()
        total = len(self.loader) if cfg.max_steps is None else min(len(self.loader), cfg.max_steps - self.step)
        bar = tqdm(self.loader, total=total, desc=f"epoch {epoch + 1}/{cfg.epochs}", dynamic_ncols=True,
                   disable=not (self.main and cfg.progress))
        sums: dict[str, float] = {}
        pending: list[tuple[int, float, torch.Tensor]] = []  # (step, lr, loss terms) not yet read
        n, stopped = 0, None
        names: list[str] = []

        def read_pending() -> None:
            """One host-device synchronisation for the steps since the last one: their loss terms
            are read, checked and recorded (a check per step would stall a GPU every step)."""
            nonlocal n
            if not pending:
                return
            rows = torch.stack([t for _, _, t in pending]).cpu().tolist()
            for (step, lr, _), row in zip(pending, rows):
                values = dict(zip(names, row))
                if not math.isfinite(values["loss"]):
                    parts = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
                    raise FloatingPointError(f"training loss is not finite at step {step} (epoch {epoch + 1}): "
                                             f"{parts}; lower lr (now {lr:.3g}) or set grad_clip")
                n += 1
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v
                self.history.steps.append({"step": step, "epoch": epoch + 1, "loss": values["loss"], "lr": lr})
            pending.clear()
            bar.set_postfix(loss=f"{sums['loss'] / n:.4f}", lr=f"{lr:.2e}", refresh=False)

        for batch in bar:
            if cfg.channels_last:
                batch = to_channels_last(batch)
            with self.precision.autocast():
                terms = self.loss_fn(self.net, batch, self.device)
            terms = {k: v.float() for k, v in terms.items()}
            names = list(terms)
            loss = terms["loss"]
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.clip_params, cfg.grad_clip)
            lr = self.schedule.lr()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.schedule.step_iteration()
            self.step += 1
            pending.append((self.step, lr, torch.stack([v.detach().reshape(()) for v in terms.values()])))
            if len(pending) >= self.sync_every:
                read_pending()
            if self.curve_fn is not None and cfg.curve_every and self.step % cfg.curve_every == 0:
                read_pending()
                self._curve_point(epoch)
            if cfg.max_steps is not None and self.step >= cfg.max_steps:
                stopped = "max_steps"
                break
            if self._out_of_time():
                stopped = "time_budget"
                break
        read_pending()
        bar.close()
        means = D.mean_across({k: v / n for k, v in sums.items()}, self.dist)
        return {(k if k.startswith("loss") else f"loss_{k}"): v for k, v in means.items()}, stopped

    def _out_of_time(self) -> bool:
        """Has ``time_budget_s`` run out? Rank 0's clock decides for every rank."""
        if self.cfg.time_budget_s is None:
            return False
        late = time.perf_counter() - self.started > self.cfg.time_budget_s if self.main else None
        return bool(D.broadcast(late, self.dist))

    def _curve_point(self, epoch: int) -> None:
        """``curve(model)`` with the random generators as they were: training goes on unchanged."""
        state = rng_state()
        try:
            metrics = self.evaluate(self.curve_fn)
        finally:
            set_rng_state(state)
        self.history.curve.append({"step": self.step, "epoch": epoch + 1, **metrics})

    def evaluate(self, fn: Callable[[torch.nn.Module], Mapping] | None = None) -> dict[str, float]:
        """``fn(model)`` (default ``evaluate``) in eval mode without gradients, on rank 0, broadcast
        to every rank."""
        fn = self.evaluate_fn if fn is None else fn
        metrics = None
        if self.main:
            flags = {m: m.training for m in self.model.modules()}
            self.model.eval()
            try:
                with torch.no_grad():
                    out = fn(self.model)
            finally:
                for m, flag in flags.items():
                    m.train(flag)
            if not isinstance(out, Mapping):
                raise TypeError(f"evaluate(model) must return a dict of floats, got {type(out).__name__}")
            metrics = {k: float(v) for k, v in out.items()}
        return D.broadcast(metrics, self.dist)

    # ----------------------------------------------------------------------------- the run
    def run(self) -> History:
        cfg = self.cfg
        self._maybe_resume()
        self.started = time.perf_counter()
        h = self.history
        if h.stopped == "early_stopping":
            return h
        for epoch in range(self.epoch, cfg.epochs):
            if cfg.max_steps is not None and self.step >= cfg.max_steps:
                break
            if self._out_of_time():  # the last evaluation used up the budget
                h.stopped = "time_budget"
                break
            t0 = time.perf_counter()
            losses, stopped = self.train_epoch(epoch)
            record: dict[str, Any] = {"epoch": epoch + 1, "step": self.step, "lr": self.schedule.lr(), **losses}
            evaluated = self.evaluate_fn is not None and (
                (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs or stopped is not None)
            if evaluated:
                for k, v in self.evaluate().items():
                    record[k if k not in record else f"val_{k}"] = v
            record["time_s"] = time.perf_counter() - t0
            if stopped:
                record["partial"] = True

            value = record.get(self.monitor)
            if value is None and (evaluated or self.evaluate_fn is None) and (
                    self.explicit_monitor or self.schedule.needs_metric or self.stopper is not None):
                raise KeyError(f"monitor={self.monitor!r} is not among the recorded values {sorted(record)}; "
                               "pass fit(..., monitor=<one of them>)")
            self.schedule.step_epoch(value)
            if value is not None and math.isfinite(value):
                self._track_best(epoch, value)
            if value is not None and self.stopper is not None and self.stopper.step(float(value)):
                stopped = "early_stopping"  # a NaN validation counts as a validation without improvement
            h.epochs.append(record)
            h.stopped = stopped
            self.epoch = epoch + 1
            shown = ", ".join(f"{k}={v:.4g}" for k, v in record.items() if isinstance(v, float) and k != "lr")
            self._say(f"epoch {epoch + 1}: {shown}, lr={record['lr']:.3g}" + (f" [{stopped}]" if stopped else ""))
            due = (epoch + 1) % self.checkpoint_every == 0 or epoch + 1 == cfg.epochs or stopped is not None
            if self.ckpt_dir is not None and cfg.save_last and due:
                self._save_last(record["time_s"], finished=cfg.slim_last and (
                    epoch + 1 == cfg.epochs or stopped in FINAL_STOPS))
            if stopped:
                break
        return h

    def _save_last(self, epoch_s: float, finished: bool) -> None:
        """``last.pt`` (rank 0; the others wait). With ``checkpoint_share`` the interval widens so that
        writes cost at most that share of the time: a write of ``w`` seconds after epochs of ``e``
        seconds waits at least ``w / (share * e)`` epochs for the next one."""
        if self.main:
            t0 = time.perf_counter()
            save_checkpoint(self.ckpt_dir / "last.pt", self.state_dict(finished))
            write_s = time.perf_counter() - t0
            share = self.cfg.checkpoint_share
            if share and epoch_s > 0:
                self.checkpoint_every = max(self.checkpoint_every, math.ceil(write_s / (share * epoch_s)))
            fault_point()
        self.checkpoint_every = D.broadcast(self.checkpoint_every, self.dist)

    def _track_best(self, epoch: int, value: float) -> None:
        best, minimise = self.history.best, self.cfg.mode_for(self.monitor) == "min"
        if best is None or (value < best["value"] if minimise else value > best["value"]):
            self.history.best = {"epoch": epoch + 1, "name": self.monitor, "value": float(value)}
            if self.ckpt_dir is not None and self.main:
                save_checkpoint(self.ckpt_dir / "best.pt", {"model": self.model.state_dict(), "epoch": epoch + 1,
                                                            "monitor": self.monitor, "value": float(value)})

    def _say(self, text: str) -> None:
        if self.main and self.cfg.progress:
            tqdm.write(text)
