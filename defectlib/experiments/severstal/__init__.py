"""Notebook 02's experiment: the Severstal two-stage paper (paper 001), a U-Net per encoder
(ResNet-34 / ResNet-50 / EfficientNet-B3, one sigmoid per defect class) behind a defective / clean gate.

- :mod:`.data`      tasks in the paper's form (Severstal, or NEU-Seg and MTD standing in), the batches
- :mod:`.recipe`    the losses and one training stage (Adam, plateau-halved lr, fixed steps)
- :mod:`.pipeline`  gate + U-Net, threshold tuning on validation, both Dice definitions

The models are :mod:`defectlib.models.unet` and :mod:`defectlib.models.classifier`.
"""
from .data import (Channels, CropScheduleSampler, GateDataset, Subset, Task, augmentations, build_tasks,
                   eval_loader, gate_loader, mtd_task, neu_seg_task, seg_loader, severstal_task)
from .recipe import StageResult, doctor_probes, gate_loss, seg_loss, train_stage

__all__ = ["Channels", "CropScheduleSampler", "GateDataset", "Subset", "Task", "augmentations", "build_tasks",
           "eval_loader", "gate_loader", "mtd_task", "neu_seg_task", "seg_loader", "severstal_task",
           "StageResult", "doctor_probes", "gate_loss", "seg_loss", "train_stage"]
