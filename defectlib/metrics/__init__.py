"""Metrics of the four papers, each tested against an independent reference implementation.

- :mod:`.detection`: COCO-protocol AP/AR (paper 000), equal to pycocotools' COCOeval.
- :mod:`.segmentation`: Kaggle and author's Dice (paper 001), PA / foreground recall / IoU / Dice
  per image and pooled, Otsu binarisation (paper 003), pixel P/R/F1 and best-F1 threshold (004).
- :mod:`.wfm`: Margolin's weighted F-measure (paper 003), equal to PySODMetrics.
- :mod:`.classification`: confusion matrix, precision/recall, the defect gate of paper 001.
"""
from .classification import GateReport, confusion_matrix, gate_report, precision_recall
from .coco_result import COCO_STAT_NAMES, COCOResult
from .detection import COCOEvaluator, evaluate_detections
from .segmentation import (best_f1_threshold, confusion_counts, kaggle_dice, minmax_normalize,
                           multiclass_confusion, ocinet_evaluation, otsu_binarize, otsu_threshold,
                           per_class_iou, pixel_prf, precision_recall_curve, segmentation_scores,
                           severstal_author_dice)
from .wfm import weighted_fmeasure

__all__ = [
    "COCO_STAT_NAMES", "COCOEvaluator", "COCOResult", "evaluate_detections",
    "best_f1_threshold", "confusion_counts", "kaggle_dice", "minmax_normalize", "multiclass_confusion",
    "ocinet_evaluation", "otsu_binarize", "otsu_threshold", "per_class_iou", "pixel_prf",
    "precision_recall_curve",
    "segmentation_scores", "severstal_author_dice", "weighted_fmeasure",
    "GateReport", "confusion_matrix", "gate_report", "precision_recall",
]
