"""Segmentation metrics of papers 001 (Severstal), 003 (OCINet) and 004 (synthetic data).

Counts per image ``TP = |S n G|``, ``FP = |S \\ G|``, ``FN = |G \\ S|``, ``TN`` (``S`` prediction,
``G`` ground truth, binary) give every metric; "per image" scores each image and averages
(OCINet's protocol), "pooled" sums the counts over all images first.

- Kaggle Severstal Dice (paper 001, Eq. 1 as the competition scores it): mean over every
  (image, class) pair of ``2|S n G| / (|S| + |G|)``, a pair with both masks empty scores 1.
- The Severstal author's Dice: per image, the 4 class channels pooled, smoothed
  ``(2|S n G| + 1) / (|S| + |G| + 1)``, averaged over images (what his 0.48 -> 0.71 measures).
- OCINet (paper 003): PA (Eq. 5) = pixel accuracy ``(TP + TN) / N``; the authors' code reports as
  "PA" the foreground recall ``TP / |G|``: both are given, labelled. IoU (Eq. 7) ``TP/(TP+FP+FN)``,
  Dice (Eq. 8) ``2TP/(2TP+FP+FN)``. Maps are binarised with Otsu's threshold after per-image
  min-max normalisation, as in the authors' evaluation code.
- Paper 004: pixel precision ``TP/(TP+FP)``, recall ``TP/(TP+FN)``, ``F1 = 2PR/(P+R)`` at the
  threshold that maximises F1 on the validation pixels (the curve equals scikit-learn's
  ``precision_recall_curve``).

Everything is vectorised over the batch: inputs are arrays or tensors ``[N, H, W]`` (or
``[N, C, H, W]`` for the per-class Dice); torch tensors are moved to numpy.
"""
from __future__ import annotations

import numpy as np

from ._arrays import binary, finite, labels, numeric, probabilities

__all__ = ["confusion_counts", "segmentation_scores", "ocinet_evaluation", "kaggle_dice",
           "severstal_author_dice", "minmax_normalize", "otsu_threshold", "otsu_binarize",
           "precision_recall_curve",
           "best_f1_threshold", "pixel_prf", "multiclass_confusion", "per_class_iou"]


def _bool(x, name):
    """A 0/1 or bool mask as bool; a 0/255, probability, negative or NaN map is a ValueError."""
    return binary(x, name)


def _same_shape(p, g, pname="pred", gname="target"):
    if p.shape != g.shape:
        raise ValueError(f"{pname} shape {list(p.shape)} != {gname} shape {list(g.shape)}")


def safe_div(num, den, empty):
    """``num / den`` elementwise in float64, ``empty`` where ``den`` is 0 (an empty image's score)."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), empty)


def confusion_counts(pred, target):
    """Per-image pixel counts ``(TP, FP, FN, TN)``, each an int64 array of shape ``[N]``.

    ``pred`` and ``target`` are binary masks ``[N, H, W]`` (any trailing shape is summed over).
    """
    p, g = _bool(pred, "pred"), _bool(target, "target")
    _same_shape(p, g)
    if p.ndim < 3:
        raise ValueError(f"pred: expected a batch [N, H, W], got shape {list(p.shape)} (one mask "
                         "[H, W] would be scored row by row: pass mask[None])")
    p, g = p.reshape(len(p), -1), g.reshape(len(g), -1)
    n_pix = p.shape[1]
    tp = np.count_nonzero(p & g, axis=1)
    ps, gs = np.count_nonzero(p, axis=1), np.count_nonzero(g, axis=1)
    fp, fn = ps - tp, gs - tp
    return tp, fp, fn, n_pix - tp - fp - fn


def segmentation_scores(pred, target, reduction="image", empty=1.0) -> dict:
    """Binary segmentation scores, OCINet's Table I metrics and more, as fractions.

    ``pixel_accuracy`` (OCINet Eq. 5) ``(TP+TN)/N``; ``foreground_recall`` ``TP/(TP+FN)`` (what
    OCINet's code calls "PA"); ``precision`` ``TP/(TP+FP)``; ``iou`` (Eq. 7) ``TP/(TP+FP+FN)``;
    ``dice`` (Eq. 8) ``2TP/(2TP+FP+FN)``.

    ``reduction="image"``: each image scored, then the mean over images (OCINet's protocol);
    ``"pooled"``: counts summed over all images first; ``"none"``: the per-image arrays.
    A ratio whose denominator is 0 (e.g. IoU of an empty prediction on an empty mask) scores
    ``empty`` (default 1: nothing to find and nothing found is a perfect answer).
    """
    tp, fp, fn, tn = (c.astype(np.float64) for c in confusion_counts(pred, target))
    if reduction == "pooled":
        tp, fp, fn, tn = (np.array([c.sum()]) for c in (tp, fp, fn, tn))
    elif reduction not in ("image", "none"):
        raise ValueError(f"reduction must be 'image', 'pooled' or 'none', got {reduction!r}")
    out = {
        "pixel_accuracy": safe_div(tp + tn, tp + tn + fp + fn, empty),
        "foreground_recall": safe_div(tp, tp + fn, empty),
        "precision": safe_div(tp, tp + fp, empty),
        "iou": safe_div(tp, tp + fp + fn, empty),
        "dice": safe_div(2 * tp, 2 * tp + fp + fn, empty),
    }
    if reduction == "none":
        return out
    return {k: float(v.mean()) for k, v in out.items()}


def ocinet_evaluation(prob, target, wfm_on="map", reduction="mean") -> dict:
    """OCINet's test protocol (paper 003, Table I) on probability maps ``[N, H, W]``, in fractions.

    Per-image min-max normalisation, Otsu binarisation, then per-image scores averaged over images:
    ``PA`` as the paper's Eq. 5 defines it (pixel accuracy) and ``foreground_recall`` (what the
    authors' code reports as PA), ``IoU`` (Eq. 7), ``Dice`` (Eq. 8), and Margolin's ``wFm`` (Eq. 6)
    on the normalised map (``wfm_on="map"``, the usual salient-object practice) or on the Otsu
    mask (``"binary"``). ``reduction="none"`` returns the per-image ``[N]`` arrays instead of means.
    """
    from .wfm import weighted_fmeasure

    if wfm_on not in ("map", "binary"):
        raise ValueError(f"wfm_on must be 'map' or 'binary', got {wfm_on!r}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    norm = minmax_normalize(prob)
    _same_shape(norm, _bool(target, "target"), "prob")
    mask = otsu_binarize(norm, normalize=False)
    s = segmentation_scores(mask, target, reduction="none")
    wfm = weighted_fmeasure(np.clip(norm, 0, 1) if wfm_on == "map" else mask, target, reduction="none")
    out = {"PA": s["pixel_accuracy"], "foreground_recall": s["foreground_recall"], "wFm": wfm,
           "IoU": s["iou"], "Dice": s["dice"]}
    return out if reduction == "none" else {k: float(v.mean()) for k, v in out.items()}


def kaggle_dice(pred, target, per_class=False):
    """Kaggle Severstal Dice: mean over all (image, class) pairs of ``2|S n G| / (|S| + |G|)``.

    ``pred``, ``target``: binary ``[N, C, H, W]``. A pair whose masks are both empty scores 1, so
    predicting nothing already scores about 0.86 on Severstal (docs/papers.md#severstal-two-stage).
    ``per_class=True`` also returns the mean over images of each class (array ``[C]``).
    """
    p, g = _bool(pred, "pred"), _bool(target, "target")
    _same_shape(p, g)
    if p.ndim != 4:
        raise ValueError(f"pred: expected shape [N, C, H, W], got {list(p.shape)}")
    inter = np.count_nonzero(p & g, axis=(2, 3)).astype(np.float64)
    tot = np.count_nonzero(p, axis=(2, 3)) + np.count_nonzero(g, axis=(2, 3))
    d = safe_div(2 * inter, tot, 1.0)  # [N, C]
    return (float(d.mean()), d.mean(0)) if per_class else float(d.mean())


def severstal_author_dice(pred, target, smooth=1.0):
    """The Severstal paper author's Dice: per image, all class channels pooled, smoothed, averaged.

    ``dice_i = (2 sum(S_i G_i) + smooth) / (sum S_i + sum G_i + smooth)`` over the pixels of all
    channels of image ``i``; the result is the mean over images. ``pred`` may be binary or
    probabilities ``[N, C, H, W]`` (or ``[N, H, W]``). An image with both masks empty scores 1.
    This is not the Kaggle metric (see :func:`kaggle_dice`); the notebook reports both.

    Bool masks are scored from integer pixel counts, without float copies of the maps: the same
    numbers to the last bit (float sums of 0/1 values are exact integers below 2**53), without the
    float64 copies (8 bytes a pixel each) of the bool maps.
    """
    a = numeric(pred, "pred")
    if a.dtype == bool:
        p, g = _bool(a, "pred"), _bool(target, "target")
        _same_shape(p, g)
        if p.ndim < 3:
            raise ValueError(f"pred: expected [N, C, H, W] or [N, H, W], got shape {list(p.shape)}")
        p, g = p.reshape(len(p), -1), g.reshape(len(g), -1)
        inter = np.zeros(len(p), np.int64)
        for i in range(0, len(p), 8):     # a bool temporary of 8 images at most
            inter[i:i + 8] = np.count_nonzero(p[i:i + 8] & g[i:i + 8], axis=1)
        return author_dice_from_counts(inter, np.count_nonzero(p, axis=1), np.count_nonzero(g, axis=1), smooth)
    p, g = probabilities(a, "pred"), _bool(target, "target").astype(np.float64)
    _same_shape(p, g)
    if p.ndim < 3:
        raise ValueError(f"pred: expected [N, C, H, W] or [N, H, W], got shape {list(p.shape)}")
    p, g = p.reshape(len(p), -1), g.reshape(len(g), -1)
    d = (2 * (p * g).sum(1) + smooth) / (p.sum(1) + g.sum(1) + smooth)
    return float(d.mean())


def author_dice_from_counts(inter, pred_count, true_count, smooth=1.0) -> float:
    """:func:`severstal_author_dice` of binary masks from their pixel counts per image (``[N]``,
    or ``[N, C]`` summed over the classes): ``inter`` = ``sum(S_i G_i)``, ``pred_count`` =
    ``sum S_i``, ``true_count`` = ``sum G_i``; the same float64 operations, so the same number."""
    inter, pred_count, true_count = (np.asarray(c, np.int64) for c in (inter, pred_count, true_count))
    if inter.ndim == 2:
        inter, pred_count, true_count = inter.sum(1), pred_count.sum(1), true_count.sum(1)
    d = (2 * inter.astype(np.float64) + smooth) / (pred_count.astype(np.float64) + true_count.astype(np.float64)
                                                    + smooth)
    return float(d.mean())


def minmax_normalize(prob):
    """Per-image min-max scaling to [0, 1]: ``(x - min) / (max - min + 1e-8)`` (OCINet's test code).

    Computed in the input's float precision (float32 maps stay float32, as in the authors' code).
    """
    x = numeric(prob, "prob")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    finite(x, "prob", x.dtype)
    if x.ndim < 2:
        raise ValueError(f"prob: expected maps [N, H, W], got shape {list(x.shape)}")
    flat = x.reshape(len(x), -1)
    lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    out = flat - lo  # in place below: much faster than a broadcast expression on big batches
    out /= hi - lo + x.dtype.type(1e-8)
    return out.reshape(x.shape)


def otsu_threshold(prob, normalize=True):
    """Otsu's threshold of each map ``[N, H, W]`` in [0, 1], computed on 256 grey levels.

    As OCINet's evaluation does: per-image min-max normalisation (if ``normalize``), scaling to
    uint8 ``(255 x).astype(uint8)``, and Otsu's method on the 256-bin histogram: the level ``k``
    maximising the between-class variance ``w0(k) w1(k) (mu0(k) - mu1(k))^2`` (Otsu 1979, Eq. 18),
    first maximum on ties, as OpenCV's ``THRESH_OTSU``. Returns the uint8 levels ``[N]``; the
    foreground is ``255 x > k`` (see :func:`otsu_binarize`).
    """
    return _otsu_levels(_to_uint8(minmax_normalize(prob) if normalize else _unit(prob)))


def _unit(prob):
    """Maps already in [0, 1] (``normalize=False``), in their own float precision."""
    x = numeric(prob, "prob")
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return probabilities(x, "prob", dtype)


def _otsu_levels(q):
    q = q.reshape(len(q), -1)
    hist = np.stack([np.bincount(row, minlength=256) for row in q]).astype(np.float64) if len(q) else \
        np.zeros((0, 256))
    prob_k = hist / max(q.shape[1], 1)
    levels = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(prob_k, 1)
    mu = np.cumsum(prob_k * levels, 1)
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (mu[:, -1:] * w0 - mu) ** 2 / (w0 * w1)
    eps = np.finfo(np.float32).eps  # OpenCV skips levels with a class weight below FLT_EPSILON
    var = np.where((np.minimum(w0, w1) >= eps) & (np.maximum(w0, w1) <= 1 - eps), var, -1.0)
    return np.argmax(var, axis=1).astype(np.uint8)


def _to_uint8(x):
    """``(x * 255).astype(uint8)`` for x in [0, 1] (truncation, as the authors' code), clipped."""
    y = x * x.dtype.type(255) if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64) * 255
    np.clip(y, 0, 255, out=y)
    return y.astype(np.uint8)


def otsu_binarize(prob, normalize=True):
    """Binary masks ``[N, H, W]``: pixels whose uint8 level exceeds the image's Otsu threshold."""
    q = _to_uint8(minmax_normalize(prob) if normalize else _unit(prob))
    return q > _otsu_levels(q).reshape((-1,) + (1,) * (q.ndim - 1))


def precision_recall_curve(target, scores):
    """Pixel precision-recall curve over all thresholds; same output as scikit-learn's.

    Returns ``(precision, recall, thresholds)``: ``precision[i]``, ``recall[i]`` of the rule
    ``score >= thresholds[i]`` (thresholds increasing over the distinct scores), plus the final
    point ``(1, 0)``, exactly as ``sklearn.metrics.precision_recall_curve(target, scores)``.
    """
    y = _bool(target, "target").ravel()
    s = finite(scores, "scores").ravel()
    if y.shape != s.shape:
        raise ValueError(f"scores: {s.size} values for {y.size} target pixels")
    if not y.any():
        import warnings
        warnings.warn("target: no positive pixel, recall is set to 1 for every threshold "
                      "(as scikit-learn does)", UserWarning, stacklevel=2)
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    distinct = np.flatnonzero(np.diff(s))
    ends = np.r_[distinct, y.size - 1]
    tps = np.cumsum(y, dtype=np.float64)[ends]
    fps = 1 + ends - tps
    thresholds = s[ends]
    ps = tps + fps
    precision = np.where(ps != 0, tps / np.where(ps != 0, ps, 1), 0.0)
    recall = np.ones_like(tps) if tps[-1] == 0 else tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def best_f1_threshold(target, scores):
    """The threshold maximising pixel F1 on a validation set (paper 004, Sec. 4).

    Returns ``(threshold, f1, precision, recall)`` at the best point of
    :func:`precision_recall_curve`; predict foreground where ``score >= threshold``.
    """
    if not _bool(target, "target").any():
        raise ValueError("target: no positive pixel, so precision, recall and F1 are undefined "
                         "for every threshold")
    p, r, t = precision_recall_curve(target, scores)
    p, r = p[:-1], r[:-1]
    f1 = safe_div(2 * p * r, p + r, 0.0)
    i = int(np.argmax(f1))
    return float(t[i]), float(f1[i]), float(p[i]), float(r[i])


def pixel_prf(target, scores, threshold=0.5) -> dict:
    """Pooled pixel precision, recall and F1 of ``score >= threshold`` (paper 004, Table 1)."""
    y = _bool(target, "target").ravel()
    s = probabilities(scores, "scores").ravel()  # one rule: logits are refused, as by every metric of probabilities
    if y.shape != s.shape:
        raise ValueError(f"scores: {s.size} values for {y.size} target pixels")
    threshold = float(finite(threshold, "threshold"))
    pred = s >= threshold
    tp = float(np.count_nonzero(pred & y))
    fp, fn = float(np.count_nonzero(pred)) - tp, float(np.count_nonzero(y)) - tp
    p, r = float(safe_div(tp, tp + fp, 0.0)), float(safe_div(tp, tp + fn, 0.0))
    return {"precision": p, "recall": r, "f1": float(safe_div(2 * p * r, p + r, 0.0))}


def multiclass_confusion(pred, target, num_classes):
    """Pixel confusion matrix ``[C, C]`` (rows: true class, columns: predicted) of label maps."""
    p = labels(pred, "pred", 0, num_classes).ravel()
    g = labels(target, "target", 0, num_classes).ravel()
    if p.shape != g.shape:
        raise ValueError(f"pred has {p.size} pixels, target {g.size}")
    return np.bincount(g * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_iou(cm):
    """Pooled IoU of each class from a confusion matrix: ``C_kk / (row_k + col_k - C_kk)``; NaN if absent."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    return safe_div(tp, cm.sum(0) + cm.sum(1) - tp, np.nan)
