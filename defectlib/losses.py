"""Loss functions of the four papers.

- Focal loss, paper 000 (DANet) Eq. 10 (Lin et al., RetinaNet, 2017):
  ``FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)``, ``p_t`` the probability of the true class.
  :func:`focal_loss` is the multi-class softmax form that replaces the cross-entropy of
  torchvision's Fast R-CNN box classifier; :func:`sigmoid_focal_loss` the binary form
  (``alpha_t = alpha`` for positives, ``1 - alpha`` for negatives, as in RetinaNet).
  With ``gamma = 0`` the binary form is ``alpha``-weighted BCE (``0.5 BCE`` at ``alpha = 0.5``).
- Soft Dice and BCE + Dice, paper 001 Eqs. 1-2: ``L = BCE + (1 - Dice)`` with the soft Dice
  ``(2 sum(p g) + s) / (sum p + sum g + s)`` on sigmoid probabilities ``p``.
- Tversky, paper 001 Eq. 3: ``TI = TP / (TP + alpha FN + (1 - alpha) FP)`` with soft counts
  ``TP = sum(p g)``, ``FN = sum((1 - p) g)``, ``FP = sum(p (1 - g))``; the paper's ``alpha = 0.3``
  weights *false negatives* by 0.3 and false positives by 0.7 (the author's code uses 0.2/0.8).
  Note: Salehi et al.'s original puts alpha on FP; we follow the paper's Eq. 3. Loss = ``1 - TI``.
- Soft IoU, paper 003 Eq. 4: ``1 - sum(p g) / sum(p + g - p g)`` per image, batch mean.
- Deep supervision, paper 003 Eqs. 1-2: ``L = L^1 + L^2 + L^3 / 2 + L^4 / 4`` with
  ``L^i = BCE(S^i, G) + IoU-loss(S^i, G)`` on the four side outputs (S^1 the final map).

All losses take logits (``from_logits=True``) unless told otherwise; ``smooth`` (default 1, the
usual implementation choice) keeps Dice/Tversky/IoU defined on empty masks; ``smooth=0`` is the
papers' equations exactly.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["focal_loss", "sigmoid_focal_loss", "FocalLoss", "DiceLoss", "BCEDiceLoss", "TverskyLoss",
           "SoftIoULoss", "BCEIoULoss", "DeepSupervisionLoss"]


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha=0.25, gamma: float = 2.0,
               reduction: str = "mean", background: int | None = None) -> torch.Tensor:
    """Softmax focal loss (paper 000, Eq. 10) for class logits ``[N, C]`` and labels ``[N]``.

    ``FL = -alpha_t (1 - p_t)^gamma log p_t`` with ``p_t = softmax(logits)[target]``.
    ``alpha``: a number (the same weight for every class, Eq. 10 as written), a sequence of ``C``
    per-class weights (``alpha_t = alpha[target]``), or None (no weighting). With
    ``background=0`` a number means RetinaNet's split instead: ``alpha`` for the object classes,
    ``1 - alpha`` for the background class. Drop-in for the ``F.cross_entropy(class_logits,
    labels)`` of torchvision's ``fastrcnn_loss``; ``gamma = 0``, ``alpha = 1`` *is* that cross-entropy.
    """
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(f"expected logits [N, C] and targets [N], got {tuple(logits.shape)} and "
                         f"{tuple(targets.shape)}")
    targets = targets.long()
    logp_t = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    loss = -((1.0 - logp_t.exp()) ** gamma) * logp_t if gamma else -logp_t
    if alpha is not None:
        if isinstance(alpha, (int, float)) and background is not None:
            loss = torch.where(targets == background, 1 - alpha, alpha) * loss
        elif isinstance(alpha, (int, float)):
            loss = alpha * loss
        else:
            a = torch.as_tensor(alpha, dtype=logits.dtype, device=logits.device)
            if a.numel() != logits.shape[1]:
                raise ValueError(f"alpha has {a.numel()} weights for {logits.shape[1]} classes")
            loss = a[targets] * loss
    return _reduce(loss, reduction)


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float | None = 0.25,
                       gamma: float = 2.0, reduction: str = "mean") -> torch.Tensor:
    """Binary focal loss (RetinaNet's form of Eq. 10) on logits of any shape, targets in {0, 1}.

    ``p_t = p`` if ``y = 1`` else ``1 - p``; ``alpha_t = alpha`` if ``y = 1`` else ``1 - alpha``
    (``alpha=None``: no weighting). Same values as ``torchvision.ops.sigmoid_focal_loss``.
    """
    targets = targets.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma if gamma else ce
    if alpha is not None and alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction)


class FocalLoss(nn.Module):
    """Focal loss module. ``mode="multiclass"``: softmax over dim 1 of ``[N, C]`` logits and integer
    targets (:func:`focal_loss`); ``mode="binary"``: sigmoid, targets in {0, 1}
    (:func:`sigmoid_focal_loss`)."""

    def __init__(self, alpha=0.25, gamma: float = 2.0, mode: str = "multiclass", reduction: str = "mean"):
        super().__init__()
        if mode not in ("multiclass", "binary"):
            raise ValueError(f"mode must be 'multiclass' or 'binary', got {mode!r}")
        self.alpha, self.gamma, self.mode, self.reduction = alpha, gamma, mode, reduction

    def forward(self, logits, targets):
        fn = focal_loss if self.mode == "multiclass" else sigmoid_focal_loss
        return fn(logits, targets, self.alpha, self.gamma, self.reduction)

    def extra_repr(self):
        return f"alpha={self.alpha}, gamma={self.gamma}, mode={self.mode!r}"


_POOLS = {"channel": 2, "image": 1, "batch": 0}


def _soft_counts(input, target, from_logits, pool):
    """Soft ``sum(p g)``, ``sum(p)``, ``sum(g)`` over the pooled dims of ``[N, C, ...]`` tensors."""
    if input.shape != target.shape:
        raise ValueError(f"input shape {tuple(input.shape)} != target shape {tuple(target.shape)}")
    if pool not in _POOLS:
        raise ValueError(f"pool must be one of {list(_POOLS)}, got {pool!r}")
    p = torch.sigmoid(input) if from_logits else input
    g = target.to(p.dtype)
    start = min(_POOLS[pool], p.ndim)
    dims = tuple(range(start, p.ndim))
    return (p * g).sum(dims), p.sum(dims), g.sum(dims)


class DiceLoss(nn.Module):
    """``1 - (2 sum(p g) + smooth) / (sum p + sum g + smooth)`` (paper 001, Eq. 1), averaged.

    ``pool``: over which elements each Dice is computed before averaging: ``"channel"`` (each
    image and class, default), ``"image"`` (all classes of an image together, the Severstal
    author's way), ``"batch"`` (everything at once, Keras' ``dice_coef`` on flattened tensors).
    """

    def __init__(self, smooth: float = 1.0, from_logits: bool = True, pool: str = "channel"):
        super().__init__()
        self.smooth, self.from_logits, self.pool = smooth, from_logits, pool

    def forward(self, input, target):
        inter, ps, gs = _soft_counts(input, target, self.from_logits, self.pool)
        return 1 - ((2 * inter + self.smooth) / (ps + gs + self.smooth)).mean()


class BCEDiceLoss(nn.Module):
    """``bce_weight * BCE + dice_weight * (1 - Dice)`` on logits (paper 001, Eq. 2: weights 1 and 1)."""

    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0, smooth: float = 1.0,
                 pool: str = "channel"):
        super().__init__()
        self.bce_weight, self.dice_weight = bce_weight, dice_weight
        self.dice = DiceLoss(smooth, from_logits=True, pool=pool)

    def forward(self, logits, target):
        bce = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
        return self.bce_weight * bce + self.dice_weight * self.dice(logits, target)


class TverskyLoss(nn.Module):
    """``1 - (TP + s) / (TP + alpha FN + (1 - alpha) FP + s)`` (paper 001, Eq. 3; alpha on FN).

    ``alpha = 0.3`` (paper; its author's code: 0.2) makes false positives cost more than false
    negatives; ``alpha = 0.5`` gives the Dice loss (with Dice's ``smooth`` = 2 x this one).
    """

    def __init__(self, alpha: float = 0.3, smooth: float = 1.0, from_logits: bool = True,
                 pool: str = "channel"):
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        self.alpha, self.smooth, self.from_logits, self.pool = alpha, smooth, from_logits, pool

    def forward(self, input, target):
        tp, ps, gs = _soft_counts(input, target, self.from_logits, self.pool)
        fn, fp = gs - tp, ps - tp
        ti = (tp + self.smooth) / (tp + self.alpha * fn + (1 - self.alpha) * fp + self.smooth)
        return 1 - ti.mean()

    def extra_repr(self):
        return f"alpha={self.alpha} (weight of FN; FP weight {1 - self.alpha:g}), smooth={self.smooth}"


class SoftIoULoss(nn.Module):
    """``1 - (sum(p g) + s) / (sum(p + g - p g) + s)`` per image, mean over the batch (paper 003, Eq. 4)."""

    def __init__(self, smooth: float = 1.0, from_logits: bool = True, pool: str = "image"):
        super().__init__()
        self.smooth, self.from_logits, self.pool = smooth, from_logits, pool

    def forward(self, input, target):
        inter, ps, gs = _soft_counts(input, target, self.from_logits, self.pool)
        return 1 - ((inter + self.smooth) / (ps + gs - inter + self.smooth)).mean()


class BCEIoULoss(nn.Module):
    """OCINet's hybrid loss of one map (paper 003, Eq. 2): mean BCE on logits + soft IoU loss."""

    def __init__(self, smooth: float = 1.0):
        super().__init__()
        self.iou = SoftIoULoss(smooth, from_logits=True, pool="image")

    def forward(self, logits, target):
        target = target.to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, target) + self.iou(logits, target)


class DeepSupervisionLoss(nn.Module):
    """OCINet's total loss (paper 003, Eq. 1): ``sum_i w_i L_hyb(S^i, G)``, ``w = (1, 1, 1/2, 1/4)``.

    ``forward(maps, target)``: ``maps`` a sequence of logits ``[N, 1, h_i, w_i]`` ordered like the
    weights (``S^1`` the final prediction first); a map smaller than ``target`` is bilinearly
    upsampled to the target size first. ``return_parts=True`` also returns the per-map losses.
    """

    def __init__(self, weights: Sequence[float] = (1.0, 1.0, 0.5, 0.25), smooth: float = 1.0):
        super().__init__()
        self.weights = tuple(float(w) for w in weights)
        self.hybrid = BCEIoULoss(smooth)

    def forward(self, maps, target, return_parts: bool = False):
        if isinstance(maps, torch.Tensor):
            maps = [maps]
        if len(maps) != len(self.weights):
            raise ValueError(f"got {len(maps)} side outputs for {len(self.weights)} weights {self.weights}")
        parts = []
        for m in maps:
            if m.shape[-2:] != target.shape[-2:]:
                m = F.interpolate(m, size=target.shape[-2:], mode="bilinear", align_corners=False)
            parts.append(self.hybrid(m, target))
        total = sum(w * p for w, p in zip(self.weights, parts))
        return (total, parts) if return_parts else total

    def extra_repr(self):
        return f"weights={self.weights}"
