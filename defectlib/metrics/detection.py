"""COCO-protocol evaluation of object detections (paper 000, DANet, Sec. IV and Eqs. 11-12).

What the protocol computes, step by step (Lin et al., "Microsoft COCO", 2014; the reference code
is pycocotools' ``COCOeval``, which this module reproduces to 1e-9 without calling it):

1. **IoU** of every detection with every ground-truth box of the same image and class,
   ``IoU = |D n G| / |D u G|``; for a *crowd* box the union is replaced by ``|D|``.
2. **Greedy matching**, per image and class, for each IoU threshold ``t in {0.50, 0.55, ..., 0.95}``
   and each area range: detections in decreasing score order (at most ``max_dets[-1]`` per image
   and class) take the unmatched ground truth with the highest IoU ``>= t``. Ground truth that is
   a crowd or outside the area range is "ignored": it is used only when no regular box qualifies,
   and a detection matched to it is neither a TP nor an FP. Unmatched detections outside the area
   range are ignored too.
3. **Precision / recall** (the paper's Eqs. 11-12): detections of all images sorted by score;
   after each one ``P = TP / (TP + FP)`` and ``R = TP / |non-ignored ground truth|``.
4. **101-point interpolated AP**: precision made monotone, ``p(r) = max_{r' >= r} P(r')``, read
   at recall ``0, 0.01, ..., 1`` (0 beyond the highest recall reached); ``AP = mean_r p(r)``.
   Summaries (AP, AP50, AR@100, ...) are in :class:`~defectlib.metrics.coco_result.COCOResult`.

Vectorised with numpy: the matching handles every image, class, threshold and area range at once,
its only Python loop runs over the rank of a detection within its (image, class) group.
Inputs follow torchvision's detection convention (tensors or arrays, boxes ``xyxy`` in pixels):
``targets[i] = {"boxes": [N,4], "labels": [N], optional "iscrowd": [N], "area": [N]}`` and
``predictions[i] = {"boxes": [M,4], "scores": [M], "labels": [M]}`` for the same image ``i``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ._arrays import finite
from ._arrays import labels as check_labels
from ._arrays import to_numpy as _np
from .coco_result import COCO_STAT_NAMES, COCOResult

__all__ = ["COCO_AREA_RANGES", "COCO_STAT_NAMES", "COCOResult", "COCOEvaluator", "evaluate_detections",
           "evaluate_detector"]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
COCO_AREA_RANGES = {"all": (0.0, 1e5**2), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2),
                    "large": (96.0**2, 1e5**2)}


def _vector(x, name: str, n: int, convert) -> np.ndarray:
    a = convert(x, name)
    if a.ndim > 1 or (a.ndim == 0 and n != 1):
        raise ValueError(f"{name}: expected a 1-D array of {n} values, got shape {list(a.shape)}")
    a = a.reshape(-1)
    if len(a) != n:
        raise ValueError(f"{name}: {len(a)} values for {n} boxes")
    return a


def _flatten(items, is_prediction: bool, high: int | None = None) -> dict:
    """Concatenate per-image dicts into flat arrays: image index, label, xywh box, score or crowd/area.

    Every field is checked: boxes finite ``[N, 4]`` with ``x2 >= x1``, ``y2 >= y1``; labels whole
    numbers ``>= 1`` (``< high`` when the classes are known); scores finite; one value per box.
    """
    kind = "predictions" if is_prediction else "targets"
    boxes, labels, extra, counts, areas = [], [], [], [], {}
    for i, d in enumerate(items):
        if not isinstance(d, dict) or "boxes" not in d or "labels" not in d:
            raise ValueError(f"{kind}[{i}]: expected a dict with 'boxes' and 'labels', got "
                             f"{list(d) if isinstance(d, dict) else type(d).__name__}")
        if is_prediction and "scores" not in d:
            raise ValueError(f"{kind}[{i}]: missing 'scores'")
        name = f"{kind}[{i}]"
        b = finite(d["boxes"], f"{name}['boxes']")
        if b.size == 0:
            b = b.reshape(0, 4)
        if b.ndim != 2 or b.shape[1] != 4:
            raise ValueError(f"{name}['boxes']: expected shape [N, 4] (x1, y1, x2, y2), got {list(b.shape)}")
        flipped = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
        if flipped.any():
            k = int(np.argmax(flipped))
            raise ValueError(f"{name}['boxes']: box {k} {b[k].tolist()} has x2 < x1 or y2 < y1; boxes are "
                             "(x1, y1, x2, y2) in pixels, not (x, y, w, h)")
        n = len(b)
        parts = [_vector(d["labels"], f"{name}['labels']", n, lambda x, nm: check_labels(x, nm, 1, high))]
        parts.append(_vector(d["scores"], f"{name}['scores']", n, finite) if is_prediction else
                     _vector(d["iscrowd"], f"{name}['iscrowd']", n, lambda x, nm: check_labels(x, nm, 0, 2))
                     if "iscrowd" in d else np.zeros(n, np.int64))
        if not is_prediction and d.get("area") is not None:
            areas[i] = _vector(d["area"], f"{name}['area']", n, finite)
            if (areas[i] < 0).any():
                raise ValueError(f"{name}['area']: areas must be >= 0, found {areas[i].min():g}")
        boxes.append(b)
        labels.append(parts[0])
        extra.append(parts[1])
        counts.append(n)
    b = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    xywh = np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
    out = {"img": np.repeat(np.arange(len(counts)), counts),
           "label": np.concatenate(labels) if labels else np.zeros(0, np.int64), "box": xywh}
    ex = np.concatenate(extra) if extra else np.zeros(0)
    if is_prediction:
        out["score"] = ex.astype(np.float64)
    else:
        out["crowd"] = ex.astype(bool)
        # "area" (e.g. a mask area) where given, else the box area, as in a COCO annotation file
        out["area"] = xywh[:, 2] * xywh[:, 3]
        starts = np.cumsum(counts) - np.asarray(counts, np.int64) if counts else []
        for i, a in areas.items():
            out["area"][starts[i]:starts[i] + counts[i]] = a
    return out


def _box_iou(d, g, crowd):
    """pycocotools' bbox IoU of xywh boxes ``d``, ``g`` (broadcast), with the same float operations."""
    w = np.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - np.maximum(d[..., 0], g[..., 0])
    h = np.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - np.maximum(d[..., 1], g[..., 1])
    inter = w * h
    da = d[..., 2] * d[..., 3]
    union = np.where(crowd, da, da + g[..., 2] * g[..., 3] - inter)
    ok = (w > 0) & (h > 0)
    return np.where(ok, inter / np.where(ok, union, 1.0), 0.0)


def _class_index(labels, class_ids):
    """Position of each label in ``class_ids`` (sorted), -1 for labels that are not evaluated."""
    if len(class_ids) == 0:
        return np.full(len(labels), -1)
    k = np.minimum(np.searchsorted(class_ids, labels), len(class_ids) - 1)
    return np.where(class_ids[k] == labels, k, -1)


def _pad_ground_truth(g_grp, gt, keep, n_grp, area_rng):
    """Ground truth per (class, image) group, padded to ``G`` slots in annotation order."""
    order = np.argsort(g_grp, kind="stable")
    grp = g_grp[order]
    slot = np.arange(len(grp)) - np.searchsorted(grp, grp)
    G = int(slot.max()) + 1 if len(slot) else 1
    box, crowd = np.zeros((n_grp, G, 4)), np.zeros((n_grp, G), bool)
    valid, area = np.zeros((n_grp, G), bool), np.zeros((n_grp, G))
    box[grp, slot] = gt["box"][keep][order]
    crowd[grp, slot] = gt["crowd"][keep][order]
    valid[grp, slot] = True
    area[grp, slot] = gt["area"][keep][order]
    # ignored per area range: a crowd, or an area outside [lo, hi]
    lo, hi = area_rng[None, :, 0, None], area_rng[None, :, 1, None]
    ignore = crowd[:, None] | (area[:, None] < lo) | (area[:, None] > hi)
    return box, crowd, valid, ignore  # ignore: [n_grp, A, G]


def _match(ious, d_grp, crowd, ignore, thresholds):
    """Greedy COCO matching for all groups, area ranges and IoU thresholds at once.

    ``ious [n_det, G]`` (-1 on empty slots), detections sorted by group then score. Returns
    ``matched`` and ``hit_ignored`` ``[A, T, n_det]``: matched at all / matched to ignored ground truth.
    """
    n_grp, A, G = ignore.shape
    T, n_det = len(thresholds), len(d_grp)
    matched = np.zeros((A, T, n_det), bool)  # detections last: contiguous for the cumsums
    hit_ignored = np.zeros((A, T, n_det), bool)
    thr = np.minimum(thresholds, 1 - 1e-10)
    # a detection below the lowest threshold with every box never matches and changes nothing
    relevant = np.flatnonzero((ious >= thr.min()).any(1)) if n_det else np.zeros(0, np.int64)
    if not len(relevant):
        return matched, hit_ignored
    rg = d_grp[relevant]
    step = np.arange(len(rg)) - np.searchsorted(rg, rg)  # rank among the relevant dets of its group
    by_step = np.argsort(step, kind="stable")
    bounds = np.searchsorted(step[by_step], np.arange(step.max() + 2))
    taken = np.zeros((n_grp, A, T, G), bool)
    for s in range(step.max() + 1):  # the s-th detection of every group, all groups at once
        d = relevant[by_step[bounds[s]:bounds[s + 1]]]
        g = d_grp[d]
        iou = ious[d]  # [n, G]
        ign = ignore[g][:, :, None, :]  # [n, A, 1, G]
        free = ~taken[g] | crowd[g][:, None, None, :]  # a crowd can absorb many detections
        ok = (iou[:, None, :] >= thr[None, :, None])[:, None] & free  # [n, A, T, G]
        regular = ok & ~ign
        cand = np.where(regular.any(-1, keepdims=True), regular, ok & ign)  # regular boxes first
        val = np.where(cand, iou[:, None, None, :], -1.0)
        best = G - 1 - np.argmax(val[..., ::-1], axis=-1)  # highest IoU, the last one on ties
        got = cand.any(-1)  # [n, A, T]
        nn, aa, tt = np.nonzero(got)
        mm = best[nn, aa, tt]
        taken[g[nn], aa, tt, mm] = True
        matched[:, :, d] = got.transpose(1, 2, 0)
        hit_ignored[aa, tt, d[nn]] = ignore[g[nn], aa, mm]
    return matched, hit_ignored


def _accumulate_class(tp_all, fp_all, sub, scores, n_pos, c_min):
    """Interpolated precision, scores at the recall thresholds and final recall of one class.

    ``tp_all``/``fp_all`` ``[A, T, n_det]``, ``sub`` the class's detections in global score order,
    ``n_pos [A]`` non-ignored ground truth, ``c_min [A*T, R]`` TPs needed for each recall threshold.
    Precision only rises at a TP, so the interpolated precision (max over the rest of the curve)
    is the max over the remaining TPs: the c-th TP has ``P = c / (c + FP before it)``, computed
    with the same float operations as pycocotools.
    """
    A, T = tp_all.shape[:2]
    nd = len(sub)
    tps = tp_all[:, :, sub].reshape(A * T, nd)
    fp_cum = np.cumsum(fp_all[:, :, sub].reshape(A * T, nd).view(np.uint8), axis=1, dtype=np.int32)
    n_tp = np.count_nonzero(tps, axis=1)
    rows, cols = np.nonzero(tps)
    c = np.arange(len(rows)) - (np.cumsum(n_tp) - n_tp)[rows] + 1  # c-th TP of its curve
    L = max(int(n_tp.max()), 1)
    env = np.full((A * T, L), -1.0)
    pos = np.zeros((A * T, L), np.int64)
    env[rows, c - 1] = c / (fp_cum[rows, cols] + c.astype(np.float64) + np.spacing(1))
    pos[rows, c - 1] = cols
    env = np.maximum.accumulate(env[:, ::-1], axis=1)[:, ::-1]
    need = np.maximum(c_min, 1)  # recall 0 is "reached" at the first detection
    reach = need <= n_tp[:, None]
    col = np.minimum(need, L) - 1
    sc = scores[sub]
    prec = np.where(reach, np.take_along_axis(env, col, 1), 0.0)
    score = np.where(c_min == 0, sc[0], np.where(reach, sc[np.take_along_axis(pos, col, 1)], 0.0))
    recall = n_tp.reshape(A, T) / np.maximum(n_pos, 1)[:, None]
    # raw curves (area "all") for plotting: one point per detection
    tp_c = np.cumsum(tps[:T].view(np.uint8), axis=1, dtype=np.int32).astype(np.float64)
    curves = (tp_c / max(n_pos[0], 1), tp_c / (fp_cum[:T] + tp_c + np.spacing(1)), sc)
    return prec.reshape(A, T, -1), score.reshape(A, T, -1), recall, curves


def check_max_dets(max_dets) -> tuple[int, ...]:
    """``max_dets`` as a tuple of increasing positive ints, at least 3 of them.

    pycocotools' summary reads ``maxDets[0]``, ``[1]`` and ``[2]`` (AR@1, AR@10 and every
    AP/AR@100 entry but the first) and AP at ``maxDets=100`` itself (-1 when 100 is absent);
    :attr:`COCOResult.stats` follows that rule, so fewer than 3 entries cannot be summarised.
    """
    try:
        md = tuple(int(m) for m in max_dets)
        whole = all(int(m) == m for m in max_dets)
    except (TypeError, ValueError):
        raise ValueError(f"max_dets: expected increasing positive integers like (1, 10, 100), "
                         f"got {max_dets!r}") from None
    if not whole or len(md) < 3 or md[0] < 1 or any(b <= a for a, b in zip(md, md[1:])):
        raise ValueError(f"max_dets: expected at least 3 increasing positive integers like (1, 10, 100) "
                         f"(the COCO summary reads the first three), got {max_dets!r}")
    return md


def evaluate_detections(predictions: Sequence[dict], targets: Sequence[dict], num_classes=None,
                        class_names=None, iou_thresholds=IOU_THRESHOLDS, max_dets=(1, 10, 100),
                        area_ranges=COCO_AREA_RANGES) -> COCOResult:
    """COCO bbox evaluation of ``predictions`` against ``targets``, equal to pycocotools' COCOeval.

    Classes are the labels ``1..num_classes`` (``len(class_names)`` if names are given; default:
    the labels present in ``targets``); detections of other labels are ignored, as pycocotools
    ignores categories missing from the ground truth's category list. ``max_dets`` counts per
    image *and class*, as pycocotools does; the summary follows pycocotools' rule for other
    ``max_dets`` (see :func:`check_max_dets`). Returns a :class:`COCOResult` (``.ap``, ``.ap50``,
    ``.stats``, ``.per_class_ap50()``, ``.plot_pr()``, ...).

    Garbage is refused with a ValueError naming the field (``predictions[3]['scores']``): NaN or
    infinite boxes and scores, boxes not ``[N, 4]`` or with ``x2 < x1``, labels below 1, above
    ``num_classes`` or fractional, and one field's length differing from the number of boxes.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"predictions: {len(predictions)} predictions for {len(targets)} images (targets)")
    if class_names is not None:
        n_cls = len(class_names)
    elif num_classes is not None:
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes: expected a positive integer, got {num_classes!r}")
        n_cls = int(num_classes)
    else:
        n_cls = None
    max_dets = check_max_dets(max_dets)
    high = n_cls + 1 if n_cls is not None else None
    gt, dt = _flatten(targets, False, high), _flatten(predictions, True, high)
    class_ids = np.arange(1, n_cls + 1) if n_cls is not None else np.unique(gt["label"])
    names = list(class_names) if class_names is not None else [int(c) for c in class_ids]
    thr = finite(iou_thresholds, "iou_thresholds").reshape(-1)
    if not len(thr) or (thr < 0).any() or (thr > 1).any():
        raise ValueError(f"iou_thresholds: expected values in [0, 1], got {thr.tolist()}")
    area_rng = np.array(list(area_ranges.values()), np.float64)  # [A, 2]
    n_img, K, T, A = len(targets), len(class_ids), len(thr), len(area_rng)
    M, R = len(max_dets), len(RECALL_THRESHOLDS)
    n_grp = K * n_img  # group = (class k, image i) -> k * n_img + i

    # detections: sorted by group, then score (stable), at most max_dets[-1] per group
    gk, dk = _class_index(gt["label"], class_ids), _class_index(dt["label"], class_ids)
    keep_g, keep_d = gk >= 0, dk >= 0
    g_grp = gk[keep_g] * n_img + gt["img"][keep_g]
    grp0 = dk[keep_d] * n_img + dt["img"][keep_d]
    order = np.lexsort((np.arange(len(grp0)), -dt["score"][keep_d], grp0))
    d_grp, d_box, d_score = grp0[order], dt["box"][keep_d][order], dt["score"][keep_d][order]
    d_rank = np.arange(len(d_grp)) - np.searchsorted(d_grp, d_grp)
    top = d_rank < max_dets[-1]
    d_grp, d_box, d_score, d_rank = d_grp[top], d_box[top], d_score[top], d_rank[top]

    g_box, g_crowd, g_valid, g_ignore = _pad_ground_truth(g_grp, gt, keep_g, n_grp, area_rng)
    ious = np.where(g_valid[d_grp], _box_iou(d_box[:, None, :], g_box[d_grp], g_crowd[d_grp]), -1.0)
    matched, hit_ignored = _match(ious, d_grp, g_crowd, g_ignore, thr)
    d_area = d_box[:, 2] * d_box[:, 3]
    d_out = (d_area[:, None] < area_rng[None, :, 0]) | (d_area[:, None] > area_rng[None, :, 1])
    ignored = hit_ignored | (~matched & d_out.T[:, None, :])
    tp_all, fp_all = matched & ~ignored, ~matched & ~ignored

    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))
    curves = {}
    d_cls, d_img = d_grp // n_img, d_grp % n_img
    for k in range(K):
        in_k = slice(k * n_img, (k + 1) * n_img)
        n_pos = (~g_ignore[in_k] & g_valid[in_k, None, :]).sum((0, 2))  # [A]
        defined = n_pos > 0  # no ground truth: stays -1 and is left out of every mean
        if not defined.any():
            continue
        idx = np.flatnonzero(d_cls == k)
        idx = idx[np.lexsort((d_rank[idx], d_img[idx], -d_score[idx]))]  # all images, by score
        # fewest TPs whose recall tp / n_pos reaches each threshold: the same float division as
        # pycocotools' recall curve, so the comparison is exact
        c_min = np.stack([np.searchsorted(np.arange(n + 1) / n, RECALL_THRESHOLDS, side="left") if n
                          else np.zeros(R, np.int64) for n in n_pos.tolist()])
        c_min = np.broadcast_to(c_min[:, None, :], (A, T, R)).reshape(A * T, R)
        for mi, md in enumerate(max_dets):
            sub = idx[d_rank[idx] < md]
            if len(sub) == 0:  # ground truth but no detection: precision and recall 0
                precision[:, :, k, defined, mi] = scores[:, :, k, defined, mi] = 0.0
                recall[:, k, defined, mi] = 0.0
                continue
            q, ss, rc, curve = _accumulate_class(tp_all, fp_all, sub, d_score, n_pos, c_min)
            precision[:, :, k, defined, mi] = q[defined].transpose(1, 2, 0)
            scores[:, :, k, defined, mi] = ss[defined].transpose(1, 2, 0)
            recall[:, k, defined, mi] = rc[defined].T
            if mi == M - 1 and defined[0]:
                curves.update({(t, k): (curve[0][t], curve[1][t], curve[2]) for t in range(T)})
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
        return {k: np.array(_np(d[k])) for k in keys if k in d}  # checked by evaluate_detections

    def update(self, predictions: Sequence[dict], targets: Sequence[dict]):
        if len(predictions) != len(targets):
            raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
        self.predictions += [self._copy(p, ("boxes", "scores", "labels")) for p in predictions]
        self.targets += [self._copy(t, ("boxes", "labels", "iscrowd", "area")) for t in targets]

    def compute(self) -> COCOResult:
        return evaluate_detections(self.predictions, self.targets, self.num_classes, self.class_names,
                                   **self.kwargs)


def evaluate_detector(model, loader, num_classes=None, class_names=None, device="cpu",
                      max_batches: int | None = None, **kwargs) -> COCOResult:
    """COCO-evaluate a torchvision-style detector on ``loader`` (batches of ``(images, targets)``).

    The model runs in eval mode without gradients (its previous mode is restored); images move to
    ``device``, predictions come back to the CPU. ``max_batches`` stops early (dry runs). This is
    the loop the notebook's final table runs, and the ``evaluate`` a learning curve calls inside
    :func:`defectlib.engine.fit`.
    """
    import torch  # the metric itself is numpy-only; only this helper runs a model

    ev = COCOEvaluator(num_classes=num_classes, class_names=class_names, **kwargs)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i, (images, targets) in enumerate(loader):
                if max_batches is not None and i >= max_batches:
                    break
                out = model([im.to(device) for im in images])
                ev.update([{k: v.detach().cpu() for k, v in o.items()} for o in out], targets)
    finally:
        model.train(was_training)
    return ev.compute()
