"""The three segmentation architectures of paper 004's Table 1: FCN, DeepLabV3 and U-Net.

Paper 004, Sec. 5.1: "FCN [29] and DeepLabV3 [9] implementations from torchvision and U-Net [35] ...
with the ResNet-34 backbone. For FCN and DeepLabV3 backbones we additionally use bottleneck blocks
... and dilated convolutions in the last 3 layers to keep the resolution reduction factor to 8."
A ResNet-34 with bottleneck blocks is ResNet-50's [3, 4, 6, 3] layout, so FCN and DeepLabV3 are
torchvision's ``fcn_resnet50`` / ``deeplabv3_resnet50`` (``replace_stride_with_dilation=[False,
True, True]``: output stride 8) with ``weights=None`` ("ImageNet pre-training did not help").
U-Net-ResNet34 is the course's own :func:`defectlib.models.unet.build_unet` (notebook 02).

All three return one logit map ``[N, 1, H, W]`` (binary defect segmentation, trained with BCE) and
take ``in_channels`` = 1 (grey) or 3 (exposure stack, :func:`defectlib.data.sampling.exposure_stack`).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import segmentation as tvseg

from .unet import build_unet

ARCHITECTURES = ("fcn", "deeplabv3", "unet")
LABELS = {"fcn": "FCN", "deeplabv3": "DLv3", "unet": "U-Net"}


def _grey_stem(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    if in_channels == conv.in_channels:
        return conv
    return nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                     bias=conv.bias is not None)


class TorchvisionSeg(nn.Module):
    """torchvision's segmentation model returning the ``"out"`` logits as a plain tensor."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]


def build_seg_baseline(arch: str, in_channels: int = 1, num_classes: int = 1) -> nn.Module:
    """``arch`` in :data:`ARCHITECTURES`; randomly initialised, never downloads anything."""
    if arch in ("fcn", "deeplabv3"):
        ctor = tvseg.fcn_resnet50 if arch == "fcn" else tvseg.deeplabv3_resnet50
        net = ctor(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
        net.backbone.conv1 = _grey_stem(net.backbone.conv1, in_channels)
        return TorchvisionSeg(net)
    if arch == "unet":
        return build_unet("resnet34", num_classes=num_classes, in_channels=in_channels)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")


def output_stride(model: nn.Module, size: int = 64, in_channels: int = 1) -> int:
    """Input size / size of the deepest backbone feature map (8 for the dilated ResNet-50s)."""
    net = model.net if isinstance(model, TorchvisionSeg) else None
    if net is None:
        raise TypeError("output_stride applies to the torchvision models (FCN, DeepLabV3)")
    with torch.no_grad():
        feat = net.backbone(torch.zeros(1, in_channels, size, size))["out"]
    return size // feat.shape[-1]
