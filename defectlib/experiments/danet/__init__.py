"""Notebook 01's experiment: DANet (paper 000) on NEU-DET, the five phases of its Table 3 ablation.

- :mod:`.data`    NEU-DET split by seed, the training loader
- :mod:`.recipe`  each phase's model at the profile's size, the paper's SGD settings
- :mod:`.results` each phase's evaluation recorded, the Table 3 analogue, the training plan
- :mod:`.figures` the training losses and learning curves
- :mod:`.main`    the notebook's training and evaluation as a command (``python -m
                  defectlib.experiments.danet``, also under torchrun)

The model is :mod:`defectlib.models.danet` (with :mod:`~defectlib.models.dcn` and
:mod:`~defectlib.models.cbam`).
"""
from ..registry import Experiment
from .data import datasets, train_loader
from .recipe import (MODEL_KEYS, build_model, doctor_probes, model_kwargs, starting_weights,
                     weights_notes)
from .figures import plot_training
from .profile import PROFILES
from .results import CLAIMS, record_curves, record_params, record_phase, record_summary, table3, training_plan

__all__ = ["EXPERIMENT", "CLAIMS", "PROFILES", "datasets", "train_loader", "MODEL_KEYS", "build_model",
           "doctor_probes", "model_kwargs", "starting_weights", "weights_notes",
           "plot_training", "record_curves", "record_params", "record_phase", "record_summary", "table3",
           "training_plan"]

EXPERIMENT = Experiment(
    number="01", title="DANet: Faster R-CNN + ResNet50-FPN + DCN + CBAM + focal loss, the 5 ablation phases of Table 3",
    notebook="01_danet_neu_det.ipynb", profiles=PROFILES, datasets=("neu-det",),
    substitutes={}, claims=CLAIMS, doctor_probes=doctor_probes,
    command="python -m defectlib.experiments.danet", paper="000")
