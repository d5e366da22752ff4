"""Box coding in fp32 for mixed-precision detectors (DANet, paper 000: Faster R-CNN's box regression).

Faster R-CNN regresses each box as offsets from an anchor (RPN) or a proposal (RoI head),
``(dx, dy, dw, dh)`` with ``x = dx * w_a + x_a`` and ``w = exp(dw) * w_a`` (Ren et al. 2015, Eq. 2).
The decoding is where precision matters: bf16 keeps 8 bits of mantissa, so coordinates near 800 px
are multiples of 4 px and near 1333 px multiples of 8.
"""
from __future__ import annotations

import torch
from torchvision.models.detection._utils import BoxCoder


class FP32BoxCoder(BoxCoder):
    """torchvision's box coder, decoding in fp32 whatever the autocast dtype. Its ``decode_single``
    casts the anchors to the regression's dtype: under bf16 autocast (``precision="auto"`` on an
    Ampere GPU or a CPU with native bf16) an 800 px image's boxes land on a 4-8 px grid (8 bits of
    mantissa: 801.3 -> 800, 1333 -> 1336), which moves proposals, RoIs and AP. torchvision's own
    detection recipes train in fp16, where the same cast costs 0.5 px; this keeps every precision exact."""

    def decode_single(self, rel_codes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        with torch.autocast(rel_codes.device.type, enabled=False):
            return super().decode_single(rel_codes.float(), boxes.float())
