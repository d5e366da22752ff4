"""PVT-v2-b2 feature extractor and the per-level channel adjustment of OCINet.

OCINet, Sec. III-A: "we adopt the popular PVT-v2-b2 [16] as the feature extractor ... The input size
of PVT-v2-b2 is 3x352x352. It consists of four transformer blocks FE^i. We append a convolution
layer after each transformer block to achieve feature adjustment (i.e., unifying the feature
channel to c), generating four-level basic features f_b^i in R^{c x h_i x w_i}, where c is 128 and
h_i = w_i = 352 / 2^{i+1}."

The backbone is timm's ``pvt_v2_b2`` with ``features_only=True`` (depths 3-4-6-3, heads 1-2-5-8,
MLP ratios 8-8-4-4, spatial reduction 8-4-2-1, channels 64/128/320/512 at strides 4/8/16/32;
24,849,856 parameters). The "convolution layer" is a 3x3 Conv-BN-ReLU, as in the authors' code.

Weights: ``weights=None`` (default) initialises randomly and downloads nothing. ``weights`` may be a
path to a local checkpoint: timm's own ``pvt_v2_b2`` file or the original PVT release
(``pvt_v2_b2.pth``, the one the authors load); timm's checkpoint filter maps either onto the model.
"""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import Tensor, nn

from .fusion import ConvBNReLU

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PVTv2Backbone(nn.Module):
    """PVT-v2-b2 returning the four stage outputs ``[B, 64|128|320|512, H/4..H/32, W/4..W/32]``.

    Accepts 1- or 3-channel images in [0, 1]: a grey image is repeated to three channels, then
    normalised with the ImageNet statistics the pre-trained weights expect (``normalize=True``).
    """

    def __init__(self, weights: str | Path | None = None, normalize: bool = True,
                 name: str = "pvt_v2_b2"):
        super().__init__()
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such PVT-v2 checkpoint (weights= must be a local "
                                        f"file; nothing is downloaded)")
            self.body = timm.create_model(name, pretrained=True, features_only=True,
                                          pretrained_cfg_overlay={"file": str(path)})
        else:
            self.body = timm.create_model(name, pretrained=False, features_only=True)
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise ValueError(f"PVTv2Backbone expects 1 or 3 input channels, got {x.shape[1]}")
        if self.normalize:
            x = (x - self.mean) / self.std
        return self.body(x)


class ChannelAdjust(nn.ModuleList):
    """One 3x3 Conv-BN-ReLU per level, mapping the stage channels to ``c = 128`` (f_b^1..f_b^4)."""

    def __init__(self, in_channels: list[int], channels: int = 128):
        super().__init__(ConvBNReLU(c, channels, 3) for c in in_channels)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        return [conv(f) for conv, f in zip(self, feats)]
