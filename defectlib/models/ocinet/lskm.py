"""LSKM, the Large Selective Kernel module of LSKNet, for Table III's "Base+LSKM".

Y. Li, X. Li, Y. Dai, Q. Hou, L. Liu, Y. Liu, M.-M. Cheng, J. Yang, "LSKNet: A Foundation
Lightweight Backbone for Remote Sensing", IJCV 133, 2025 (first at ICCV 2023 as "Large Selective
Kernel Network for Remote Sensing Object Detection"): ref. [55] of the OCINet paper.

What it does: two depthwise convolutions in sequence (5x5, then 7x7 with dilation 3: receptive
fields 5 and 23) give a small- and a large-context feature, each reduced to C/2 channels by a 1x1
conv; their channel-wise mean and max (over both, concatenated) go through a 7x7 conv 2 -> 2 and a
sigmoid, giving one spatial selection mask per kernel. The masked sum of the two features, back to
C channels by a 1x1 conv, re-weights the input: ``LSK(x) = x * Conv1x1(m1 * U1 + m2 * U2)``, so every
position chooses its own receptive field.

As LSKNet's LSK block (every conv with a bias); not included: the 1x1 projections and GELU around it
in LSKNet's attention layer, nor the block's BN / MLP. On C channels:
  25C + C (5x5 dw) + 49C + C (7x7 dw, dil. 3) + 2 (C * C/2 + C/2) (two 1x1) + 2*2*49 + 2 (select)
  + (C/2 * C + C) (1x1 back) = 1.5 C^2 + 78 C + 198; C = 256: 118,470 parameters.

How OCINet inserts it (not said; the count decides): in place of CSIM, in the same cross-scale stage
(three pairs + two fusion units, 295,424 parameters), one LSK block per pair on the pair's channel
concatenation [f_hi; Up(f_lo)] (2c = 256 channels; :class:`.fusion.ConcatPair`): 27,856,580 + 295,424
+ 3 x 118,470 = 28,507,414 -> 28.507 M, Table III's row 10. The 1x1 convolutions and the mean / max
over channels mix the two scales, so here the selection is cross-scale. (One LSK block per scale
instead would give 28.361 M; LSKNet's whole attention layer on the concatenation, 28.902 M.)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class LargeSelectiveKernel(nn.Module):
    """LSK block on one feature map ``[B, C, H, W] -> [B, C, H, W]``; the sigmoid of the spatial
    selection is the submodule ``gate`` (a hook reads both masks, ``[B, 2, H, W]``)."""

    def __init__(self, channels: int, small_kernel: int = 5, large_kernel: int = 7, large_dilation: int = 3,
                 select_kernel: int = 7):
        super().__init__()
        half = channels // 2
        self.small = nn.Conv2d(channels, channels, small_kernel, padding=small_kernel // 2, groups=channels)
        self.large = nn.Conv2d(channels, channels, large_kernel, padding=large_dilation * (large_kernel // 2),
                               dilation=large_dilation, groups=channels)
        self.reduce_small = nn.Conv2d(channels, half, 1)
        self.reduce_large = nn.Conv2d(channels, half, 1)
        self.select = nn.Conv2d(2, 2, select_kernel, padding=select_kernel // 2)
        self.gate = nn.Sigmoid()
        self.expand = nn.Conv2d(half, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        a_small = self.small(x)
        a_large = self.large(a_small)
        u1, u2 = self.reduce_small(a_small), self.reduce_large(a_large)
        u = torch.cat([u1, u2], 1)
        masks = self.gate(self.select(torch.cat([u.mean(1, keepdim=True), u.amax(1, keepdim=True)], 1)))
        return x * self.expand(u1 * masks[:, :1] + u2 * masks[:, 1:])
