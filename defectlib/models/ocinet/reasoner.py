"""Defect reasoner (decoder DR^1..DR^4), SegHeads and deep supervision of OCINet.

OCINet, Sec. III-E: "For DR^2, DR^3, and DR^4 blocks, there are two convolution layers, a dropout
layer with the hyper-parameter of 0.5, and a deconvolution layer in sequence. DR^1 block contains
only two convolution layers. The final segmentation map S^1 ... and three side segmentation maps
S^2, S^3, S^4 ... are all generated using SegHeads and upsampling operations. Here, the SegHead is
a regular convolution layer with the kernel size of 3x3."

As in the authors' code: convolutions are 3x3 Conv-BN-ReLU; DR^4 takes f_pi^4 alone, DR^3..DR^1 take
concat(previous DR output, f_pi^i) (2c -> c); the deconvolution is ConvTranspose(k=2, s=2)-BN-ReLU;
maps are upsampled bilinearly to the input size. Each level has its own SegHead: the authors' code
computes S^1 with the head of S^2 (``s1 = self.S2(x1_HL1)``), leaving S^1's head unused; we do not
copy that (same parameter count either way).

Deep supervision, Eq. (1): L = L^1 + L^2 + L^3 / 2 + L^4 / 4 (``DEEP_SUPERVISION_WEIGHTS``), each
L^i = BCE + IoU on S^i. The loss itself is in :mod:`defectlib.losses`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .fusion import ConvBNReLU

DEEP_SUPERVISION_WEIGHTS = (1.0, 1.0, 0.5, 0.25)


class DeconvBNReLU(nn.Sequential):
    """ConvTranspose2d(k=2, s=2, no bias) -> BN -> ReLU: doubles the resolution."""

    def __init__(self, channels: int):
        super().__init__(nn.ConvTranspose2d(channels, channels, 2, stride=2, bias=False),
                         nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class DRBlock(nn.Sequential):
    """One defect-reasoner block: two 3x3 Conv-BN-ReLU, then (unless ``last``) Dropout(0.5) + deconv."""

    def __init__(self, in_channels: int, channels: int = 128, last: bool = False, dropout: float = 0.5):
        layers = [ConvBNReLU(in_channels, channels, 3), ConvBNReLU(channels, channels, 3)]
        if not last:
            layers += [nn.Dropout(dropout), DeconvBNReLU(channels)]
        super().__init__(*layers)


class SegHead(nn.Conv2d):
    """SegHead: a 3x3 convolution ``c -> 1`` producing defect logits."""

    def __init__(self, channels: int = 128):
        super().__init__(channels, 1, 3, padding=1)


class DefectReasoner(nn.Module):
    """DR^4 -> DR^1 with a SegHead after each; returns logits ``[S^1, S^2, S^3, S^4]`` at ``size``."""

    def __init__(self, channels: int = 128):
        super().__init__()
        self.dr4 = DRBlock(channels, channels)
        self.dr3 = DRBlock(2 * channels, channels)
        self.dr2 = DRBlock(2 * channels, channels)
        self.dr1 = DRBlock(2 * channels, channels, last=True)
        self.heads = nn.ModuleList(SegHead(channels) for _ in range(4))  # heads[i] -> S^{i+1}

    def forward(self, feats: list[Tensor], size) -> list[Tensor]:
        f1, f2, f3, f4 = feats
        d4 = self.dr4(f4)
        d3 = self.dr3(torch.cat([d4, f3], 1))
        d2 = self.dr2(torch.cat([d3, f2], 1))
        d1 = self.dr1(torch.cat([d2, f1], 1))
        return [F.interpolate(head(d), size=tuple(size), mode="bilinear", align_corners=True)
                for head, d in zip(self.heads, (d1, d2, d3, d4))]
