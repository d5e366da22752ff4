"""Notebook 05's profiles: the course's segmentation models on a folder the user brings.

There is no paper behind notebook 05: its ``paper`` profile is the GPU-sized run (all four models,
352 px, about 70 passes over the training images); ``cpu`` is the reduced run of about 30 minutes on
2 CPU cores; ``smoke`` is plumbing. Each model trains with the cpu recipe of the notebook that
teaches it: OCINet as notebook 03 (Adam, one-cycle peaking at 5e-4, gradient norm clipped at 0.5,
its deep-supervision loss, Eq. 1 of paper 003); U-Net-ResNet34, DeepLabV3 and FCN as notebook 04
(AdamW, one-cycle peaking at 1e-3, weight decay 1e-4, BCE + Dice); rotations by multiples of 90
degrees and flips for all.

**Steps are fixed, and scaled to the folder's size** (:func:`plan_steps`): each model trains
``ceil(passes x training images / batch)`` optimizer steps, at least ``min_steps`` and at most
``step_cap``, the same number for every model of the run. They follow from the profile and the
folder alone, never from wall time. On binarised NEU-Seg's 3,630 training images (2,540 for
training after the split) the cpu profile trains 500 steps of 8 images at 224x224 per model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..registry import CPU, GPU, NO_GPU, Profile, three

#: the models notebook 05 can train (keys of :data:`.recipe.MODELS`)
MODEL_NAMES = ("unet_resnet34", "ocinet", "deeplabv3", "fcn")


@dataclass(frozen=True)
class YoursProfile(Profile):
    models: tuple[str, ...] = MODEL_NAMES
    input_size: int = 352                    # every image is resized to input_size x input_size
    batch_size: int = 16
    passes: float = 70.0                     # passes over the training images...
    min_steps: int = 0                       # ...at least this many optimizer steps...
    step_cap: int | None = None              # ...and at most this many (None: no ceiling)
    lr: float = 1e-3                         # U-Net / DeepLabV3 / FCN (notebook 04's recipe)
    weight_decay: float = 1e-4
    ocinet_lr: float = 5e-4                  # OCINet (notebook 03's cpu recipe)
    ocinet_grad_clip: float | None = 0.5
    augment: bool = True
    val_fraction: float = 0.15               # the split: train / validation / test
    test_fraction: float = 0.15
    min_images: int = 20                     # fewer labelled images cannot be split three ways
    max_images: int | None = None            # smoke: a seeded subset of the folder
    duplicates: bool = True                  # near-duplicate search of the data check
    curve_every: int | None = 200            # validation IoU every that many steps (drawn, never used)
    curve_images: int = 64                   # validation images of a learning-curve point
    throughput_warmup: int = 5
    throughput_repeats: int = 20
    n_gallery: int = 8
    n_worst: int = 6
    bootstrap: int = 2000                    # resamples of the test images behind the verdict
    progress: bool = True

    def __post_init__(self) -> None:
        """Settings checked when made (``--set models=unet`` fails here, before any data is read)."""
        models = self.models if isinstance(self.models, (tuple, list)) else (self.models,)
        bad = [m for m in models if m not in MODEL_NAMES]
        if not models or bad:
            raise ValueError(f"models={self.models!r}: choose from {MODEL_NAMES}, got {bad or 'none'}")
        if not (0 < self.val_fraction and 0 < self.test_fraction and self.val_fraction + self.test_fraction < 1):
            raise ValueError(f"val_fraction={self.val_fraction}, test_fraction={self.test_fraction}: each > 0, "
                             "together below 1 (the rest trains)")

    def training(self, model=None) -> dict:
        """The engine's settings for ``model`` (a key of :data:`MODEL_NAMES`); the run adds the
        epochs of :func:`plan_steps` and its seed."""
        common = {**self.numerics(), "schedule": "onecycle", "curve_every": self.curve_every,
                  "progress": self.progress}
        if model == "ocinet":
            return {**common, "optimizer": "adam", "lr": self.ocinet_lr, "grad_clip": self.ocinet_grad_clip}
        return {**common, "optimizer": "adamw", "lr": self.lr, "weight_decay": self.weight_decay}


@dataclass(frozen=True)
class StepPlan:
    """How a model's training is cut: ``epochs`` of ``steps_per_epoch`` batches of ``batch_size``."""
    steps: int
    epochs: int
    steps_per_epoch: int
    batch_size: int

    @property
    def images_per_epoch(self) -> int:
        return self.steps_per_epoch * self.batch_size

    def describe(self, n_train: int) -> str:
        epochs = f"{self.epochs} epoch{'s' if self.epochs != 1 else ''} of {self.steps_per_epoch} steps"
        return (f"{self.steps} optimizer steps of {self.batch_size} images per model ({epochs}, "
                f"{self.steps * self.batch_size / max(n_train, 1):.1f} passes over the {n_train} training images)")


def plan_steps(n_train: int, cfg: YoursProfile) -> StepPlan:
    """The optimizer steps of every model for ``n_train`` training images (module docstring): an
    epoch is one pass over the training images (fewer steps if the run is shorter), and the steps
    are spread evenly over the epochs. A dry run's ``max_steps`` only cuts the run (the engine)."""
    if n_train < 1:
        raise ValueError("no training image")
    batch = min(cfg.batch_size, n_train)
    steps = max(math.ceil(cfg.passes * n_train / batch), cfg.min_steps, 1)
    if cfg.step_cap is not None:
        steps = min(steps, cfg.step_cap)
    per_pass = max(1, n_train // batch)
    epochs = math.ceil(steps / per_pass)
    per_epoch = math.ceil(steps / epochs)
    return StepPlan(epochs * per_epoch, epochs, per_epoch, batch)


PROFILES = three(
    YoursProfile(**GPU),
    {**NO_GPU, **CPU, "models": ("unet_resnet34", "ocinet"), "input_size": 224, "batch_size": 8, "passes": 3.0,
     "min_steps": 200, "step_cap": 500, "curve_every": 100, "throughput_warmup": 2, "throughput_repeats": 5},
    {**NO_GPU, "models": ("unet_resnet34", "ocinet"), "input_size": 64, "batch_size": 2, "passes": 1.0,
     "step_cap": 2, "max_images": 40, "curve_every": 2, "curve_images": 2, "throughput_warmup": 1,
     "throughput_repeats": 2, "n_gallery": 4, "n_worst": 2, "bootstrap": 200, "progress": False})
