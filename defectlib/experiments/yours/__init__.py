"""Notebook 05's experiment: your own defects. The course's segmentation models (U-Net-ResNet34,
OCINet, DeepLabV3, FCN) trained, compared and exported on a folder of images and masks the user
brings, beside two trivial rows (the Otsu threshold, predicting nothing).

- :mod:`.data`       the folder (:class:`FolderSpec`), looked at before training (:func:`look`: data
                     check, defect shares, near-duplicates) and split (:func:`split`), training batches
- :mod:`.recipe`     the models, their losses and recipes, training, complexity; ``doctor_probes``
- :mod:`.evaluation` the threshold chosen on validation, the test scores, the trivial rows
- :mod:`.results`    the folder's numbers, the leaderboard, the verdict (:func:`pick`), ``CLAIMS``
- :mod:`.export`     the one prediction pipeline, the exported folder, :class:`Segmenter`
                     (``defectlib predict``)
- :mod:`.figures`    gallery, defect shares, learning and threshold curves, the worst test images
- :mod:`.main`       the notebook's steps as a command (``python -m defectlib.experiments.yours``,
                     also under torchrun)

There is no paper behind it: its ``paper`` profile is the GPU-sized run.
"""
from ..registry import Experiment
from .data import (NEU_SEG, FolderSpec, Look, YourData, folder_spec, look, read_split_file, split, train_loader,
                   with_models)
from .evaluation import (METRIC_NOTES, METRICS, THRESHOLDS, choose_threshold, digest, evaluate_model,
                         evaluate_nothing, evaluate_otsu, score_masks, threshold_curve)
from .export import Segmenter, export_model, probability_maps
from .profile import MODEL_NAMES, PROFILES, StepPlan, YoursProfile, plan_steps
from .recipe import (BASELINES, LABELS, MODELS, build_model, complexity, doctor_probes, eval_limit, evaluate, train,
                     train_and_evaluate)
from .results import (CLAIMS, Pick, bootstrap_difference, leaderboard, pick, record_data, record_pick, record_row,
                      record_summary)

__all__ = ["EXPERIMENT", "CLAIMS", "PROFILES", "MODEL_NAMES", "NEU_SEG", "YoursProfile", "StepPlan", "plan_steps",
           "FolderSpec", "Look", "YourData", "folder_spec", "look", "read_split_file", "split", "train_loader",
           "with_models", "METRIC_NOTES", "METRICS", "THRESHOLDS", "choose_threshold", "digest", "evaluate_model",
           "evaluate_nothing", "evaluate_otsu", "score_masks", "threshold_curve", "Segmenter", "export_model",
           "probability_maps", "BASELINES", "LABELS", "MODELS", "build_model", "complexity", "doctor_probes",
           "eval_limit", "evaluate", "train", "train_and_evaluate", "Pick", "bootstrap_difference", "leaderboard",
           "pick", "record_data", "record_pick", "record_row", "record_summary"]

# CLAIMS: the course's claims about its models on a folder; judged over the seeds committed in
# results/05_your_own_data (binarised NEU-Seg, cpu profile) and on each run by record_summary
EXPERIMENT = Experiment(
    number="05", title="your own defects: the course's models trained, compared and exported on your folder",
    notebook="05_your_own_data.ipynb", profiles=PROFILES, datasets=("neu-seg",), substitutes={},
    claims=CLAIMS, doctor_probes=doctor_probes, command="python -m defectlib.experiments.yours", paper=None)
