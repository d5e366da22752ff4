"""CBAM, the Convolutional Block Attention Module (DANet paper 000, Sec. III-E, Eqs. 3-6;
Woo et al., ECCV 2018).

CBAM re-weights a feature map ``F`` [C, H, W] first per channel ("what"), then per position
("where"):

    F'  = M_c(F)  (x) F                                                         (Eq. 3)
    F'' = M_s(F') (x) F'                                                        (Eq. 4)
    M_c(F) = sigmoid( W1 relu(W0 AvgPool(F)) + W1 relu(W0 MaxPool(F)) )        (Eq. 5)
    M_s(F) = sigmoid( f7x7( [mean_c(F); max_c(F)] ) )                           (Eq. 6)

``W0`` [C/r, C] and ``W1`` [C, C/r] are one MLP shared by the two pooled vectors (reduction r = 16
in the CBAM paper); ``f7x7`` is a 7x7 convolution from the 2 pooled maps to 1. DANet puts a CBAM in
every ResNet-50 bottleneck, on the residual branch before the addition
(:class:`defectlib.models.danet.DANetBottleneck`).

Deviation, stated: the paper's text mentions a leaky variant of ReLU in the MLP; the CBAM paper and
its code use ReLU, which we follow (``activation`` lets you change it).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ChannelAttention", "SpatialAttention", "CBAM"]


class ChannelAttention(nn.Module):
    """``M_c`` of Eq. 5: a [B, C, 1, 1] map of channel weights in (0, 1)."""

    def __init__(self, channels: int, reduction: int = 16, activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        hidden = max(channels // reduction, 1)
        # The shared MLP W1 act(W0 .), weights only as written in Eq. 5 (the CBAM authors' code adds
        # biases, and a BatchNorm after the 7x7 conv of Eq. 6).
        self.mlp = nn.Sequential(nn.Linear(channels, hidden, bias=False), activation(),
                                 nn.Linear(hidden, channels, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))])   # [2B, C]: one MLP call
        avg, mx = self.mlp(pooled).split(b)
        return torch.sigmoid(avg + mx).view(b, c, 1, 1)


class SpatialAttention(nn.Module):
    """``M_s`` of Eq. 6: a [B, 1, H, W] map of position weights in (0, 1)."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Channel attention, then spatial attention, applied in sequence (Eqs. 3-4)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7,
                 activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction, activation)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        x = x * self.channel(x)            # Eq. 3
        return x * self.spatial(x)         # Eq. 4

    @torch.no_grad()
    def attention_maps(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(M_c(F) [B, C, 1, 1], M_s(F') [B, 1, H, W])`` for plotting."""
        mc = self.channel(x)
        return mc, self.spatial(x * mc)
