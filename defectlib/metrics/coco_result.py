"""The result of a COCO evaluation: pycocotools' arrays, its 12 summary numbers, per-class AP and
precision-recall curves to plot (see :mod:`defectlib.metrics.detection` for how they are computed).

``AP`` is the mean of the interpolated precision over recall thresholds 0:0.01:1, IoU thresholds
0.50:0.05:0.95 and classes; ``AP50``/``AP75`` fix the IoU threshold (``AP50`` is DANet's mAP@0.5);
``AR@k`` is the recall with at most ``k`` detections per image and class, averaged over IoU
thresholds and classes; ``_small/_medium/_large`` restrict to boxes of area < 32^2, 32^2..96^2,
> 96^2 pixels. Entries of classes without ground truth are -1 and left out of every mean.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["COCO_STAT_NAMES", "COCOResult"]

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
                   "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")


@dataclass
class COCOResult:
    """Everything COCOeval computes, in its layout, plus the raw precision-recall curves.

    ``precision[t, r, k, a, m]`` (interpolated, -1 where class ``k`` has no ground truth),
    ``recall[t, k, a, m]``, ``scores[t, r, k, a, m]``; ``stats`` are the 12 numbers of
    ``COCOeval.summarize()`` in :data:`COCO_STAT_NAMES` order (-1 when undefined).
    """

    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: list
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    area_ranges: dict
    max_dets: tuple
    curves: dict = field(default_factory=dict, repr=False)  # (t, k) -> (recall, precision, scores)

    def _select(self, ap: bool, iou, area, max_dets):
        a = list(self.area_ranges).index(area)
        m = list(self.max_dets).index(max_dets)
        s = self.precision if ap else self.recall
        if iou is not None:
            t = np.where(iou == self.iou_thresholds)[0]
            if len(t) == 0:
                t = np.where(np.isclose(iou, self.iou_thresholds))[0]
            s = s[t]
        return s[..., a, m]  # [T, R, K] or [T, K]

    def summarize_value(self, ap=True, iou=None, area="all", max_dets=None) -> float:
        """One COCO summary number (as ``COCOeval._summarize``): mean over defined entries, else -1
        (also when ``max_dets`` is not one of the evaluated limits, as in pycocotools)."""
        max_dets = self.max_dets[-1] if max_dets is None else max_dets
        if max_dets not in self.max_dets:
            return -1.0
        s = self._select(ap, iou, area, max_dets)
        s = s[s > -1]
        return float(np.mean(s)) if s.size else -1.0

    @property
    def stats(self) -> np.ndarray:
        """The 12 numbers printed by ``COCOeval.summarize()``, by its rule: AP at ``maxDets=100``
        (-1 if 100 was not evaluated), AR@1 and AR@10 at ``max_dets[0]`` and ``[1]``, every other
        entry at ``max_dets[2]``."""
        md = self.max_dets
        big = md[2]
        specs = [(True, None, "all", 100), (True, 0.5, "all", big), (True, 0.75, "all", big),
                 (True, None, "small", big), (True, None, "medium", big), (True, None, "large", big),
                 (False, None, "all", md[0]), (False, None, "all", md[1]),
                 (False, None, "all", big), (False, None, "small", big), (False, None, "medium", big),
                 (False, None, "large", big)]
        return np.array([self.summarize_value(*s) for s in specs])

    def as_dict(self) -> dict:
        """``{"AP": ..., "AP50": ..., ..., "AR_large": ...}`` (fractions, -1 when undefined)."""
        return dict(zip(COCO_STAT_NAMES, self.stats.tolist()))

    def per_class_ap(self, iou=None, area="all", max_dets=None) -> dict:
        """AP of each class (averaged over IoU thresholds, or at one ``iou``); NaN without GT."""
        s = self._select(True, iou, area, self.max_dets[-1] if max_dets is None else max_dets)
        out = {}
        for k, name in enumerate(self.class_names):
            v = s[:, :, k]
            v = v[v > -1]
            out[name] = float(np.mean(v)) if v.size else float("nan")
        return out

    def per_class_ap50(self) -> dict:
        """AP at IoU 0.5 of each class: the per-class columns of DANet's Tables 2-3."""
        return self.per_class_ap(iou=0.5)

    @property
    def ap(self) -> float:
        """COCO AP: mean interpolated precision over IoU 0.50:0.05:0.95, 101 recalls and classes."""
        return self.stats[0]

    @property
    def ap50(self) -> float:
        """AP at IoU 0.5, mean over classes: DANet's mAP (Tables 2-4)."""
        return self.stats[1]

    @property
    def ap75(self) -> float:
        """AP at IoU 0.75, mean over classes."""
        return self.stats[2]

    @property
    def ar100(self) -> float:
        """Recall with at most 100 detections per image and class, mean over IoU 0.50:0.95 and classes."""
        return self.stats[8]

    def pr_curve(self, class_name, iou=0.5, interpolated=True):
        """(recall, precision) of one class at one IoU threshold, area "all", most detections.

        ``interpolated=True`` gives the 101 points that are averaged into AP; ``False`` gives the
        raw curve, one point per detection in score order.
        """
        k = list(self.class_names).index(class_name)
        t = int(np.argmin(np.abs(self.iou_thresholds - iou)))
        if interpolated:
            p = self.precision[t, :, k, 0, -1]
            return self.recall_thresholds.copy(), np.where(p < 0, np.nan, p)
        rc, pr, _ = self.curves.get((t, k), (np.zeros(0), np.zeros(0), np.zeros(0)))
        return rc, pr

    def precision_recall_at(self, score_threshold: float, iou=0.5) -> dict:
        """Per-class ``(precision, recall)`` of the detections scoring ``>= score_threshold`` at one
        IoU threshold (DANet's Eqs. 11-12: ``P = TP / (TP + FP)``, ``R = TP / (TP + FN)``);
        NaN for a class without ground truth (or, for P, without such detections)."""
        t = int(np.argmin(np.abs(self.iou_thresholds - iou)))
        out = {}
        for k, name in enumerate(self.class_names):
            rc, pr, sc = self.curves.get((t, k), (None, None, None))
            if rc is None:
                out[name] = (float("nan"), float("nan"))
                continue
            n = int(np.count_nonzero(sc >= score_threshold))  # detections are sorted by score
            out[name] = (float(pr[n - 1]), float(rc[n - 1])) if n else (float("nan"), 0.0)
        return out

    def plot_pr(self, iou=0.5, ax=None, interpolated=True):
        """Precision-recall curve of every class at one IoU threshold (matplotlib axes)."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(5, 4))[1]
        ap = self.per_class_ap(iou=iou)
        for name in self.class_names:
            r, p = self.pr_curve(name, iou, interpolated)
            ax.plot(r, p, label=f"{name} (AP {100 * ap[name]:.1f})")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
               title=f"precision-recall at IoU {iou:g}")
        ax.legend(fontsize=8)
        return ax

    def summary(self) -> str:
        """The table ``COCOeval.summarize()`` prints, as a string."""
        lines = []
        for name, v in zip(COCO_STAT_NAMES, self.stats):
            kind = "Average Precision" if name.startswith("AP") else "Average Recall   "
            lines.append(f" {kind} {name:>10} = {v:0.3f}")
        return "\n".join(lines)
