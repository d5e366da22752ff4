"""Cross-scale Spatial Interaction Module (CSIM) and its Collaborative Spatial Attention Unit.

OCINet, Sec. III-C and Fig. 4. For a pair of adjacent levels (f_ci^i at h x w, f_ci^{i+1} at
h/2 x w/2):

1. Align: upsample f_ci^{i+1} x2 (bilinear) to h x w.
2. *Separation* along the height: split both into top and bottom halves,
   {f^{i,1}, f^{i+1,1}} (top) and {f^{i,2}, f^{i+1,2}} (bottom), each c x h/2 x w.
3. *CSAU* on each half pair: concatenate the two along the HEIGHT (c x h x w), then as CBAM's
   spatial attention
       sa^k = sigmoid(Conv7x7([mean_c(.); max_c(.)]))             (1 x h x w)
   split sa^k back along the height into sa^{i,k}, sa^{i+1,k} (1 x h/2 x w each) and multiply.
   Stacking the two scales along H lets the 7x7 kernel see both scales at the seam, and the conv
   weights are shared by both, so each scale's map is learnt jointly with the other.
4. *Recombination*: concatenate the halves of each level along the height; the low-resolution
   output goes back to h/2 x w/2 by x0.5 bilinear resampling.

After the fusion units (see :mod:`.fusion`) the model adds the stage features back (residual), as
in the authors' code: f_cs^i = f_si^i + f_b^i.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def resize(x: Tensor, size) -> Tensor:
    """Bilinear resampling with ``align_corners=True`` (the authors' ``nn.Upsample`` setting)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class SpatialGate(nn.Module):
    """``sigmoid(Conv_kxk([mean_c(x); max_c(x)]))``: CBAM's spatial attention map ``[B, 1, H, W]``.

    The sigmoid is the submodule ``gate`` (hook it to read the map).
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return self.gate(self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))


class CollaborativeSpatialAttentionUnit(nn.Module):
    """CSAU: one spatial attention map for two same-size feature halves stacked along the height."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.attention = SpatialGate(kernel_size)

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        sa = self.attention(torch.cat([a, b], dim=2))
        sa_a, sa_b = sa.split([a.shape[2], b.shape[2]], dim=2)
        return a * sa_a, b * sa_b


class CSIM(nn.Module):
    """Cross-scale Spatial Interaction Module for one pair of levels: ``(f_hi, f_lo) -> (f_hi', f_lo')``.

    Two CSAUs (top halves, bottom halves), each one 7x7 conv 2 -> 1: 2 x 98 = 196 parameters.
    The high-resolution height must be even (it is 88/44/22 at 352x352 input).
    """

    def __init__(self, kernel_size: int = 7, parts: int = 2):
        super().__init__()
        self.units = nn.ModuleList(CollaborativeSpatialAttentionUnit(kernel_size) for _ in range(parts))

    def forward(self, hi: Tensor, lo: Tensor) -> tuple[Tensor, Tensor]:
        h = hi.shape[2]
        parts = len(self.units)
        if h % parts:
            raise ValueError(f"CSIM splits the height into {parts} parts but the feature height is {h}; "
                             f"use an input size divisible by 32")
        lo_up = resize(lo, hi.shape[2:])
        outs = [unit(a, b) for unit, a, b in zip(self.units, hi.chunk(parts, 2), lo_up.chunk(parts, 2))]
        hi_out = torch.cat([o[0] for o in outs], 2)
        lo_out = resize(torch.cat([o[1] for o in outs], 2), lo.shape[2:])
        return hi_out, lo_out
