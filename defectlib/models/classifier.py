"""The defective / clean gate of the Severstal two-stage pipeline (paper 001, section 4.2).

A. Bionda, "Severstal defect segmentation", IACV 2019-2020 project report: "The structure of the
classifier follows the classical ResNet50 architecture, the last part of Fully Connected layers is
removed and replaced by a Global Averaging Pooling layer attached with a sigmoid activation over
the single binary output." Trained with binary cross-entropy on full-size 256x1600 images (Tables
2/3 compare ResNet34 and ResNet50 backbones).

``forward`` returns one LOGIT per image, shape ``[B]``: ``sigmoid(logit)`` is p(defective). Train with
``torch.nn.functional.binary_cross_entropy_with_logits``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .unet import adapt_first_conv, load_torchvision_backbone

BACKBONES = ("resnet34", "resnet50")


class DefectClassifier(nn.Module):
    """ResNet trunk -> global average pooling -> linear to 1 logit."""

    def __init__(self, trunk: nn.Sequential, features: int):
        super().__init__()
        self.trunk = trunk
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.trunk(x)), 1)).squeeze(1)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """p(defective) per image, in eval mode."""
        self.eval()
        return torch.sigmoid(self(x))


def build_classifier(backbone: str = "resnet50", in_channels: int = 3,
                     weights: Any = None) -> DefectClassifier:
    """The paper's gate: torchvision ``backbone`` (ResNet50 by default, ResNet34 for Table 2) with
    its 1000-way head replaced by global average pooling + one sigmoid output.

    ``weights`` as in :func:`defectlib.models.unet.load_torchvision_backbone` (None: random init).
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown classifier backbone {backbone!r}; choose one of {BACKBONES}")
    net = load_torchvision_backbone(backbone, weights)
    net.conv1 = adapt_first_conv(net.conv1, in_channels)
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                          net.layer1, net.layer2, net.layer3, net.layer4)
    return DefectClassifier(trunk, net.fc.in_features)


def classifier_from_encoder(encoder) -> DefectClassifier:
    """The gate with a trunk copied from a trained U-Net ``encoder``
    (:class:`defectlib.models.unet.Encoder`, e.g. ``unet.encoder``): the same layers as
    :func:`build_classifier` builds (for ResNets: conv1 ... layer4), initialised from what the
    U-Net learned from the training masks, and a fresh one-logit head. Not in paper 001, which does
    not say where its gate starts (it "follows the classical ResNet50 architecture", Sec. 4.2):
    in-domain pre-training for a gate trained from scratch."""
    import copy
    trunk = nn.Sequential(*copy.deepcopy(list(encoder.stages)))
    return DefectClassifier(trunk, encoder.out_channels[-1])

