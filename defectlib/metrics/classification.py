"""Classification metrics: confusion matrix, precision, recall, and the defect gate of paper 001.

Paper 001 puts a binary classifier ("is this steel image defective?") in front of the U-Net: an
image with ``p(defective) < 0.5`` gets four empty masks. The gate's cost is its *false-negative
rate*, ``FNR = FN / (TP + FN)``: the share of defective images it lets through as clean, whose
defects the segmenter never sees. Its benefit is the true negatives: clean images whose masks are
then exactly empty (Dice 1 in the Kaggle metric). The paper prints its confusion matrices with
rows = real (defective, clean) and columns = predicted (defective, clean), i.e.
``[[TP, FN], [FP, TN]]`` (ResNet-50: ``[[695, 21], [365, 719]]``).

``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)`` (per class in the multi-class case,
one-vs-rest on the confusion matrix), ``accuracy = trace / total``. A gate's threshold-free quality
is its ROC AUC: the probability that a random defective image scores above a random clean one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._arrays import binary, finite, labels, probabilities
from ._arrays import to_numpy as _np

__all__ = ["confusion_matrix", "precision_recall", "GateReport", "gate_report", "roc_auc"]


def confusion_matrix(y_true, y_pred, num_classes=None):
    """``C[i, j]`` = number of samples of true class ``i`` predicted as ``j`` (scikit-learn's layout)."""
    k = int(num_classes) if num_classes is not None else None
    t, p = labels(y_true, "y_true", 0, k).ravel(), labels(y_pred, "y_pred", 0, k).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_pred: {p.size} predictions for {t.size} true labels (y_true)")
    k = k if k is not None else int(max(t.max(initial=0), p.max(initial=0))) + 1
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def precision_recall(cm):
    """Per-class ``(precision, recall)`` arrays from a confusion matrix (NaN where undefined)."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        return tp / cm.sum(0), tp / cm.sum(1)


@dataclass
class GateReport:
    """A defective/clean gate scored on images; ``matrix`` in the paper's layout [[TP, FN], [FP, TN]]."""

    tp: int
    fn: int
    fp: int
    tn: int
    threshold: float

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.tp, self.fn], [self.fp, self.tn]])

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def false_negative_rate(self) -> float:
        """Defective images passed as clean: ``FN / (TP + FN)`` (= 1 - recall)."""
        return self.fn / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def false_positive_rate(self) -> float:
        """Clean images sent to the segmenter: ``FP / (FP + TN)``."""
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else float("nan")

    @property
    def accuracy(self) -> float:
        n = self.tp + self.fn + self.fp + self.tn
        return (self.tp + self.tn) / n if n else float("nan")

    def as_dict(self) -> dict:
        return {"tp": self.tp, "fn": self.fn, "fp": self.fp, "tn": self.tn, "precision": self.precision,
                "recall": self.recall, "false_negative_rate": self.false_negative_rate,
                "false_positive_rate": self.false_positive_rate, "accuracy": self.accuracy}


def gate_report(is_defective, p_defective, threshold=0.5) -> GateReport:
    """Score a gate: ``is_defective`` (bool per image) against ``p_defective >= threshold``.

    Paper 001's rule: an image is sent to the segmenter when ``p(defective) >= 0.5``.
    """
    y = binary(is_defective, "is_defective").ravel()
    p = probabilities(p_defective, "p_defective").ravel()
    if y.shape != p.shape:
        raise ValueError(f"p_defective: {p.size} probabilities for {y.size} labels (is_defective)")
    threshold = float(finite(threshold, "threshold"))
    pred = p >= threshold
    tp = int(np.count_nonzero(pred & y))
    fn = int(np.count_nonzero(~pred & y))
    fp = int(np.count_nonzero(pred & ~y))
    return GateReport(tp, fn, fp, int(y.size - tp - fn - fp), float(threshold))


def roc_auc(is_defective, p_defective) -> float:
    """Area under the ROC curve of ``p_defective`` for the labels ``is_defective``, threshold-free.

    Computed as the Mann-Whitney statistic (Hanley & McNeil, 1982): with ``R`` the sum of the
    (tie-averaged) ranks of the ``n1`` defective images among all scores,
    ``AUC = (R - n1 (n1 + 1) / 2) / (n1 n0)``, i.e. the probability that a random defective image
    scores above a random clean one, ties counting one half. Needs both kinds of image.
    """
    from scipy.stats import rankdata

    y = binary(is_defective, "is_defective").ravel()
    p = _np(p_defective, np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels but {p.size} scores")
    if not np.isfinite(p).all():
        raise ValueError(f"p_defective has {int((~np.isfinite(p)).sum())} NaN / inf values")
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError(f"ROC AUC needs defective and clean images; got {n1} defective, {n0} clean")
    ranks = rankdata(p)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
