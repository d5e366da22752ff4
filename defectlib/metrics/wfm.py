"""Weighted F-measure (Margolin, Zelnik-Manor, Tal, "How to evaluate foreground maps?", CVPR 2014).

The wFm column of OCINet's Table I (paper 003, Eq. 6 with beta^2 = 1). Plain precision and recall
treat every pixel alike; Margolin's measure (i) lets an error next to the object be partly
forgiven by its neighbours (pixel *dependency*) and (ii) makes a false alarm far from the object
cost more than one near its edge (pixel *importance*). With a prediction ``S`` in [0, 1] and a
binary ground truth ``G`` (steps as in Margolin's MATLAB code):

- ``E = |S - G|``; on background pixels take the error of the nearest ``G`` pixel
  (Euclidean distance transform with indices) ``-> Et``;
- ``EA = Et * K``, ``K`` the 7x7 Gaussian with sigma 5 (``fspecial('gaussian', 7, 5)``), zero padding;
- on ``G`` pixels ``E <- min(E, EA)``;
- weights ``B = 1`` on ``G`` and ``2 - exp(log(0.5) / 5 * dist)`` off ``G`` (``dist`` to ``G``);
  ``Ew = E B``;
- ``TPw = |G| - sum Ew[G]``, ``FPw = sum Ew[~G]``, ``R = 1 - mean Ew[G]``,
  ``P = TPw / (TPw + FPw + eps)``;
- ``wFm = (1 + b2) P R / (R + b2 P + eps)`` with ``b2 = beta^2 = 1``.

An image whose ground truth is empty scores ``empty_gt_score`` (default 0, as PySODMetrics scores
it: recall and precision are undefined without a foreground). Batched: the distance transform
runs per image (SciPy's, so ties between equally near pixels resolve as in PySODMetrics), the
rest on small stacks of images at once.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._arrays import binary, finite

__all__ = ["weighted_fmeasure", "gaussian_kernel_1d"]

_EPS = np.spacing(1)


def gaussian_kernel_1d(size=7, sigma=5.0):
    """1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)`` (the 2-D kernel is its outer product)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def weighted_fmeasure(pred, target, beta2=1.0, empty_gt_score=0.0, reduction="mean", chunk=4):
    """Margolin's weighted F-measure of maps ``pred [N, H, W]`` (in [0, 1]) against masks ``target``.

    ``pred`` may be a probability map (as OCINet evaluates it, after per-image min-max
    normalisation: see ``segmentation.minmax_normalize``) or a binary mask. ``target`` is binary.
    ``reduction="mean"`` returns the mean over images (the Table I number), ``"none"`` the ``[N]``
    scores. Equal to ``py_sod_metrics.WeightedFmeasure(beta=beta2)`` (tested to 1e-9; the
    differences seen are about 1e-16).
    """
    s, g = finite(pred, "pred"), binary(target, "target")
    if s.ndim == 2:
        s, g = s[None], g[None]
    if s.shape != g.shape or s.ndim != 3:
        raise ValueError(f"expected pred and target of shape [N, H, W], got {s.shape} and {g.shape}")
    n = len(s)
    scores = np.full(n, float(empty_gt_score))
    table = _importance_table(*s.shape[1:])
    for start in range(0, n, chunk):  # small chunks keep the temporaries in the CPU cache
        sc = s[start:start + chunk]
        gc = g[start:start + chunk]
        if sc.size and (sc.min() < 0 or sc.max() > 1):
            raise ValueError(f"pred must lie in [0, 1], got [{sc.min():.3g}, {sc.max():.3g}]")
        fg = gc.reshape(len(gc), -1).any(1)
        if fg.any():
            scores[start + np.flatnonzero(fg)] = _wfm_batch(sc[fg], gc[fg], beta2, table)
    if reduction == "mean":
        return float(scores.mean())
    if reduction != "none":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return scores


def _importance_table(h, w):
    """``B = 2 - exp(log(0.5) / 5 * dist)`` for every squared distance an h x w image can have."""
    d2 = np.arange((h - 1) ** 2 + (w - 1) ** 2 + 1, dtype=np.float64)
    return 2.0 - np.exp(np.log(0.5) / 5.0 * np.sqrt(d2))


def _wfm_batch(s, gt, beta2, table):
    """wFm of a stack of maps ``s`` [m, H, W] whose masks ``gt`` all have a foreground."""
    m, h, w = s.shape
    ind = np.empty((m, 2, h, w), np.int32)
    for i in range(m):  # nearest foreground pixel of every pixel (SciPy's feature transform)
        ndimage.distance_transform_edt(~gt[i], return_distances=False, return_indices=True, indices=ind[i])
    dy = ind[:, 0] - np.arange(h, dtype=np.int32)[:, None]
    dx = ind[:, 1] - np.arange(w, dtype=np.int32)[None, :]
    weight = table[dy * dy + dx * dx]  # B: 1 on G (distance 0), up to 2 far from it
    err = s - gt
    np.abs(err, out=err)  # E = |S - G|
    nearest = (ind[:, 0] * w + ind[:, 1]).reshape(m, -1)
    et = np.take_along_axis(err.reshape(m, -1), nearest, axis=1).reshape(m, h, w)  # = E on G
    k = gaussian_kernel_1d(7, 5.0)
    ea = ndimage.correlate1d(ndimage.correlate1d(et, k, axis=2, mode="constant"), k, axis=1, mode="constant")
    np.minimum(err, ea, out=err, where=gt)  # min(E, EA) on G
    ew = np.multiply(err, weight, out=err).reshape(m, -1)
    gflat = gt.reshape(m, -1)
    n_fg = gflat.sum(1)
    ew_fg = ew.sum(1, where=gflat)
    fpw = ew.sum(1, where=~gflat)
    tpw = n_fg - ew_fg
    recall = 1.0 - ew_fg / n_fg
    precision = tpw / (tpw + fpw + _EPS)
    return (1 + beta2) * recall * precision / (recall + beta2 * precision + _EPS)
