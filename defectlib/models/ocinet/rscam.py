"""RSCAM, the Rectangular Self-Calibration Attention of CGRSeg, for Table III's "Base+RSCAM".

Z. Ni, X. Chen, Y. Zhai, Y. Tang, Y. Wang, "Context-Guided Spatial Feature Reconstruction for
Efficient Semantic Segmentation" (CGRSeg), ECCV 2024: ref. [54] of the OCINet paper. CGRSeg calls
the attention "rectangular self-calibration attention" (RCA); its Rectangular Self-Calibration
Module (RCM) is RCA followed by BN, an MLP and a residual, like a MetaNeXt block. OCINet's "RSCAM"
is read as the attention, RCA (RCM's BN + MLP, ratio 2, would add another 0.79 M to the variant).

What it does: horizontal and vertical average pooling give one vector per row and one per column,
whose broadcast sum is a "rectangular" region of interest; a shape self-calibration (depthwise
1 x k conv -> BN -> ReLU -> depthwise k x 1 conv -> sigmoid) lets that rectangle bend towards the
object's shape. The calibrated map multiplies a depthwise-convolved copy of the input (local
detail): ``RCA(x) = sigmoid(calib(pool_h(x) + pool_w(x))) * DWConv(x)``.

Assumptions, every convolution depthwise with a bias (ratio 1: no channel reduction):
  - band kernel k = 11 (CGRSeg's);
  - the "square" depthwise kernel of the local branch is 2 x 2, the default of CGRSeg's RCA
    constructor as we remember it (CGRSeg's RCM passes 3 x 3), padded on the right and bottom so the
    output keeps the input's size. This is the only natural setting that reproduces Table III:
    with 3 x 3 the variant has 27,648 parameters of RCA, 28.180 M in all, 0.004 M above the paper.
  RCA on C channels: C(s^2 + 1) + 2 (C k + C) + 2C = C (s^2 + 2k + 5) = 31 C parameters.

How OCINet inserts it (not said; the count decides): in place of CSIM, in the same cross-scale
stage (three pairs + two fusion units, 295,424 parameters), one RCA per pair on the pair's channel
concatenation [f_hi; Up(f_lo)] (2c = 256 channels, 7,936 parameters; :class:`.fusion.ConcatPair`):
27,856,580 + 295,424 + 3 x 7,936 = 28,175,812 -> 28.176 M, Table III's row 9. Because every layer
of RCA is depthwise, the concatenation does not mix the two scales (the same as one RCA(c) per
scale, on the coarser level upsampled): the two outputs only meet in the fusion units.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class RectangularSelfCalibrationAttention(nn.Module):
    """RCA on one feature map ``[B, C, H, W] -> [B, C, H, W]``; the sigmoid is the submodule ``gate``."""

    def __init__(self, channels: int, band_kernel: int = 11, square_kernel: int = 2):
        super().__init__()
        self.square_kernel = square_kernel
        self.local = nn.Conv2d(channels, channels, square_kernel, groups=channels)
        self.calibrate = nn.Sequential(
            nn.Conv2d(channels, channels, (1, band_kernel), padding=(0, band_kernel // 2), groups=channels),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, (band_kernel, 1), padding=(band_kernel // 2, 0), groups=channels),
        )
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        rect = x.mean(3, keepdim=True) + x.mean(2, keepdim=True)    # [B,C,H,1] + [B,C,1,W] -> [B,C,H,W]
        att = self.gate(self.calibrate(rect))
        p = self.square_kernel - 1                                   # "same" padding, extra on right/bottom
        loc = self.local(F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2)))
        return att * loc
