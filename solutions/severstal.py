"""Notebook 02 (Severstal two-stage, paper 001): solutions to the exercises at the end of the notebook."""
from __future__ import annotations

import numpy as np
import torch

from defectlib.losses import TverskyLoss
from defectlib.metrics import kaggle_dice
from defectlib.metrics.segmentation import severstal_author_dice


def rle_by_hand(mask) -> str:
    """Exercise 1: Severstal's run-length encoding of a binary ``[H, W]`` mask: pixels numbered
    from 1 down each column first, ``start length`` for every run of ones."""
    flat = np.asarray(mask, bool).flatten(order="F")          # column-major
    padded = np.concatenate([[False], flat, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])          # 0-based starts and ends of runs
    starts, ends = edges[::2], edges[1::2]
    return " ".join(f"{s + 1} {e - s}" for s, e in zip(starts, ends))


def tversky_costs(alpha: float, n: int = 100) -> dict[str, float]:
    """Exercise 2: the Tversky loss (paper Eq. 3, ``alpha`` on false negatives) of two predictions
    of a 100-pixel defect, one with 20 false-positive pixels and one with 20 missed pixels."""
    target = torch.zeros(1, 1, 1, 2 * n); target[..., :n] = 1
    over = target.clone(); over[..., n:n + n // 5] = 1            # 20 % false positives
    under = target.clone(); under[..., : n // 5] = 0              # 20 % missed
    loss = TverskyLoss(alpha=alpha, smooth=0.0, from_logits=False)
    return {"false positives": float(loss(over, target)), "false negatives": float(loss(under, target))}


def two_dice(pred, target) -> dict[str, float]:
    """Exercise 3: Kaggle's Dice (per image x class, empty pairs score 1) and the author's (the
    channels of an image pooled, smoothed) of binary ``[N, C, H, W]`` masks."""
    return {"kaggle": kaggle_dice(pred, target), "author": severstal_author_dice(pred, target)}
