"""Notebook 05's evaluation: a threshold chosen on the validation images, then the test images scored
at it, the same way for every row of the leaderboard (the trained models, the Otsu threshold and
predicting nothing).

Each model's probability maps come from the one pipeline of :mod:`.export` (fp32, one image at a
time, resized back to the image's size), so the masks scored here are the masks the exported model
writes. The threshold is the one of :data:`THRESHOLDS` with the highest mean per-image IoU on the
validation images (:func:`threshold_curve`); the test images never choose anything.

Metrics (``defectlib.metrics``), in %:

- **IoU** and **Dice**: per image, then the mean over the test images; an image with no defect
  scores 1 when nothing is predicted on it (``segmentation_scores``' ``empty=1``), 0 otherwise;
- **F1**: pixel F1 pooled over all test pixels, ``2TP / (2TP + FP + FN)`` of the summed
  ``confusion_counts`` (paper 004's pixel F1, equal to ``pixel_prf`` on the concatenated pixels);
- **wFm**: Margolin's weighted F-measure of the binary mask (``weighted_fmeasure``), and **PA**: the
  foreground recall ``TP / |G|`` that paper 003's authors call PA; both over the test images that
  have a defect (neither is defined on a clean image).
"""
from __future__ import annotations

import hashlib
import heapq

import numpy as np

from ...metrics import confusion_counts, otsu_binarize, segmentation_scores, weighted_fmeasure
from ...progress import tqdm
from .export import probability_maps

#: the fixed thresholds tried on the validation images
THRESHOLDS = tuple(round(t, 2) for t in np.linspace(0.05, 0.95, 19).tolist())
METRICS = ("IoU", "Dice", "F1", "wFm", "PA")
METRIC_NOTES = {"IoU": "per-image mean (an empty mask on a clean image scores 1)",
                "Dice": "per-image mean (an empty mask on a clean image scores 1)",
                "F1": "pixel F1 pooled over all test pixels (paper 004's)",
                "wFm": "Margolin's weighted F-measure of the binary mask, images with a defect",
                "PA": "foreground recall TP/|G| (paper 003's authors' 'PA'), images with a defect"}


def pairs(data, part: str, limit: int | None = None, progress: bool = False, desc: str = ""):
    """``(image [1, H, W], mask bool [H, W])`` of ``part``'s images, in order (the first ``limit``)."""
    ds = data.dataset(part)
    n = len(ds) if limit is None else min(limit, len(ds))
    for i in tqdm(range(n), desc=desc or part, disable=not progress, leave=False):
        image, mask = ds[i]
        yield image, mask.reshape(mask.shape[-2:]).numpy() > 0.5


def model_maps(model, data, part, size, device="cpu", limit=None, progress=False, desc=""):
    """``(image, probability map, mask)`` of ``part``'s images through ``model`` (:mod:`.export`)."""
    kept = []

    def images():
        for image, mask in pairs(data, part, limit, progress, desc):
            kept.append((image, mask))
            yield image
    for prob in probability_maps(model, images(), size, device):
        image, mask = kept.pop(0)
        yield image, prob, mask


# --- choosing the threshold ------------------------------------------------------------------------
def threshold_curve(maps, thresholds=THRESHOLDS) -> dict:
    """Mean per-image IoU and Dice and pooled pixel F1 (in %) at every fixed threshold, over
    ``maps`` (``(image, prob, mask)`` triples): ``{"thresholds", "IoU", "Dice", "F1", "n_images"}``."""
    t = np.asarray(thresholds, np.float32)[:, None, None]
    iou, dice, counts, n = np.zeros(len(t)), np.zeros(len(t)), np.zeros((3, len(t))), 0
    for _, prob, mask in maps:
        cut = np.asarray(prob, np.float32)[None] >= t            # [T, H, W]: one mask per threshold
        target = np.broadcast_to(mask, cut.shape)
        s = segmentation_scores(cut, target, reduction="none")
        iou, dice = iou + s["iou"], dice + s["dice"]
        counts += np.stack(confusion_counts(cut, target)[:3])
        n += 1
    n = max(n, 1)
    return {"thresholds": np.asarray(thresholds, float), "IoU": 100 * iou / n, "Dice": 100 * dice / n,
            "F1": 100 * _f1(*counts), "n_images": n}


def _f1(tp, fp, fn):
    """Pixel F1 = pooled Dice = 2TP / (2TP + FP + FN); 0 where nothing is predicted or true."""
    tp, fp, fn = (np.asarray(c, np.float64) for c in (tp, fp, fn))
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0)


def choose_threshold(curve: dict) -> tuple[float, float]:
    """The threshold of the highest validation IoU (the lowest one on a tie), and that IoU (%)."""
    k = int(np.argmax(curve["IoU"]))
    return float(curve["thresholds"][k]), float(curve["IoU"][k])


# --- scoring at a threshold ------------------------------------------------------------------------
def digest(mask: np.ndarray) -> str:
    """A fingerprint of a binary mask (its shape and bits): the notebook keeps these, not the masks."""
    mask = np.asarray(mask, bool)
    return hashlib.sha1(str(mask.shape).encode() + np.packbits(mask).tobytes()).hexdigest()


def score_masks(rows, worst: int = 0) -> dict:
    """Scores (in %, :data:`METRICS`) of ``rows``: ``(image, map, predicted mask, true mask)``.
    Also ``"per_image_iou"`` (fractions, test order), ``"digests"`` (:func:`digest` of each
    predicted mask), ``"n_images"``, ``"n_defective"``, and with ``worst`` the ``worst`` lowest-IoU
    rows as ``(image, map, mask, IoU %)``, lowest first."""
    ious, dices, wfms, recalls, digests = [], [], [], [], []
    counts = np.zeros(3)
    heap: list = []
    for k, (image, prob, pred, mask) in enumerate(rows):
        pred, mask = np.asarray(pred, bool), np.asarray(mask, bool)
        s = segmentation_scores(pred[None], mask[None], reduction="none")
        ious.append(float(s["iou"][0]))
        dices.append(float(s["dice"][0]))
        counts += np.array([c[0] for c in confusion_counts(pred[None], mask[None])[:3]], float)
        if mask.any():
            recalls.append(float(s["foreground_recall"][0]))
            wfms.append(float(weighted_fmeasure(pred[None].astype(np.float64), mask[None])))
        digests.append(digest(pred))
        if worst:
            item = (-ious[-1], -k, (image, prob, mask, 100 * ious[-1]))
            (heapq.heappush if len(heap) < worst else heapq.heappushpop)(heap, item)
    mean = lambda v: 100 * float(np.mean(v)) if v else float("nan")  # noqa: E731
    return {"IoU": mean(ious), "Dice": mean(dices), "F1": 100 * float(_f1(*counts)), "wFm": mean(wfms),
            "PA": mean(recalls), "per_image_iou": np.asarray(ious), "digests": digests, "n_images": len(ious),
            "n_defective": len(recalls), "worst": [it[2] for it in sorted(heap, reverse=True)]}


def evaluate_model(model, data, size: int, device="cpu", limit: int | None = None, worst: int = 0,
                   progress: bool = False, label: str = "") -> dict:
    """Choose the threshold on the validation images, score the test images at it: the
    :func:`score_masks` result plus ``"threshold"``, ``"val_IoU"`` and ``"curve"`` (the validation
    :func:`threshold_curve`). ``limit``: the first images of each part only (dry runs)."""
    curve = threshold_curve(model_maps(model, data, "val", size, device, limit, progress, f"{label} val"))
    t, val_iou = choose_threshold(curve)
    rows = ((img, p, p >= t, m) for img, p, m in model_maps(model, data, "test", size, device, limit, progress,
                                                           f"{label} test"))
    return {**score_masks(rows, worst), "threshold": t, "val_IoU": val_iou, "curve": curve}


# --- the trivial rows ------------------------------------------------------------------------------
def otsu_mask(image, dark: bool) -> np.ndarray:
    """Otsu's threshold of one grey image after min-max stretching: the bright side (``dark``: the
    dark side) is the defect."""
    grey = np.asarray(image, np.float32).reshape(1, *np.shape(image)[-2:])
    return otsu_binarize(1.0 - grey if dark else grey)[0]


def evaluate_otsu(data, limit: int | None = None, worst: int = 0) -> dict:
    """The classical baseline: each image cut at its own Otsu threshold, defects bright or dark as
    the validation images prefer (their mean IoU). ``"threshold"`` is NaN, ``"dark"`` the choice."""
    ious = {False: [], True: []}
    for img, m in pairs(data, "val", limit):            # one pass, one image in memory at a time
        for side in ious:
            ious[side].append(float(segmentation_scores(otsu_mask(img[0].numpy(), side)[None], m[None])["iou"]))
    iou = {side: float(np.mean(v)) if v else 0.0 for side, v in ious.items()}
    dark = bool(iou[True] > iou[False])
    rows = ((img, None, otsu_mask(img[0].numpy(), dark), m) for img, m in pairs(data, "test", limit))
    return {**score_masks(rows, worst), "threshold": float("nan"), "val_IoU": 100 * float(iou[dark]),
            "dark": dark, "curve": None}


def evaluate_nothing(data, limit: int | None = None) -> dict:
    """Predicting no defect anywhere: the floor every model must clear."""
    rows = ((img, None, np.zeros_like(m), m) for img, m in pairs(data, "test", limit))
    val = [segmentation_scores(np.zeros_like(m)[None], m[None])["iou"] for _, m in pairs(data, "val", limit)]
    return {**score_masks(rows), "threshold": float("nan"), "val_IoU": 100 * float(np.mean(val)), "curve": None}
