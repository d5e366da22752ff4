"""Training recipe of the Severstal two-stage paper (paper 001, section 5).

A. Bionda, "Severstal defect segmentation", IACV 2019-2020. What this module turns into code
(the data it trains on is a :class:`~defectlib.two_stage.tasks.Task`):

- Segmentation batches (Sec. 5.1): random crops whose size alternates by epoch (256x384, 256x512),
  dark crops rejected, batches with every class in equal proportion *including the clean class*,
  flips / rotation / shift and brightness / contrast: the data module's
  :class:`~defectlib.data.sampling.ClassBalancedBatchSampler`, ``RandomCropDataset`` and
  ``transforms.segmentation_train``, put together by :func:`seg_loader`.
- Classifier batches (Sec. 5.2): full images, BCE on the defective flag.
- :func:`train_stage`: Adam 1e-3 halved on a 3-epoch plateau of the validation loss (one
  :func:`defectlib.engine.fit` call per loss: BCE + Dice, then Tversky), a fixed number of steps.

Evaluation (both Dice definitions, the pipeline, "predict nothing") is in :mod:`defectlib.pipeline`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from ..data.sampling import ClassBalancedBatchSampler, RandomCropDataset, primary_labels
from ..data.transforms import segmentation_train
from ..engine import TrainConfig, fit, loss_evaluator, supervised_loss, to_device
from ..engine.progress import tqdm
from .tasks import Task


# --- training batches ----------------------------------------------------------------------------
def augmentations() -> v2.Compose:
    """Paper Sec. 5: random flips, rotation (5 degrees) and shift (5%); brightness and contrast."""
    return segmentation_train(hflip=0.5, vflip=0.5, degrees=5.0, shift=0.05, brightness=0.2, contrast=0.2)


class CropScheduleSampler(ClassBalancedBatchSampler):
    """:class:`~defectlib.data.sampling.ClassBalancedBatchSampler` that also tells the crop dataset
    which epoch starts, so the crop size alternates by epoch (256x384, 256x512, ...)."""

    def __init__(self, crops: RandomCropDataset, labels, batch_size: int, num_batches: int | None, seed: int = 0):
        super().__init__(labels, batch_size, num_batches, seed)
        self.crops = crops

    def __iter__(self):
        self.crops.set_epoch(self.epoch)
        return super().__iter__()


class GateDataset(Dataset):
    """Full images for the classifier: ``ds[i]`` -> (image, 1.0 if defective else 0.0)."""

    def __init__(self, ds: Dataset, transforms=None):
        self.ds, self.transforms = ds, transforms

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        image, mask = self.ds[i]
        if self.transforms is not None:
            image = self.transforms(image)
        return image.as_subclass(torch.Tensor), torch.tensor(float(mask.any()))


def seg_loader(task: Task, batch_size: int, steps_per_epoch: int | None, dark_threshold=0.05,
               seed=0, num_workers=0) -> DataLoader:
    """Class-balanced batches (clean = a class; a multi-class image counts as its rarest class) of
    augmented random crops, the crop size alternating by epoch, dark crops redrawn; a share
    ``task.defect_p`` of the defective images' crops centred near a defect."""
    crops = RandomCropDataset(task.train, task.crops, dark_threshold, transforms=augmentations(), seed=seed,
                              defect_p=task.defect_p)
    labels = primary_labels(task.train.classes, clean="clean")
    sampler = CropScheduleSampler(crops, labels, batch_size, steps_per_epoch, seed)
    return DataLoader(crops, batch_sampler=sampler, num_workers=num_workers)


def gate_loader(task: Task, batch_size: int, steps_per_epoch: int | None, seed=0, num_workers=0) -> DataLoader:
    """Full images, clean and defective in equal numbers (Severstal's own ratio is 44/56)."""
    sampler = ClassBalancedBatchSampler(task.train.defective, batch_size, steps_per_epoch, seed)
    return DataLoader(GateDataset(task.train, augmentations()), batch_sampler=sampler, num_workers=num_workers)


def eval_loader(ds: Dataset, batch_size: int, limit: int | None = None, gate: bool = False,
                seed: int = 0) -> DataLoader:
    """Validation / test batches in a fixed order; ``limit`` keeps a seeded random subset (splits
    are ordered by class, so the first images would all be of one kind)."""
    if limit is not None and limit < len(ds):
        keep = np.sort(np.random.default_rng(seed).choice(len(ds), limit, replace=False))
        ds = _Indexed(ds, keep.tolist())
    return DataLoader(GateDataset(ds) if gate else _Plain(ds), batch_size, shuffle=False)


class _Indexed(Dataset):
    """``ds`` restricted to ``indices``, keeping its ``ids`` (for submissions)."""

    def __init__(self, ds, indices):
        self.ds, self.indices = ds, indices
        self.ids = [ds.ids[i] for i in indices] if hasattr(ds, "ids") else [str(i) for i in indices]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.ds[self.indices[i]]


class _Plain(Dataset):
    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        image, mask = self.ds[i]
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


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
    :func:`defectlib.pipeline.iou_curve`) adds learning-curve points to every epoch's record; they
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
