"""U-Net with a pretrained-style encoder, as used by the Severstal two-stage paper (paper 001).

A. Bionda, "Severstal defect segmentation", IACV 2019-2020 project report, section 4.1:
"The encoder part follows the EfficientNet-B3 architecture [or ResNet34 / ResNet50]. The decoder part
is a classical U-Net expansion path where each upsampling layer is concatenated with the
corresponding downsampling one in the contracting part, followed by a block of Convolution,
Batch-Normalization and ReLU layer." The output has one channel per defect class, each read through
its own sigmoid ("4 one vs all independent decisions"), so there is no softmax and no background class.

The encoders are torchvision's ResNet34 / ResNet50 / EfficientNet-B3 cut into five stages (strides
2, 4, 8, 16, 32); the decoder has five blocks of widths (256, 128, 64, 32, 16), each
``upsample -> concat(skip) -> [Conv3x3-BN-ReLU] x 2``, then a 3x3 convolution to ``num_classes``
logits. The paper names no library; these are the widths of ``segmentation_models_pytorch.Unet``,
a widely used U-Net with these encoders, so parameter counts agree with it exactly
(tests/test_models_unet.py checks this).

``forward`` returns LOGITS ``[B, num_classes, H, W]``; apply ``torch.sigmoid`` for probabilities
(the losses take logits). Any input size works: each decoder block upsamples to the size of its
skip feature, and the last one to the input size.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

ENCODERS = ("resnet34", "resnet50", "efficientnet_b3")
DECODER_CHANNELS = (256, 128, 64, 32, 16)


# --- weights -------------------------------------------------------------------------------------
def load_torchvision_backbone(name: str, weights: Any = None) -> nn.Module:
    """The torchvision classification network ``name`` with ``weights``.

    ``weights`` is None (random init, the default: nothing is downloaded), a torchvision weights enum
    or its name (``"IMAGENET1K_V1"``, ``"DEFAULT"``: torchvision downloads these, for online users),
    a path to a saved state dict, or a state dict. A state dict may omit the classifier head.
    """
    builder = getattr(torchvision.models, name)
    if weights is None:
        return builder(weights=None)
    local = isinstance(weights, (dict, Path)) or (
        isinstance(weights, str) and (weights.endswith((".pt", ".pth")) or Path(weights).is_file()))
    if not local:
        return builder(weights=weights)  # a weights enum or its name: torchvision downloads it
    model = builder(weights=None)
    state = weights
    if not isinstance(weights, dict):
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such weights file for the {name} encoder")
        state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch, e.g. resnet50 weights for resnet34
        raise ValueError(f"weights for {name} do not match: {str(exc)[:300]}") from None
    missing = [k for k in missing if not k.startswith(("fc.", "classifier."))]
    if missing or unexpected:
        raise ValueError(f"weights for {name} do not match: missing {missing[:5]}, "
                         f"unexpected {list(unexpected)[:5]}")
    return model


def adapt_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels`` inputs. RGB weights are summed for 1 channel (a grey
    image seen as R=G=B gives the same response), or cycled and rescaled for other counts."""
    if in_channels == conv.in_channels:
        return conv
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None)
    with torch.no_grad():
        w = conv.weight
        if in_channels == 1:
            new.weight.copy_(w.sum(dim=1, keepdim=True))
        else:
            idx = torch.arange(in_channels) % w.shape[1]
            new.weight.copy_(w[:, idx] * (w.shape[1] / in_channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


# --- encoders ------------------------------------------------------------------------------------
class Encoder(nn.Module):
    """A backbone cut into 5 stages; ``forward`` returns the 5 feature maps (strides 2..32).

    ``out_channels`` lists their widths, shallow to deep.
    """

    def __init__(self, stages: list[nn.Module], out_channels: tuple[int, ...], name: str):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.out_channels = out_channels
        self.name = name

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


def build_encoder(name: str, in_channels: int = 3, weights: Any = None) -> Encoder:
    """ResNet34 / ResNet50 / EfficientNet-B3 from torchvision as a 5-stage :class:`Encoder`."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {ENCODERS}")
    net = load_torchvision_backbone(name, weights)
    if name.startswith("resnet"):
        net.conv1 = adapt_first_conv(net.conv1, in_channels)
        stages = [nn.Sequential(net.conv1, net.bn1, net.relu),          # /2
                  nn.Sequential(net.maxpool, net.layer1),               # /4
                  net.layer2, net.layer3, net.layer4]                   # /8 /16 /32
        widths = [64] + [_block_out(getattr(net, f"layer{i}")) for i in range(1, 5)]
    else:  # efficientnet_b3: stem 40 (/2), then MBConv stages; the 1536-wide 1x1 head is dropped
        f = net.features
        f[0][0] = adapt_first_conv(f[0][0], in_channels)
        stages = [f[0], nn.Sequential(f[1], f[2]), f[3], nn.Sequential(f[4], f[5]),
                  nn.Sequential(f[6], f[7])]
        widths = [40, 32, 48, 136, 384]
    return Encoder(stages, tuple(widths), name)


def _block_out(layer: nn.Sequential) -> int:
    last = layer[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


# --- decoder -------------------------------------------------------------------------------------
class ConvBNReLU(nn.Sequential):
    """3x3 convolution (no bias: BN follows), batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    """Upsample to the skip's size (nearest), concatenate the skip, two Conv-BN-ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels + skip_channels, out_channels)
        self.conv2 = ConvBNReLU(out_channels, out_channels)

    def forward(self, x: torch.Tensor, size: tuple[int, int],
                skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNet(nn.Module):
    """Encoder + U-Net decoder + 3x3 head with ``num_classes`` logit channels (sigmoid per class)."""

    def __init__(self, encoder: Encoder, num_classes: int,
                 decoder_channels: tuple[int, ...] = DECODER_CHANNELS):
        super().__init__()
        if len(decoder_channels) != 5:
            raise ValueError(f"decoder_channels needs 5 widths (one per encoder stage), "
                             f"got {decoder_channels}")
        self.encoder = encoder
        self.num_classes = num_classes
        deep_to_shallow = encoder.out_channels[::-1]            # e.g. 512, 256, 128, 64, 64
        ins = (deep_to_shallow[0],) + tuple(decoder_channels[:-1])
        skips = deep_to_shallow[1:] + (0,)                      # the last block has no skip
        self.decoder = nn.ModuleList(DecoderBlock(i, s, o)
                                     for i, s, o in zip(ins, skips, decoder_channels))
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        y = feats[-1]
        skips = feats[-2::-1] + [None]                           # /16, /8, /4, /2, then none
        for block, skip in zip(self.decoder, skips):
            size = skip.shape[-2:] if skip is not None else x.shape[-2:]
            y = block(y, size, skip)
        return self.head(y)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Per-class probabilities ``sigmoid(logits)`` in eval mode."""
        self.eval()
        return torch.sigmoid(self(x))


def build_unet(encoder: str = "resnet34", num_classes: int = 4, in_channels: int = 3,
               weights: Any = None) -> UNet:
    """The paper's U-Net: ``encoder`` in :data:`ENCODERS`, one sigmoid channel per defect class.

    ``weights`` initialises the encoder (see :func:`load_torchvision_backbone`); None (default) is a
    random init and never touches the network. Severstal images are grey stored as RGB: use
    ``in_channels=1`` for grey tensors (pretrained RGB filters are summed into one).
    """
    return UNet(build_encoder(encoder, in_channels, weights), num_classes)
