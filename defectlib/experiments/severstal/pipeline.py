"""The two-stage pipeline of the Severstal paper (paper 001, section 4 and Figure 7).

A. Bionda, "Severstal defect segmentation", IACV 2019-2020: "the idea is to use the classifier to
decide, during inference time, whether an image could contain a defect or not and if the answer is
true pass it to the U-Net to segment the defect, otherwise the segmentation inference is skipped and
whole-zero masks are generated."

    mask_c(x) = 1[ p_cls(x) >= t_gate ] * 1[ sigmoid(unet(x))_c >= t_pix ]      (then min-area filter)

The paper uses t_gate = t_pix = 0.5 (docs/papers.md#severstal-two-stage). Here they are
parameters, chosen with :func:`tune_thresholds` on VALIDATION predictions, never on the test set.
:func:`apply_thresholds` is the single place the rule above is written;
:meth:`TwoStagePipeline.predict` and the tuning both call it, so what is tuned is exactly what is
deployed. :func:`collect` runs both networks over a split once; :func:`dice_report` scores the
U-Net alone, the pipeline, the pipeline with a perfect gate and the "predict nothing" baseline with
both Dice definitions of the notebook.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def per_class(value: float | Sequence[float], num_classes: int, device) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float32, device=device).flatten()
    if t.numel() == 1:
        t = t.expand(num_classes)
    if t.numel() != num_classes:
        raise ValueError(f"expected 1 or {num_classes} per-class values, got {t.numel()}")
    return t.view(1, num_classes, 1, 1)


def apply_thresholds(probs: torch.Tensor, scores: torch.Tensor | None, gate_threshold: float = 0.5,
                     pixel_threshold: float | Sequence[float] = 0.5,
                     min_area: int | Sequence[int] = 0) -> torch.Tensor:
    """The pipeline's decision rule on precomputed outputs.

    ``probs`` [N, C, H, W] per-class pixel probabilities; ``scores`` [N] p(defective) from the
    classifier, or None for the U-Net alone. ``pixel_threshold`` and ``min_area`` may be per class;
    a class mask with fewer than ``min_area`` pixels is emptied (0 disables). Returns bool masks.
    """
    n, c = probs.shape[:2]
    masks = probs >= per_class(pixel_threshold, c, probs.device)
    if scores is not None:
        if scores.shape != (n,):
            raise ValueError(f"scores must have shape [{n}], got {list(scores.shape)}")
        masks &= (scores >= gate_threshold).view(n, 1, 1, 1)
    min_area_t = per_class(min_area, c, probs.device).view(1, c)
    if (min_area_t > 0).any():
        small = masks.flatten(2).sum(-1) < min_area_t
        masks &= ~small.view(n, c, 1, 1)
    return masks


class TwoStagePipeline(nn.Module):
    """Classifier gate + segmenter. ``predict(images)`` -> (bool masks [B,C,H,W], p(defective) [B]).

    Images whose p(defective) is below ``gate_threshold`` are not passed to the segmenter at all
    (their masks are empty), which is also why the pipeline is cheaper than the U-Net alone on a line
    where most strips are clean. ``classifier`` returns one logit per image, ``segmenter`` C logits
    per pixel; a pipeline without a classifier (``classifier=None``) is the U-Net alone.
    """

    def __init__(self, classifier: nn.Module | None, segmenter: nn.Module, gate_threshold: float = 0.5,
                 pixel_threshold: float | Sequence[float] = 0.5, min_area: int | Sequence[int] = 0):
        super().__init__()
        self.classifier = classifier
        self.segmenter = segmenter
        self.gate_threshold = gate_threshold
        self.pixel_threshold = pixel_threshold
        self.min_area = min_area

    @torch.no_grad()
    def scores(self, images: torch.Tensor) -> torch.Tensor:
        """p(defective) per image (ones when there is no classifier)."""
        if self.classifier is None:
            return torch.ones(images.shape[0], device=images.device)
        self.classifier.eval()
        return torch.sigmoid(self.classifier(images).reshape(images.shape[0]))

    @torch.no_grad()
    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """Per-class pixel probabilities of the segmenter, [B, C, H, W]."""
        self.segmenter.eval()
        return torch.sigmoid(self.segmenter(images))

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bool masks [B, C, H, W] and p(defective) [B]; both networks are put in eval mode."""
        self.eval()
        scores = self.scores(images)
        keep = scores >= self.gate_threshold
        probs = None
        if keep.any():
            seg = self.segment(images[keep])
            probs = seg.new_zeros((images.shape[0], *seg.shape[1:]))
            probs[keep] = seg
        if probs is None:  # every image gated out: the segmenter is never run
            c = getattr(self.segmenter, "num_classes", None)
            if c is None:
                raise ValueError("all images were gated out and the segmenter has no `num_classes` "
                                 "to size the empty masks")
            probs = images.new_zeros((images.shape[0], c, *images.shape[-2:]))
        masks = apply_thresholds(probs, scores, self.gate_threshold, self.pixel_threshold,
                                 self.min_area)
        return masks, scores

    forward = predict


def tune_thresholds(probs: torch.Tensor, targets: torch.Tensor, metric: Callable,
                    scores: torch.Tensor | None = None,
                    gate_grid: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                    pixel_grid: Sequence[float] = (0.3, 0.4, 0.5, 0.6, 0.7),
                    min_area_grid: Sequence[int] = (0,)) -> tuple[dict, list[dict]]:
    """Grid-search the thresholds that maximise ``metric(pred_masks, target_masks)`` on VALIDATION
    data. ``scores`` None tunes the U-Net alone (no gate). Returns (best, table) where ``best`` has
    keys gate_threshold, pixel_threshold, min_area, score and ``table`` lists every grid point.
    Ties go to the first grid point, so order the grids from the paper's default outwards if the
    default should win ties.
    """
    gates = (None,) if scores is None else tuple(gate_grid)
    fast = count_scorers().get(metric)
    if fast is not None:
        table = _tune_from_counts(probs, targets, fast, scores, gates, pixel_grid, min_area_grid)
        best = max(table, key=lambda r: r["score"])
        return dict(best), table
    table = []
    for gate, pix, area in itertools.product(gates, pixel_grid, min_area_grid):
        masks = apply_thresholds(probs, scores, 0.0 if gate is None else gate, pix, area)
        table.append({"gate_threshold": gate, "pixel_threshold": pix, "min_area": area,
                      "score": float(metric(masks, targets))})
    best = max(table, key=lambda r: r["score"])
    return dict(best), table


def _tune_from_counts(probs, targets, score_fn, scores, gates, pixel_grid, min_area_grid, chunk: int = 8):
    """The grid of :func:`tune_thresholds` from per-(image, class) pixel counts: one pass over the
    probabilities per pixel threshold, after which every gate threshold and minimum area is a
    decision on an ``[N, C]`` table (a gate or a minimum area only empties whole class masks).
    Gives the same scores as thresholding the masks at every grid point, to the last bit, at a
    fraction of the cost (paper profile: 9 x 5 grid points on Severstal's full-size validation
    strips, about 70 single-thread minutes the direct way)."""
    n, c = probs.shape[:2]
    true_count = _count(targets.bool())
    counts = []                       # (predicted pixels, true positives) [N, C] per pixel threshold
    for pix in pixel_grid:
        t = per_class(pix, c, probs.device)
        pred_count = np.zeros((n, c), np.int64)
        inter = np.zeros((n, c), np.int64)
        for i in range(0, n, chunk):
            m = probs[i:i + chunk] >= t
            pred_count[i:i + chunk] = _count(m)
            inter[i:i + chunk] = _count(m & targets[i:i + chunk].bool())
        counts.append((pred_count, inter))
    return grid_table(counts, true_count, score_fn, scores, gates, pixel_grid, min_area_grid)


def grid_table(counts, true_count, score_fn, scores, gates, pixel_grid, min_area_grid) -> list[dict]:
    """Every grid point's score from ``counts``, (predicted pixels, true positives) ``[N, C]`` at
    each pixel threshold of ``pixel_grid``, and the true pixels ``true_count``."""
    table = []
    # the direct search's order (gate, pixel, area), so ties go to the same grid point
    for gate, (k, pix), area in itertools.product(gates, enumerate(pixel_grid), min_area_grid):
        pred_count, inter = counts[k]
        inter, pred_count = kept_counts(inter, pred_count, scores, gate, area)
        table.append({"gate_threshold": gate, "pixel_threshold": pix, "min_area": area,
                      "score": float(score_fn(inter, pred_count, true_count))})
    return table


def kept_counts(inter: np.ndarray, pred_count: np.ndarray, scores: torch.Tensor | None, gate_threshold,
                min_area) -> tuple[np.ndarray, np.ndarray]:
    """(true positives, predicted pixels) ``[N, C]`` after :func:`apply_thresholds`'s gate and
    minimum area, from the counts of the masks before them: each empties whole class masks (a gate
    every class of an image scored below ``gate_threshold``, ``None``: no gate; a minimum area each
    class mask smaller than it)."""
    n, c = pred_count.shape
    keep = np.ones((n, c), bool)
    if scores is not None and gate_threshold is not None:
        keep &= (scores >= gate_threshold).cpu().numpy()[:, None]
    area = per_class(min_area, c, "cpu").view(c).numpy()
    if (area > 0).any():
        keep &= ~(np.where(keep, pred_count, 0) < area[None, :])
    return np.where(keep, inter, 0), np.where(keep, pred_count, 0)


def pair_dice(inter, pred_count, true_count) -> np.ndarray:
    """Kaggle's Dice of every (image, class) pair from its counts, float64 ``[N, C]`` (an empty pair scores 1)."""
    from ...metrics.segmentation import safe_div
    return safe_div(2 * inter.astype(np.float64), pred_count + true_count, 1.0)


def _class_iou(inter, pred_count, true_count) -> list[float]:
    """Pooled IoU of each class from per-(image, class) counts (the integer sums are exact)."""
    from ...metrics.segmentation import safe_div
    tp, fp, fn = (a.sum(0).astype(np.float64) for a in (inter, pred_count - inter, true_count - inter))
    return [float(safe_div(np.array([tp[k]]), np.array([tp[k] + fp[k] + fn[k]]), 1.0).mean()) for k in range(len(tp))]


def _kaggle_from_counts(inter, pred_count, true_count) -> float:
    return float(pair_dice(inter, pred_count, true_count).mean())


def mean_iou_from_counts(inter, pred_count, true_count) -> float:
    ious = _class_iou(inter, pred_count, true_count)
    return sum(ious) / len(ious)


# --- evaluation ----------------------------------------------------------------------------------
@dataclass
class Outputs:
    """Both networks' outputs on one split: ``probs`` float16 [N, C, H, W] pixel probabilities,
    ``scores`` [N] p(defective) (None without a classifier), ``targets`` bool [N, C, H, W]."""

    probs: torch.Tensor
    scores: torch.Tensor | None
    targets: torch.Tensor

    @property
    def defective(self) -> torch.Tensor:
        return self.targets.flatten(1).any(1)

    @property
    def true(self) -> np.ndarray:
        """True pixels per (image, class), int64 ``[N, C]``."""
        return _count(self.targets.bool())

    def at(self, pixel_threshold=0.5, min_area=0, scores: torch.Tensor | None = None,
           gate_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`mask_counts` of these outputs (``scores`` None: the U-Net alone)."""
        return mask_counts(self.probs, self.targets, scores, gate_threshold, pixel_threshold, min_area)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Logits of a forward pass run as training ran it (16-bit autocast, channels_last) -> the
    sigmoid in fp32."""
    return torch.sigmoid(logits.float())


def collect(segmenter: nn.Module, loader, classifier: nn.Module | None = None, device="cpu",
            max_batches: int | None = None, progress: bool = True, precision: str = "fp32",
            channels_last: bool = False) -> Outputs:
    """Run the segmenter (and classifier) on every image of ``loader`` ((image, mask) batches),
    one pass through :func:`defectlib.engine.predict`. ``precision`` / ``channels_last`` as in
    :class:`defectlib.engine.TrainConfig` (``"auto"``: bf16 autocast on CPUs with native bf16);
    the sigmoid runs in fp32, the probabilities are kept in float16."""
    from ...engine import predict
    models = nn.ModuleDict({"seg": segmenter} if classifier is None else {"seg": segmenter, "cls": classifier})

    def forward(m, batch, dev):
        x = batch[0].to(dev)
        return {name: net(x) for name, net in m.items()}

    def output(out, batch):
        return (probabilities(out["seg"]).half(),
                probabilities(out["cls"].reshape(len(batch[0]))) if "cls" in out else None,
                batch[1].bool().contiguous())   # the masks in their own layout, not channels_last
    probs, scores, targets = predict(models, loader, device, max_batches, forward, output, progress=progress,
                                     precision=precision, channels_last=channels_last)
    return Outputs(probs, scores, targets)


def collect_scores(classifier: nn.Module, loader, device="cpu", max_batches: int | None = None,
                   progress: bool = True, precision: str = "fp32", channels_last: bool = False) -> torch.Tensor:
    """p(defective) [N] for every image of ``loader`` ((image, ...) batches), in order
    (``precision`` / ``channels_last`` as in :func:`collect`)."""
    from ...engine import predict
    return predict(classifier, loader, device, max_batches, output=lambda out, batch: probabilities(
        out.reshape(len(batch[0]))), progress=progress, desc="gate", precision=precision,
        channels_last=channels_last)


def mask_counts(probs: torch.Tensor, targets: torch.Tensor, scores: torch.Tensor | None = None,
                gate_threshold: float = 0.5, pixel_threshold=0.5, min_area=0,
                chunk: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel counts per (image, class), int64 ``[N, C]``: (true positives, predicted pixels, true
    pixels) of :func:`apply_thresholds`'s masks, made ``chunk`` images at a time (every metric of
    :func:`dice_report` is a function of these counts; no mask of the whole split is built)."""
    n, c = probs.shape[:2]
    inter, pred, true = (np.zeros((n, c), np.int64) for _ in range(3))
    for i in range(0, n, chunk):
        t = targets[i:i + chunk].bool()
        m = apply_thresholds(probs[i:i + chunk], None if scores is None else scores[i:i + chunk],
                             gate_threshold, pixel_threshold, min_area)
        inter[i:i + chunk], pred[i:i + chunk], true[i:i + chunk] = _count(m & t), _count(m), _count(t)
    return inter, pred, true


def _count(masks: torch.Tensor, chunk: int = 8) -> np.ndarray:
    """Pixels set per (image, class) of bool ``masks`` [N, C, ...], int64 [N, C] (numpy counts the
    bools as they are: torch's ``sum`` of a bool tensor first makes an int64 copy, 8x its size)."""
    a = masks.cpu().numpy()
    a = a.reshape(*a.shape[:2], -1)
    out = np.zeros(a.shape[:2], np.int64)
    for i in range(0, len(a), chunk):
        out[i:i + chunk] = np.count_nonzero(a[i:i + chunk], axis=2)
    return out


def scores_from_counts(inter: np.ndarray, pred: np.ndarray, true: np.ndarray) -> dict:
    """Kaggle Dice (and per class), the author's Dice and the pooled IoU per class from
    :func:`mask_counts`: the same float64 operations as :func:`~defectlib.metrics.kaggle_dice`,
    :func:`~defectlib.metrics.severstal_author_dice` and :func:`class_iou` on the masks, so the
    same numbers to the last bit (sums of integer counts are exact)."""
    from ...metrics.segmentation import author_dice_from_counts
    d = pair_dice(inter, pred, true)                                      # [N, C], as kaggle_dice
    return {"kaggle": float(d.mean()), "author": author_dice_from_counts(inter, pred, true),
            "kaggle_per_class": [float(v) for v in d.mean(0)], "iou_per_class": _class_iou(inter, pred, true)}


def dice_report(out, gate_threshold: float = 0.5, pixel_threshold=0.5, min_area=0) -> dict:
    """Kaggle Dice (per image x class, empty-empty = 1) and the author's pooled Dice for: predicting
    nothing, the U-Net alone, the two-stage pipeline, and the pipeline with a perfect gate (the
    true defective flag; its upper bound). Returns {row: {"kaggle", "author", "kaggle_per_class",
    "iou_per_class"}}, from per-(image, class) pixel counts. ``out``: :class:`Outputs` (counted
    chunk by chunk, :func:`mask_counts`) or the evaluation's :class:`.evaluation.Counts` (counted
    as the split was predicted): anything with ``at``, ``true``, ``scores`` and ``defective``."""
    report = {}
    for name in ("predict nothing", "U-Net alone", "two-stage", "two-stage, perfect gate"):
        if name == "predict nothing":
            true = out.true
            inter = pred = np.zeros_like(true)
        elif name == "U-Net alone":
            inter, pred, true = out.at(pixel_threshold, min_area)
        elif name == "two-stage":
            if out.scores is None:
                continue
            inter, pred, true = out.at(pixel_threshold, min_area, out.scores.float(), gate_threshold)
        else:
            inter, pred, true = out.at(pixel_threshold, min_area, out.defective.float(), 0.5)
        report[name] = scores_from_counts(inter, pred, true)
    return report


def thresholded_iou(out, pixel_threshold=0.5, min_area=0) -> list[float]:
    """:func:`class_iou` of the U-Net's masks at ``pixel_threshold`` / ``min_area`` on ``out``
    (as in :func:`dice_report`), from per-(image, class) counts (no mask of the whole split)."""
    return scores_from_counts(*out.at(pixel_threshold, min_area))["iou_per_class"]


def class_iou(masks: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """Pooled IoU of each class channel: ``TP / (TP + FP + FN)`` with the counts summed over every
    image of the split (how segmentation benchmarks report per-class IoU; 1.0 when neither the
    prediction nor the ground truth has a pixel of that class). ``masks``, ``targets`` [N, C, H, W]."""
    from ...metrics import segmentation_scores
    if masks.shape != targets.shape:
        raise ValueError(f"masks {tuple(masks.shape)} and targets {tuple(targets.shape)} differ in shape")
    return [segmentation_scores(masks[:, c].bool(), targets[:, c].bool(), reduction="pooled")["iou"]
            for c in range(masks.shape[1])]


def mean_iou(masks: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over the class channels of :func:`class_iou` (the "mean IoU of the defect classes"),
    a fraction in [0, 1]; usable as ``metric`` of :func:`tune_thresholds`."""
    ious = class_iou(masks, targets)
    return sum(ious) / len(ious)


def count_scorers() -> dict:
    from ...metrics import kaggle_dice
    return {kaggle_dice: _kaggle_from_counts, mean_iou: mean_iou_from_counts}
