"""SWSAM, the Shuffle Weighted Spatial Attention Module of GeleNet, for Table III's "Base+SWSAM".

G. Li, Z. Bai, Z. Liu, X. Zhang, H. Ling, "Salient Object Detection in Optical Remote Sensing Images
Driven by Transformer" (GeleNet), IEEE TIP 32, 2023: ref. [21] of the OCINet paper, by the same first
author. GeleNet applies SWSAM to its highest-level features (and a direction-aware version, D-SWSAM,
to its lowest); SWSAM is D-SWSAM without the directional convolutions.

What it does: the channels are shuffled and split into four groups, and each group gets its own
CBAM spatial attention map (channel mean and max -> 7x7 conv -> sigmoid); the four maps are summed
with learnable weights normalised by a softmax, refined by a 3x3 conv (+BN) and a sigmoid, and the
final map re-weights the input with a residual: ``SWSAM(x) = x * sa + x``. The shuffle makes every
group a sample of all channels, so the four maps are four views of the same feature, and the
learnt weights decide how much each view counts.

As we read GeleNet (Sec. III-B of its paper), at OCINet's c = 128:
  - channel shuffle with 4 groups, then 4 groups of c/4 = 32 channels;
  - each branch's spatial attention is CBAM's: 7x7 conv 2 -> 1, no bias (98 parameters);
  - four branch weights, initialised to 1 (softmax -> 1/4 each);
  - the refining layer is a 3x3 conv 1 -> 1 without bias + BatchNorm (9 + 2 parameters; no ReLU
    before the sigmoid).
  One SWSAM: 4 x 98 + 4 + 11 = 407 parameters, whatever the channel count.

How OCINet inserts it (the paper does not say; the parameter count decides): in place of CSIM,
inside the same cross-scale stage (three adjacent pairs + two fusion units, 295,424 parameters),
one SWSAM per scale in each pair (:class:`.fusion.ScalewisePair`), 6 SWSAMs = 2,442 parameters:
27,856,580 (Base) + 295,424 + 2,442 = 28,154,446 -> 28.154 M, Table III's row 8. (One SWSAM per pair
would give 28.153 M; an SWSAM with 8 branches on the pair's channel concatenation would also give
28.154 M, but changes SWSAM's four branches, so we keep one unmodified SWSAM per scale.)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .ccim import channel_shuffle
from .csim import SpatialGate


class SWSAM(nn.Module):
    """Shuffle Weighted Spatial Attention Module on one feature map: ``x -> x * sa + x``.

    ``branches`` groups of ``channels / branches`` channels after a ``branches``-group shuffle.
    The final sigmoid is the submodule ``gate`` (a hook on it reads the map ``[B, 1, H, W]``);
    each branch's map is ``branch[k].gate``.
    """

    def __init__(self, branches: int = 4, kernel_size: int = 7, refine_kernel: int = 3):
        super().__init__()
        self.branches = branches
        self.branch = nn.ModuleList(SpatialGate(kernel_size) for _ in range(branches))
        self.weight = nn.Parameter(torch.ones(branches))
        self.refine = nn.Sequential(nn.Conv2d(1, 1, refine_kernel, padding=refine_kernel // 2, bias=False),
                                    nn.BatchNorm2d(1))
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] % self.branches:
            raise ValueError(f"SWSAM: {x.shape[1]} channels are not divisible by {self.branches} branches")
        groups = channel_shuffle(x, self.branches).chunk(self.branches, 1)
        w = self.weight.softmax(0)
        s = sum(w[k] * sa(g) for k, (sa, g) in enumerate(zip(self.branch, groups)))
        return x * self.gate(self.refine(s)) + x
