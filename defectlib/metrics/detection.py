"""COCO-protocol evaluation of object detections (paper 000, DANet, Sec. IV and Eqs. 11-12).

What the protocol computes, step by step (Lin et al., "Microsoft COCO", 2014; the reference code
is pycocotools' ``COCOeval``, which this module reproduces to 1e-9 without calling it):

1. **IoU** of every detection with every ground-truth box of the same image and class,
   ``IoU = |D n G| / |D u G|``; for a *crowd* box the union is replaced by ``|D|``.
2. **Greedy matching**, per image and class, for each IoU threshold ``t in {0.50, 0.55, ..., 0.95}``
   and each area range: detections in decreasing score order (at most ``maxDets[-1]`` per image and
   class) take the unmatched ground truth with the highest IoU ``>= t``; ground truth that is a
   crowd or outside the area range is "ignored": it can absorb a detection (which is then neither
   a TP nor an FP) but is only used when no regular box qualifies. Unmatched detections outside
   the area range are ignored too.
3. **Precision / recall**: detections of all images sorted by score; ``P = TP / (TP + FP)`` and
   ``R = TP / |non-ignored GT|`` (the paper's Eqs. 11-12) after each detection.
4. **101-point interpolated AP**: precision is made monotone (``p(r) = max_{r' >= r} p(r')``) and
   sampled at recall ``0, 0.01, ..., 1`` (0 beyond the highest recall reached);
   ``AP = mean_r p(r)``. AP of a class at one threshold; the COCO "AP" is the mean over the 10
   thresholds and over classes, "AP50" at ``t = 0.5`` only (the paper's mAP@0.5), "AR@k" the
   recall with at most ``k`` detections per image and class, averaged over thresholds and classes.
   Classes with no (non-ignored) ground truth are left out of every mean (pycocotools marks them -1).

All images, classes, thresholds and area ranges are matched at once with numpy: the only Python
loop of the matching runs over the rank of a detection within its (image, class) group.
Inputs use torchvision's detection convention (tensors or arrays, boxes ``xyxy`` in pixels):
``targets[i] = {"boxes": [N,4], "labels": [N], optional "iscrowd": [N], "area": [N]}`` and
``predictions[i] = {"boxes": [M,4], "scores": [M], "labels": [M]}`` for the same image ``i``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["COCO_AREA_RANGES", "COCO_STAT_NAMES", "COCOResult", "COCOEvaluator", "evaluate_detections"]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
COCO_AREA_RANGES = {"all": (0.0, 1e5**2), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2),
                    "large": (96.0**2, 1e5**2)}
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
                   "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")


def _np(x, dtype, shape=None):
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=dtype)
    return a.reshape(shape) if shape is not None else a


def _flatten(items, with_scores: bool):
    """Concatenate per-image dicts into flat arrays (image index, label, xywh box, ...)."""
    img, lab, box, extra = [], [], [], []
    for i, d in enumerate(items):
        if not isinstance(d, dict) or "boxes" not in d or "labels" not in d:
            raise ValueError(f"item {i}: expected a dict with 'boxes' and 'labels', got {type(d).__name__}"
                             f" with keys {list(d) if isinstance(d, dict) else None}")
        b = _np(d["boxes"], np.float64, (-1, 4))
        lbl = _np(d["labels"], np.int64, (-1,))
        if len(b) != len(lbl):
            raise ValueError(f"item {i}: {len(b)} boxes but {len(lbl)} labels")
        n = len(b)
        if with_scores:
            if "scores" not in d:
                raise ValueError(f"prediction {i}: missing 'scores'")
            s = _np(d["scores"], np.float64, (-1,))
            if len(s) != n:
                raise ValueError(f"prediction {i}: {n} boxes but {len(s)} scores")
            extra.append((s,))
        else:
            crowd = _np(d.get("iscrowd", np.zeros(n)), np.int64, (-1,)).astype(bool)
            area = d.get("area")
            area = None if area is None else _np(area, np.float64, (-1,))
            extra.append((crowd, area))
        img.append(np.full(n, i, np.int64))
        lab.append(lbl)
        box.append(b)
    cat = (lambda xs, dt, shp: np.concatenate(xs) if xs else np.zeros(shp, dt))
    box = cat(box, np.float64, (0, 4))
    xywh = np.stack([box[:, 0], box[:, 1], box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]], 1)
    out = {"img": cat(img, np.int64, (0,)), "label": cat(lab, np.int64, (0,)), "xywh": xywh}
    if with_scores:
        out["score"] = cat([e[0] for e in extra], np.float64, (0,))
    else:
        out["crowd"] = cat([e[0] for e in extra], bool, (0,))
        wh_area = xywh[:, 2] * xywh[:, 3]
        areas = [e[1] for e in extra]
        if any(a is not None for a in areas):  # per-image "area" given (e.g. mask area) wins
            sizes = [len(e[0]) for e in extra]
            parts, start = [], 0
            for a, n in zip(areas, sizes):
                parts.append(wh_area[start:start + n] if a is None else a)
                start += n
            wh_area = np.concatenate(parts) if parts else wh_area
        out["area"] = wh_area
    return out


def _box_iou(d, g, crowd):
    """pycocotools' bbox IoU on xywh boxes, same float operations: d [...,4], g [...,4]."""
    w = np.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - np.maximum(d[..., 0], g[..., 0])
    h = np.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - np.maximum(d[..., 1], g[..., 1])
    inter = w * h
    da = d[..., 2] * d[..., 3]
    union = np.where(crowd, da, da + g[..., 2] * g[..., 3] - inter)
    ok = (w > 0) & (h > 0)
    return np.where(ok, inter / np.where(ok, union, 1.0), 0.0)


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
        """One COCO summary number (as ``COCOeval._summarize``): mean over defined entries, else -1."""
        s = self._select(ap, iou, area, self.max_dets[-1] if max_dets is None else max_dets)
        s = s[s > -1]
        return float(np.mean(s)) if s.size else -1.0

    @property
    def stats(self) -> np.ndarray:
        """The 12 numbers printed by ``COCOeval.summarize()``."""
        md = self.max_dets
        big = md[-1]
        specs = [(True, None, "all", big), (True, 0.5, "all", big), (True, 0.75, "all", big),
                 (True, None, "small", big), (True, None, "medium", big), (True, None, "large", big),
                 (False, None, "all", md[0]), (False, None, "all", md[min(1, len(md) - 1)]),
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
        return self.stats[0]

    @property
    def ap50(self) -> float:
        return self.stats[1]

    @property
    def ap75(self) -> float:
        return self.stats[2]

    @property
    def ar100(self) -> float:
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


def evaluate_detections(predictions: Sequence[dict], targets: Sequence[dict], num_classes=None,
                        class_names=None, iou_thresholds=IOU_THRESHOLDS, max_dets=(1, 10, 100),
                        area_ranges=COCO_AREA_RANGES) -> COCOResult:
    """COCO bbox evaluation of ``predictions`` against ``targets`` (equal to pycocotools COCOeval).

    Classes are the labels ``1..num_classes`` (``len(class_names)`` if names are given; default:
    the labels present in ``targets``). Detections of other labels are ignored, as pycocotools
    ignores categories not listed in the ground truth. Returns a :class:`COCOResult`.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} images")
    gt, dt = _flatten(targets, False), _flatten(predictions, True)
    if class_names is not None:
        class_ids = np.arange(1, len(class_names) + 1)
    elif num_classes is not None:
        class_ids = np.arange(1, int(num_classes) + 1)
    else:
        class_ids = np.unique(gt["label"])
    names = list(class_names) if class_names is not None else [int(c) for c in class_ids]
    thr = np.asarray(iou_thresholds, np.float64)
    max_dets = tuple(int(m) for m in max_dets)
    rng = np.array(list(area_ranges.values()), np.float64)  # [A, 2]
    n_img, K, T, A, M, R = len(targets), len(class_ids), len(thr), len(rng), len(max_dets), len(RECALL_THRESHOLDS)

    # --- class index k of every box; group = (k, image) -------------------------------------
    lut = {int(c): k for k, c in enumerate(class_ids)}
    gk = np.array([lut.get(int(c), -1) for c in gt["label"]], np.int64)
    dk = np.array([lut.get(int(c), -1) for c in dt["label"]], np.int64)
    keep_g, keep_d = gk >= 0, dk >= 0
    g_grp = gk[keep_g] * n_img + gt["img"][keep_g]
    g_box, g_crowd, g_area = gt["xywh"][keep_g], gt["crowd"][keep_g], gt["area"][keep_g]
    d_grp0 = dk[keep_d] * n_img + dt["img"][keep_d]
    order = np.lexsort((np.arange(len(d_grp0)), -dt["score"][keep_d], d_grp0))  # stable by score
    d_grp, d_box, d_score = d_grp0[order], dt["xywh"][keep_d][order], dt["score"][keep_d][order]
    starts = np.searchsorted(d_grp, d_grp)  # first index of each det's group (sorted array)
    d_rank = np.arange(len(d_grp)) - starts
    top = d_rank < max_dets[-1]
    d_grp, d_box, d_score, d_rank = d_grp[top], d_box[top], d_score[top], d_rank[top]
    n_det = len(d_grp)

    # --- padded ground truth per group, original order --------------------------------------
    n_grp = K * n_img
    g_order = np.argsort(g_grp, kind="stable")
    g_sorted = g_grp[g_order]
    g_slot = np.arange(len(g_sorted)) - np.searchsorted(g_sorted, g_sorted)
    G = int(g_slot.max()) + 1 if len(g_slot) else 1
    P_box = np.zeros((n_grp, G, 4))
    P_crowd = np.zeros((n_grp, G), bool)
    P_valid = np.zeros((n_grp, G), bool)
    P_area = np.zeros((n_grp, G))
    P_box[g_sorted, g_slot] = g_box[g_order]
    P_crowd[g_sorted, g_slot] = g_crowd[g_order]
    P_valid[g_sorted, g_slot] = True
    P_area[g_sorted, g_slot] = g_area[g_order]
    # ignored ground truth per area range: crowd or area outside [lo, hi]
    P_ign = P_crowd[:, None, :] | (P_area[:, None, :] < rng[None, :, 0, None]) | \
        (P_area[:, None, :] > rng[None, :, 1, None])  # [n_grp, A, G]

    # --- IoU of every kept detection with the ground truth of its group ---------------------
    ious = _box_iou(d_box[:, None, :], P_box[d_grp], P_crowd[d_grp])
    ious = np.where(P_valid[d_grp], ious, -1.0)  # [n_det, G]
    eff_thr = np.minimum(thr, 1 - 1e-10)

    # --- greedy matching, all groups / thresholds / areas at once, one rank at a time -------
    matched = np.zeros((n_det, A, T), bool)
    hit_ign = np.zeros((n_det, A, T), bool)
    relevant = np.flatnonzero((ious >= eff_thr.min()).any(1)) if n_det else np.zeros(0, np.int64)
    if len(relevant):
        rg = d_grp[relevant]
        step = np.arange(len(rg)) - np.searchsorted(rg, rg)  # rank among relevant dets of a group
        by_step = np.argsort(step, kind="stable")
        bounds = np.searchsorted(step[by_step], np.arange(step.max() + 2))
        taken = np.zeros((n_grp, A, T, G), bool)
        for s in range(step.max() + 1):
            d = relevant[by_step[bounds[s]:bounds[s + 1]]]
            g = d_grp[d]
            iou = ious[d]  # [n, G]
            crowd = P_crowd[g][:, None, None, :]
            ign = P_ign[g][:, :, None, :]  # [n, A, 1, G]
            ok = (iou[:, None, :] >= eff_thr[None, :, None])[:, None] & (~taken[g] | crowd)
            regular = ok & ~ign
            use_reg = regular.any(-1, keepdims=True)
            sel = np.where(use_reg, regular, ok & ign)
            val = np.where(sel, iou[:, None, None, :], -1.0)
            m = G - 1 - np.argmax(val[..., ::-1], axis=-1)  # last index of the maximum
            got = sel.any(-1)  # [n, A, T]
            nn, aa, tt = np.nonzero(got)
            mm = m[nn, aa, tt]
            taken[g[nn], aa, tt, mm] = True
            matched[d] = got
            hi = np.zeros_like(got)
            hi[nn, aa, tt] = P_ign[g[nn], aa, mm]
            hit_ign[d] = hi
    d_area = d_box[:, 2] * d_box[:, 3]
    d_out = (d_area[:, None] < rng[None, :, 0]) | (d_area[:, None] > rng[None, :, 1])  # [n_det, A]
    ignored = hit_ign | (~matched & d_out[:, :, None])

    # --- accumulate precision / recall per class ---------------------------------------------
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))
    curves = {}
    d_cls = d_grp // n_img
    d_img = d_grp % n_img
    g_cls = g_grp // n_img
    for k in range(K):
        npig = (~P_ign[k * n_img:(k + 1) * n_img] & P_valid[k * n_img:(k + 1) * n_img, None, :]).sum((0, 2))
        idx = np.flatnonzero(d_cls == k)
        idx = idx[np.lexsort((d_rank[idx], d_img[idx], -d_score[idx]))]
        if not (g_cls == k).any() and not len(idx):
            continue
        for mi, md in enumerate(max_dets):
            sub = idx[d_rank[idx] < md]
            nd = len(sub)
            mt = matched[sub].transpose(1, 2, 0)  # [A, T, nd]
            ig = ignored[sub].transpose(1, 2, 0)
            tp = np.cumsum(mt & ~ig, axis=-1).astype(np.float64)
            fp = np.cumsum(~mt & ~ig, axis=-1).astype(np.float64)
            sc = d_score[sub]
            for a in range(A):
                if npig[a] == 0:
                    continue
                rc = tp[a] / int(npig[a])
                pr = tp[a] / (fp[a] + tp[a] + np.spacing(1))
                recall[:, k, a, mi] = rc[:, -1] if nd else 0.0
                env = np.maximum.accumulate(pr[:, ::-1], axis=-1)[:, ::-1]
                for t in range(T):
                    inds = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
                    ok = inds < nd
                    precision[t, :, k, a, mi] = np.where(ok, env[t][np.minimum(inds, nd - 1)] if nd else 0.0, 0.0)
                    scores[t, :, k, a, mi] = np.where(ok, sc[np.minimum(inds, nd - 1)] if nd else 0.0, 0.0)
                    if a == 0 and mi == M - 1:
                        curves[(t, k)] = (rc[t], pr[t], sc)
    return COCOResult(precision, recall, scores, class_ids, names, thr, RECALL_THRESHOLDS.copy(),
                      dict(area_ranges), max_dets, curves)


class COCOEvaluator:
    """Collect predictions batch by batch (e.g. inside an evaluation loop), then :meth:`compute`.

    >>> ev = COCOEvaluator(class_names=NEUDET.CLASSES)
    >>> for images, targets in loader:
    ...     ev.update(model(images), targets)
    >>> res = ev.compute(); res.ap50, res.per_class_ap50()
    """

    def __init__(self, num_classes=None, class_names=None, **kwargs):
        self.num_classes, self.class_names, self.kwargs = num_classes, class_names, kwargs
        self.reset()

    def reset(self):
        self.predictions, self.targets = [], []

    @staticmethod
    def _copy(d, keys):
        return {k: _np(d[k], np.float64 if k in ("boxes", "scores", "area") else np.int64)
                for k in keys if k in d}

    def update(self, predictions: Sequence[dict], targets: Sequence[dict]):
        if len(predictions) != len(targets):
            raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
        self.predictions += [self._copy(p, ("boxes", "scores", "labels")) for p in predictions]
        self.targets += [self._copy(t, ("boxes", "labels", "iscrowd", "area")) for t in targets]

    def compute(self) -> COCOResult:
        return evaluate_detections(self.predictions, self.targets, self.num_classes, self.class_names,
                                   **self.kwargs)
