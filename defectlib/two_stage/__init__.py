"""Notebook 02's experiment code: the Severstal two-stage paper (paper 001) as data + recipe.

- :mod:`.tasks`: datasets in the paper's form (one mask channel per defect class, clean flag),
  Severstal or a real dataset standing in for it (NEU-Seg, MTD), split train / val / test.
- :mod:`.recipe`: crops alternating by epoch, dark-crop rejection, class-balanced batches and
  augmentations (from :mod:`defectlib.data.sampling` / ``transforms``), Adam + plateau schedule
  with a time budget, BCE + Dice then Tversky.

The models are in :mod:`defectlib.models.unet` / :mod:`defectlib.models.classifier`, the pipeline
and its evaluation in :mod:`defectlib.pipeline`.
"""
from .recipe import (CropScheduleSampler, GateDataset, StageResult, augmentations, eval_loader,
                     gate_loader, gate_loss, seg_loader, seg_loss, train_stage)
from .tasks import Channels, Subset, Task, build_tasks, mtd_task, neu_seg_task, severstal_task

__all__ = ["CropScheduleSampler", "GateDataset", "StageResult", "augmentations",
           "eval_loader", "gate_loader", "gate_loss", "seg_loader", "seg_loss", "train_stage",
           "Channels", "Subset", "Task", "build_tasks", "mtd_task", "neu_seg_task", "severstal_task"]
