"""Notebook 03's experiment: OCINet (paper 003: PVT-v2-b2 + CCIM / CSIM / CPIM + defect reasoner with
deep supervision) and its ablation variants, on NRSD-MN or real NEU-Seg + MTD in its place.

- :mod:`.data`     the datasets, transforms and training loader
- :mod:`.recipe`   the loss (Eq. 1), training one variant, the authors' evaluation protocol (and
                   fixed thresholds scored beside its Otsu: :func:`.recipe.threshold_curve`)
- :mod:`.results`  size / cost / speed and the variants' scores recorded, the Table I and III analogues
- :mod:`.main`     the notebook's training and evaluation as a command (``python -m
                   defectlib.experiments.ocinet``, also under torchrun)
- :mod:`.figures`  what CCIM / CSIM / CPIM do to the features, Fig. 6-style maps

The model itself is :mod:`defectlib.models.ocinet`.
"""
from ..registry import Experiment
from .data import (EvalTransform, OCINetData, TrainTransform, build_data, collate_eval, mtd_defective_split,
                   train_loader)
from .recipe import (CURVE_THRESHOLDS, METRIC_NOTES, METRICS, PVT_V2_B2_URL, backbone_weights, doctor_probes,
                     evaluate, ocinet_loss_fn, predict_maps, score_maps, threshold_curve, train_and_evaluate,
                     weights_notes)
from .profile import PROFILES
from .results import (CLAIMS, COMPLEXITY, RIVALS, complexity_table, record_complexity, record_curves, record_params,
                      record_runs, record_summary,
                      table1, table3)

__all__ = ["EXPERIMENT", "CLAIMS", "PROFILES", "EvalTransform", "OCINetData", "TrainTransform", "build_data",
           "collate_eval", "mtd_defective_split", "train_loader", "METRIC_NOTES", "METRICS", "PVT_V2_B2_URL",
           "backbone_weights", "doctor_probes", "evaluate", "ocinet_loss_fn", "predict_maps", "score_maps",
           "CURVE_THRESHOLDS", "threshold_curve", "train_and_evaluate", "weights_notes", "COMPLEXITY", "RIVALS",
           "complexity_table", "record_complexity", "record_curves", "record_params", "record_runs", "record_summary", "table1",
           "table3"]

EXPERIMENT = Experiment(
    number="03", title="OCINet: PVT-v2-b2 + CCIM / CSIM / CPIM + defect reasoner, Tables I-III",
    notebook="03_ocinet_nrsd.ipynb", profiles=PROFILES, datasets=("nrsd-mn", "neu-seg", "mtd"),
    substitutes={"nrsd-mn": ("neu-seg", "mtd")}, claims=CLAIMS, doctor_probes=doctor_probes,
    command="python -m defectlib.experiments.ocinet", paper="003")
