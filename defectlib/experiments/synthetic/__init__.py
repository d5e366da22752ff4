"""Notebook 04's experiment: synthetic data for defect segmentation (paper 004, Table 1 rebuilt on a
real target): FCN / DeepLabV3 / U-Net trained on a few real MTD tiles alone, or pre-trained on a
planar set (NEU-Seg) or on synthetic renders, with and without fine-tuning and exposure stacking.

- :mod:`.data`    the target, the planar set, the synthetic renders, the training crops
- :mod:`.recipe`  the arms, training and fine-tuning, threshold choice, P / R / F1 on the target
- :mod:`.results` P / R / F1 recorded, the Table 1 analogue
- :mod:`.figures` F1 per arm beside the paper's, the learning curves
- :mod:`.main`    the study as a command (``python -m defectlib.experiments.synthetic``, also under
                  torchrun)

The models are :mod:`defectlib.models.seg_baselines`; the renderer is :mod:`defectlib.synth`.
"""
from ..registry import Experiment
from .data import (MTD_DEFECT_CLASSES, CropSet, Pair, describe_target, load_planar, load_sources, load_target,
                   make_synthetic, to_input)
from .recipe import (ARMS, OUR_ROW, PAPER_ROW, SOURCE, choose_threshold, doctor_probes, evaluate,
                     loss_fn, planned_steps, predict_images, pretrain, run_arch, study_config, train, train_loader)
from .figures import plot_f1_per_arm, plot_learning_curves
from .profile import PROFILES, StudyProfile
from .results import CLAIMS, record_rows, table1

__all__ = ["EXPERIMENT", "CLAIMS", "PROFILES", "StudyProfile", "MTD_DEFECT_CLASSES", "CropSet", "Pair", "describe_target",
           "load_planar", "load_sources", "load_target", "make_synthetic", "to_input", "ARMS", "OUR_ROW",
           "PAPER_ROW", "SOURCE", "choose_threshold", "doctor_probes", "evaluate", "loss_fn",
           "planned_steps", "predict_images", "pretrain", "run_arch", "study_config", "train", "train_loader",
           "plot_f1_per_arm", "plot_learning_curves", "record_rows", "table1"]

EXPERIMENT = Experiment(
    number="04", title="synthetic data: procedural renderer, pre-train then fine-tune (Table 1)",
    notebook="04_synthetic_data.ipynb", profiles=PROFILES, datasets=("mtd", "neu-seg"),
    substitutes={}, claims=CLAIMS, doctor_probes=doctor_probes,
    command="python -m defectlib.experiments.synthetic", paper="004")
