"""Fusion units and the two ways OCINet applies a module across the feature pyramid.

G. Li, X. Zhou, H. Li, "Ordered Cross-Scale Interaction Network for No-Service Rail Surface Defect
Segmentation" (OCINet), Sec. III-B to III-D and Fig. 2.

Every cross-scale module (CCIM, CSIM, CPIM) is applied to the three adjacent pairs of levels
(3, 4), (2, 3), (1, 2), all on the same inputs. A pair module returns one output per input, so
levels 2 and 3 receive two outputs each; the paper's *fusion unit* merges them: "the summation and
a convolution layer" (a 3x3 Conv-BN-ReLU in the authors' code):

    f^2 = Conv(f^{2,1} + f^{2,2}),     f^3 = Conv(f^{3,1} + f^{3,2}).

Levels 1 and 4 take their single output as is. :class:`CrossScaleStage` implements that pattern once
for all three modules; :class:`PerLevelStage` is the "w/o CS" ablation of Table III, which applies a
single-scale module to each level independently (no pairs, hence no fusion units).

Table III's rows 8-10 put other papers' single-feature attention modules (SWSAM, RSCAM, LSKM) where
CSIM is; two adapters turn a single-feature module into a pair module for :class:`CrossScaleStage`:
:class:`ScalewisePair` (one module per scale, no interaction inside the pair) and
:class:`ConcatPair` (one module on the channel concatenation of the pair, the coarser level
upsampled, as the "vanilla" rows concatenate).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from .csim import resize

class ConvBNReLU(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> ReLU, the authors' ``BasicConv2dRelu``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class FusionUnit(nn.Module):
    """Fusion unit of Fig. 2: ``Conv3x3-BN-ReLU(a + b)`` for a level that got two outputs."""

    def __init__(self, channels: int = 128):
        super().__init__()
        self.conv = ConvBNReLU(channels, channels, 3)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.conv(a + b)


class CrossScaleStage(nn.Module):
    """Apply a pair module to levels (3,4), (2,3), (1,2) and fuse the doubled middle levels.

    ``make_pair()`` builds one pair module ``m(high_res, low_res) -> (high_out, low_out)``; three
    are built (one per pair), named ``pair34``, ``pair23``, ``pair12`` as in the paper's CCIM^3,
    CCIM^2, CCIM^1.
    """

    def __init__(self, make_pair: Callable[[], nn.Module], channels: int = 128):
        super().__init__()
        self.pair34, self.pair23, self.pair12 = make_pair(), make_pair(), make_pair()
        self.fuse3 = FusionUnit(channels)
        self.fuse2 = FusionUnit(channels)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        f1, f2, f3, f4 = feats
        f3_a, f4_out = self.pair34(f3, f4)
        f2_a, f3_b = self.pair23(f2, f3)
        f1_out, f2_b = self.pair12(f1, f2)
        return [f1_out, self.fuse2(f2_a, f2_b), self.fuse3(f3_a, f3_b), f4_out]


class PerLevelStage(nn.Module):
    """The "w/o CS" ablation: one single-scale module per level, no pairs, no fusion units."""

    def __init__(self, make_module: Callable[[], nn.Module], levels: int = 4):
        super().__init__()
        self.levels = nn.ModuleList(make_module() for _ in range(levels))

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        return [m(f) for m, f in zip(self.levels, feats)]


class ScalewisePair(nn.Module):
    """Pair module from a single-feature module: ``(hi, lo) -> (m_hi(hi), m_lo(lo))``, two instances."""

    def __init__(self, make_module: Callable[[], nn.Module]):
        super().__init__()
        self.hi, self.lo = make_module(), make_module()

    def forward(self, hi: Tensor, lo: Tensor) -> tuple[Tensor, Tensor]:
        return self.hi(hi), self.lo(lo)


class ConcatPair(nn.Module):
    """Pair module from one module on ``2c`` channels: ``m([hi; Up(lo)])`` split back into ``c + c``,
    the coarser half resampled to its own size (bilinear, as CSIM)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, hi: Tensor, lo: Tensor) -> tuple[Tensor, Tensor]:
        out_hi, out_lo = self.module(torch.cat([hi, resize(lo, hi.shape[2:])], 1)).split(hi.shape[1], 1)
        return out_hi, resize(out_lo, lo.shape[2:])
