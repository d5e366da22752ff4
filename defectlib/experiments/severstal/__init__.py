"""Notebook 02's experiment: the Severstal two-stage paper (paper 001), a U-Net per encoder
(ResNet-34 / ResNet-50 / EfficientNet-B3, one sigmoid per defect class) behind a defective / clean gate.

- :mod:`.data`      tasks in the paper's form (Severstal, or NEU-Seg and MTD standing in), the batches
- :mod:`.recipe`    the losses, one training stage (Adam, plateau-halved lr, fixed steps), the U-Net, the gate
- :mod:`.pipeline`  gate + U-Net, threshold tuning on validation, both Dice definitions
- :mod:`.evaluation` the U-Net alone, on clean images, the gate, the pipeline: thresholds on validation
- :mod:`.results`   what the notebook records, its tables beside the paper's numbers
- :mod:`.figures`   training stages, the gate's learning curve and confusion matrices, Dice bars
- :mod:`.main`      the notebook's training and evaluation as a command (``python -m
                    defectlib.experiments.severstal``, also under torchrun)

The models are :mod:`defectlib.models.unet` and :mod:`defectlib.models.classifier`.
"""
from ..registry import Experiment
from .data import (Channels, CropScheduleSampler, GateDataset, Subset, Task, augmentations, build_tasks,
                   demo_batches, eval_loader, gate_loader, mtd_task, neu_seg_task, seg_loader, severstal_task)
from .evaluation import (CleanImages, GateEvaluation, UNetEvaluation, evaluate_gate, evaluate_unet, gate_paper_key,
                         pipeline_predictions, unet_on_clean)
from .figures import plot_confusions, plot_dice, plot_gate_stage, plot_stages
from .recipe import (StageResult, doctor_probes, gate_loss, parameter_counts, seg_loss, train_gate, train_stage,
                     train_unet)
from .profile import PROFILES
from .results import (CLAIMS, gate_table, pipeline_table, record_gate, record_pipeline, record_scores,
                      record_segmentation,
                      segmentation_table)

__all__ = ["EXPERIMENT", "CLAIMS", "PROFILES", "Channels", "CropScheduleSampler", "GateDataset", "Subset",
           "Task", "augmentations", "build_tasks", "demo_batches", "eval_loader", "gate_loader", "mtd_task",
           "neu_seg_task", "seg_loader", "severstal_task", "StageResult", "doctor_probes", "gate_loss",
           "parameter_counts", "seg_loss", "train_gate", "train_stage", "train_unet", "plot_confusions",
           "plot_dice", "plot_gate_stage", "plot_stages", "gate_table", "pipeline_table", "record_gate",
           "record_pipeline", "record_scores", "record_segmentation", "segmentation_table", "CleanImages",
           "GateEvaluation", "UNetEvaluation", "evaluate_gate", "evaluate_unet", "gate_paper_key",
           "pipeline_predictions", "unet_on_clean"]

EXPERIMENT = Experiment(
    number="02", title="Severstal: U-Net (ResNet34/50, EfficientNet-B3) + ResNet-50 clean/defective gate",
    notebook="02_severstal_two_stage.ipynb", profiles=PROFILES, datasets=("severstal", "neu-seg", "mtd"),
    substitutes={"severstal": ("neu-seg", "mtd")}, claims=CLAIMS, doctor_probes=doctor_probes,
    command="python -m defectlib.experiments.severstal", paper="001")
