"""Cross-scale Pixel Interaction Module (CPIM): per-channel cross-scale self-attention.

OCINet, Sec. III-D, Fig. 5 and footnote 1, checked against the authors' code. For a pair of
adjacent levels (f_cs^i at h x w, f_cs^{i+1} at h/2 x w/2), c channels:

    x1 = Down_x0.5(f_cs^i)                     (now the size of f_cs^{i+1}: c x h' x w')
    Q = Conv1x1(x1), V1 = Conv1x1(x1),  K = Conv1x1(f_cs^{i+1}), V2 = Conv1x1(f_cs^{i+1})
    A = Q^T (*) K,  A[c] = Q[c]^T K[c] in R^{w' x w'}   i.e.  A[c, u, v] = sum_y Q[c, y, u] K[c, y, v]

"(*)" is a matrix product per channel (footnote 1), so the attention costs c w'^2 h' instead of the
(h'w')^2 c of ordinary self-attention. No 1/sqrt(d) scaling (as the code). Two branches:

    high-res side:  O1 = V1 A1,  A1 = softmax_v(A)^T   (each column u of O1 mixes V1's columns)
                    f_pi^i     = Conv(gamma1 * Up_x2(O1) + f_cs^i)
    low-res side:   O2 = V2 A2,  A2 = softmax_u(A)      (softmax over the other axis)
                    f_pi^{i+1} = Conv(gamma2 * O2 + f_cs^{i+1})

gamma1 = gamma2 = 1 at initialisation (learnable); Conv = 3x3 Conv-BN-ReLU -> Dropout2d(0.1) ->
1x1 Conv-BN-ReLU (DANet's output head). With c = 128 one CPIM has 394,754 parameters.

``cross_scale=False`` is Table III's "P. w/o CS": Q, K, V1, V2 all come from ONE level (no
resampling) and the two branch outputs are summed: the same parameter count per module, one module
per level (4 x 394,754 = 1.579M, matching Table III's 29.436M - 27.857M).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .csim import resize
from .fusion import ConvBNReLU


class PixelAttention(nn.Module):
    """``A = Q^T (*) K`` per channel, returned as the two normalised maps ``(A1, A2)``.

    A submodule so that a forward hook on ``pixel_attention`` reads the maps (``[B, c, w', w']``).
    """

    def forward(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        energy = q.transpose(2, 3) @ k                  # [B, c, w_q, h] @ [B, c, h, w_k] -> [B, c, w_q, w_k]
        return energy.softmax(-1).transpose(2, 3), energy.softmax(-2)


def _output_conv(channels: int) -> nn.Sequential:
    return nn.Sequential(ConvBNReLU(channels, channels, 3), nn.Dropout2d(0.1),
                         ConvBNReLU(channels, channels, 1))


class CPIM(nn.Module):
    """Cross-scale Pixel Interaction Module: ``(f_hi, f_lo) -> (f_hi', f_lo')`` (or ``f -> f'``)."""

    def __init__(self, channels: int = 128, cross_scale: bool = True):
        super().__init__()
        self.cross_scale = cross_scale
        self.query = nn.Conv2d(channels, channels, 1)
        self.key = nn.Conv2d(channels, channels, 1)
        self.value1 = nn.Conv2d(channels, channels, 1)
        self.value2 = nn.Conv2d(channels, channels, 1)
        self.pixel_attention = PixelAttention()
        self.gamma1 = nn.Parameter(torch.ones(1))
        self.gamma2 = nn.Parameter(torch.ones(1))
        self.out1 = _output_conv(channels)
        self.out2 = _output_conv(channels)

    def forward(self, hi: Tensor, lo: Tensor | None = None):
        if not self.cross_scale:
            return self._single(hi)
        x1 = resize(hi, lo.shape[2:])
        a1, a2 = self.pixel_attention(self.query(x1), self.key(lo))
        o1 = resize(self.value1(x1) @ a1, hi.shape[2:])
        o2 = self.value2(lo) @ a2
        return self.out1(self.gamma1 * o1 + hi), self.out2(self.gamma2 * o2 + lo)

    def _single(self, x: Tensor) -> Tensor:
        a1, a2 = self.pixel_attention(self.query(x), self.key(x))
        o1 = self.out1(self.gamma1 * (self.value1(x) @ a1) + x)
        o2 = self.out2(self.gamma2 * (self.value2(x) @ a2) + x)
        return o1 + o2
