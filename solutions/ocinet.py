"""Notebook 03 (OCINet, paper 003): solutions to the exercises at the end of the notebook."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from defectlib.metrics.segmentation import otsu_binarize, segmentation_scores


def wfm_by_hand(S, G, beta2: float = 1.0) -> float:
    """Exercise 1: Margolin's weighted F-measure (paper 003, Eq. 6) of one map ``S`` in [0, 1]
    against a binary mask ``G`` with a foreground, written out step by step (Margolin et al.,
    CVPR 2014, and their MATLAB code)."""
    S, G = np.asarray(S, np.float64), np.asarray(G, bool)
    eps = np.spacing(1)                                     # MATLAB's eps
    E = np.abs(S - G)                                       # the error of every pixel
    dist, (iy, ix) = ndimage.distance_transform_edt(~G, return_indices=True)
    Et = E[iy, ix]                                          # each pixel takes the error of its nearest G pixel
    x = np.arange(7) - 3.0
    k = np.exp(-x * x / (2 * 5.0 ** 2))
    K = np.outer(k, k) / np.outer(k, k).sum()               # fspecial('gaussian', 7, 5)
    EA = ndimage.correlate(Et, K, mode="constant")          # dependency: neighbours' errors, zero padding
    MIN_E_EA = np.where(G & (EA < E), EA, E)                # on G an error is forgiven by good neighbours
    B = np.where(G, 1.0, 2.0 - np.exp(np.log(0.5) / 5 * dist))   # importance: far false alarms cost up to 2x
    Ew = MIN_E_EA * B
    TPw = G.sum() - Ew[G].sum()
    FPw = Ew[~G].sum()
    R = 1 - Ew[G].mean()                                    # weighted recall
    P = TPw / (TPw + FPw + eps)                             # weighted precision
    return float((1 + beta2) * R * P / (R + beta2 * P + eps))


def dilation_sweep(S, G, radii=(0, 1, 2, 3)) -> list[dict]:
    """Exercise 2: scores of the prediction ``S`` grown by ``r`` pixels (binary dilation with a
    3x3 cross, r times) against ``G``: Eq. 5's PA, the authors' "PA" (foreground recall), IoU."""
    out = []
    for r in radii:
        D = ndimage.binary_dilation(S, iterations=r) if r else np.asarray(S, bool)
        s = segmentation_scores(D[None], np.asarray(G, bool)[None])
        out.append({"radius": r, "PA (Eq. 5)": s["pixel_accuracy"], "authors' PA": s["foreground_recall"],
                    "IoU": s["iou"]})
    return out


def under_confident(G, peak: float = 0.4, seed: int = 0) -> dict:
    """Exercise 3: a model that ranks the pixels right but never says more than ``peak``: IoU at a
    fixed threshold 0.5 against the authors' protocol (per-image min-max normalisation + Otsu)."""
    G = np.asarray(G, bool)
    rng = np.random.default_rng(seed)
    prob = np.clip(np.where(G, peak, 0.1) + rng.normal(0, 0.02, G.shape), 0, 1)[None]
    fixed = segmentation_scores(prob >= 0.5, G[None])["iou"]
    otsu = segmentation_scores(otsu_binarize(prob), G[None])["iou"]
    return {"fixed 0.5": fixed, "min-max + Otsu": otsu}
