"""``TrainConfig``: every knob of the training loop in one dataclass.

The four papers of the course train with four different recipes; each is one ``TrainConfig``:

- DANet (paper 000): ``optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=1e-4, epochs=30,
  schedule="multistep", milestones=(20, 28)``; the paper says only "decrease the learning rate at
  the 20th and 28th epochs", so ``gamma=0.1`` is the course's choice (the usual Faster R-CNN one).
  The paper states no warm-up; its recipe values are the usual Faster R-CNN defaults, which come
  with a linear warm-up from 0.001x (mmdetection: 500 steps, ``warmup_iters=500``): an assumption a
  notebook should name if it uses it.
- Severstal (paper 001): ``optimizer="adam", lr=1e-3, schedule="plateau", plateau_factor=0.5,
  plateau_patience=3``; the paper says "a plateau long three epochs", not of which loss: the
  validation loss is the course's reading.
- OCINet (paper 003): ``optimizer="adam", lr=1e-4, schedule="multistep", milestones=(30,)``; the
  paper names "the decay epoch" (30), not a factor: ``gamma=0.1`` is the ``decay_rate`` of the
  authors' training script.
- Synthetic data (paper 004): ``optimizer="adamw", schedule="step", step_size=50, gamma=0.5,
  early_stopping=True`` ("early stopping when relative decrease in validation loss is under 0.01
  for 5 consecutive validations": ``early_stop_patience=5, early_stop_min_delta=0.01``).

Epoch-based schedules count *epochs*; the warm-up counts *optimizer steps* (iterations), and so do
the ``cosine`` and ``onecycle`` schedules, which span the whole run: short from-scratch runs (the
``cpu`` profiles) learn much faster with them than with a constant or step-wise lr.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .precision import PRECISIONS

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "multistep", "step", "plateau", "cosine", "onecycle")


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`defectlib.engine.fit` (see the module docstring for the papers)."""

    epochs: int = 1
    # optimizer
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9            # SGD only
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # Adam / AdamW only
    # learning-rate schedule (stepped once per epoch, or per validation for "plateau")
    schedule: str = "none"
    milestones: tuple[int, ...] = ()  # "multistep": epochs after which lr *= gamma
    step_size: int = 30               # "step": lr *= gamma every step_size epochs
    gamma: float = 0.1
    plateau_factor: float = 0.5       # "plateau": lr *= factor after plateau_patience validations in a
    plateau_patience: int = 3         # row without improvement (Keras's meaning; torch's patience + 1)
    plateau_threshold: float = 1e-4   # relative improvement that counts (torch's default)
    min_lr: float = 0.0
    # per-step schedules over the planned run (epochs x steps per epoch; max_steps only cuts it):
    # "cosine": warm-up, then lr -> min_lr along a half cosine (Loshchilov & Hutter 2017);
    # "onecycle": torch's OneCycleLR, lr rises from lr/25 to lr over the first pct_start of the
    # run, then falls to lr/1e4 along a cosine, momentum cycling the other way (Smith 2018)
    pct_start: float = 0.3
    # linear warm-up over the first optimizer steps: lr goes warmup_factor*lr -> lr
    warmup_iters: int = 0
    warmup_factor: float = 0.001
    # step
    grad_clip: float | None = None    # max global L2 norm of the gradients, None = no clipping
    # numerics (see defectlib.engine.precision): "auto" = bf16 autocast on CPUs with native bf16,
    # fp32 on other CPUs, bf16 (else fp16 + GradScaler) on CUDA; losses are computed in fp32
    precision: str = "fp32"           # "fp32" | "bf16" | "fp16" | "auto"
    channels_last: bool = False       # model weights and 4-D inputs in N,H,W,C memory order
    # evaluation, early stopping
    eval_every: int = 1               # epochs between calls to ``evaluate`` (the last epoch always)
    curve_every: int | None = None    # optimizer steps between calls to fit's ``curve`` (None: never)
    early_stopping: bool = False
    early_stop_patience: int = 5      # validations without enough improvement before stopping
    early_stop_min_delta: float = 0.01  # relative improvement that counts (0.01 = 1 %)
    monitor_mode: str = "auto"        # "min" | "max" | "auto" (min if the name contains "loss")
    # dry runs
    max_steps: int | None = None      # stop after this many optimizer steps in total
    max_eval_batches: int | None = None  # not used by fit: pass it to your evaluator (predict, loss_evaluator)
    # wall-time budget: stop after the step during which this many seconds since fit() began ran
    # out (evaluations included); History.stopped is then "time_budget"
    time_budget_s: float | None = None
    # several GPUs under torchrun (ignored in a single process)
    sync_bn: bool = False             # BatchNorm statistics over the global batch (CUDA only)
    find_unused_parameters: bool = False  # DDP option for models with branches unused in some steps
    # checkpoints and reproducibility
    checkpoint_dir: str | Path | None = None
    resume: bool = False              # continue from <checkpoint_dir>/last.pt when it exists
    seed: int | None = 0              # None = do not seed (runs are then not reproducible)
    # deterministic kernels (True), the fastest ones (False), or None: runtime.deterministic_default
    # (the run's --deterministic / --fast, else deterministic on CPU, fast on a GPU)
    deterministic: bool | None = None
    progress: bool = True             # tqdm bars; False for tests and batch logs
    # optimizer steps between reads of the loss terms on the host (the non-finite check, the
    # history, the bar); None: every step on CPU, where a read is free, every 25 on a GPU, where
    # each read makes the host wait for the GPU. A non-finite loss is still named by its step.
    sync_every: int | None = None
    save_last: bool = True            # write <checkpoint_dir>/last.pt (for resume)...
    checkpoint_every: int = 1         # ...every this many epochs, and always after the last one or a stop;
    # with checkpoint_share, the interval widens after each write so that writing last.pt takes at
    # most that share of the training time (0.01: 1 %; a slow disk or a short epoch writes less often)
    checkpoint_share: float | None = None
    # the last.pt of a run that ended (its last epoch, early stopping, max_steps) keeps the weights,
    # history and generators, not the optimizer state: a third of an Adam run's file, loaded back
    # by a resume as it is, but it cannot be trained on with more epochs (resume says so)
    slim_last: bool = False

    def __post_init__(self) -> None:
        self.optimizer = str(self.optimizer).lower()
        self.schedule = str(self.schedule).lower()
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer={self.optimizer!r}; choose one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.schedule={self.schedule!r}; choose one of {SCHEDULES}")
        if self.epochs < 1:
            raise ValueError(f"TrainConfig.epochs={self.epochs}; need at least 1")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr={self.lr}; must be positive")
        self.milestones = tuple(int(m) for m in self.milestones)
        if list(self.milestones) != sorted(set(self.milestones)) or any(m < 1 for m in self.milestones):
            raise ValueError(f"TrainConfig.milestones={self.milestones}; need increasing epochs >= 1")
        if self.schedule == "multistep" and not self.milestones:
            raise ValueError("TrainConfig.schedule='multistep' needs milestones, e.g. (20, 28)")
        if self.plateau_patience < 1 or self.early_stop_patience < 1:
            raise ValueError("TrainConfig.plateau_patience and early_stop_patience count validations: need >= 1")
        if not 0 < self.pct_start < 1:
            raise ValueError(f"TrainConfig.pct_start={self.pct_start}; need 0 < pct_start < 1")
        if self.step_size < 1:
            raise ValueError(f"TrainConfig.step_size={self.step_size}; need >= 1")
        if self.warmup_iters < 0 or not 0 < self.warmup_factor <= 1:
            raise ValueError("TrainConfig warm-up: need warmup_iters >= 0 and 0 < warmup_factor <= 1")
        if self.eval_every < 1:
            raise ValueError(f"TrainConfig.eval_every={self.eval_every}; need >= 1")
        if self.curve_every is not None and self.curve_every < 1:
            raise ValueError(f"TrainConfig.curve_every={self.curve_every}; need >= 1 or None")
        if self.checkpoint_every < 1:
            raise ValueError(f"TrainConfig.checkpoint_every={self.checkpoint_every}; need >= 1 (epochs)")
        if self.checkpoint_share is not None and not 0 < self.checkpoint_share < 1:
            raise ValueError(f"TrainConfig.checkpoint_share={self.checkpoint_share}; need 0 < share < 1 or None")
        if self.resume and not self.save_last:
            raise ValueError("TrainConfig.resume=True needs save_last=True (resume reads last.pt)")
        if self.sync_every is not None and self.sync_every < 1:
            raise ValueError(f"TrainConfig.sync_every={self.sync_every}; need >= 1 or None")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"TrainConfig.max_steps={self.max_steps}; need >= 1 or None")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError(f"TrainConfig.time_budget_s={self.time_budget_s}; need > 0 or None")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"TrainConfig.grad_clip={self.grad_clip}; need > 0 or None")
        self.precision = str(self.precision).lower()
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision={self.precision!r}; choose one of {PRECISIONS}")
        if self.monitor_mode not in ("auto", "min", "max"):
            raise ValueError(f"TrainConfig.monitor_mode={self.monitor_mode!r}; use auto, min or max")
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = Path(self.checkpoint_dir)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], **overrides: Any) -> "TrainConfig":
        """Build from a mapping of field values (and ``overrides``); a key that is not a field raises
        KeyError listing the fields (a misspelt setting must not silently mean the default). A
        profile reaches the engine through :func:`defectlib.experiments.registry.train_config`."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {**dict(values), **overrides}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise KeyError(f"TrainConfig has no field {', '.join(map(repr, unknown))}; it has {sorted(names)}")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain python values only (paths as str), safe for json and for ``torch.load(weights_only=True)``."""
        out = dataclasses.asdict(self)
        out["checkpoint_dir"] = None if self.checkpoint_dir is None else str(self.checkpoint_dir)
        out["betas"] = list(self.betas)
        out["milestones"] = list(self.milestones)
        return out

    def mode_for(self, name: str) -> str:
        """``"min"`` or ``"max"`` for the monitored quantity ``name``."""
        if self.monitor_mode != "auto":
            return self.monitor_mode
        return "min" if "loss" in name.lower() else "max"
