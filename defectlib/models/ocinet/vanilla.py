"""Vanilla channel / spatial attention used by the ablations of OCINet's Table III.

Two kinds, both from CBAM (Woo et al., ECCV 2018, ref. [41] of the paper):

- Single-scale (``ChannelAttention``, ``SpatialAttention``): CBAM's units applied to ONE level. They
  are the "Base+C. w/o CS" and "Base+S. w/o CS" rows ("we remove the cross-scale interaction ... and
  perform the vanilla channel attention, spatial attention ... on single-scale features"):
      CA(x) = x * sigmoid(MLP(GAP(x)) + MLP(GMP(x))),  MLP = c -> c/16 -> c   (2,048 params at c=128)
      SA(x) = x * sigmoid(Conv7x7([mean_c(x); max_c(x)]))                   (98 params)
  Four per model (one per level): 8,192 and 392 parameters, i.e. Table III's 27.865M and 27.857M.

- Cross-scale without separation-recombination (``ConcatChannelAttention``,
  ``ConcatSpatialAttention``): the "Base+vanilla CA / SA" rows ("we directly concatenate
  cross-scale features without adopting the unique separation and recombination strategy"):
      CA: pool both levels (2c values), ONE MLP 2c -> 2c/16 -> 2c, split c / c   (8,192 params)
      SA: upsample the low-res level, stack both whole maps along the height, ONE 7x7 conv
  Their parameter counts reproduce the paper's: 28.177M (same as CCIM) and 28.152M (CSIM 28.153M).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .ccim import channel_mlp
from .csim import SpatialGate, resize


class ChannelAttention(nn.Module):
    """CBAM channel attention on one feature map (the sigmoid is the submodule ``gate``)."""

    def __init__(self, channels: int = 128, reduction: int = 16):
        super().__init__()
        self.mlp = channel_mlp(channels, channels // reduction)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True)))


class SpatialAttention(nn.Module):
    """CBAM spatial attention on one feature map."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.attention = SpatialGate(kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attention(x)


class ConcatChannelAttention(nn.Module):
    """Vanilla CA across two scales: pooled statistics of both levels concatenated, one MLP."""

    def __init__(self, channels: int = 128, reduction: int = 16):
        super().__init__()
        self.channels = channels
        self.mlp = channel_mlp(2 * channels, 2 * channels // reduction)
        self.gate = nn.Sigmoid()

    def forward(self, hi: Tensor, lo: Tensor) -> tuple[Tensor, Tensor]:
        avg = torch.cat([hi.mean((2, 3), keepdim=True), lo.mean((2, 3), keepdim=True)], 1)
        mx = torch.cat([hi.amax((2, 3), keepdim=True), lo.amax((2, 3), keepdim=True)], 1)
        ca_hi, ca_lo = self.gate(self.mlp(avg) + self.mlp(mx)).split(self.channels, 1)
        return hi * ca_hi, lo * ca_lo


class ConcatSpatialAttention(nn.Module):
    """Vanilla SA across two scales: whole maps stacked along the height, one 7x7 conv."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.attention = SpatialGate(kernel_size)

    def forward(self, hi: Tensor, lo: Tensor) -> tuple[Tensor, Tensor]:
        lo_up = resize(lo, hi.shape[2:])
        sa_hi, sa_lo = self.attention(torch.cat([hi, lo_up], 2)).split(hi.shape[2], 2)
        return hi * sa_hi, resize(lo_up * sa_lo, lo.shape[2:])
