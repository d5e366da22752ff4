"""Deformable convolution (DANet paper 000, Sec. III-D, Eq. 2; Dai et al. 2017 DCNv1, Zhu et al. 2019 DCNv2).

A regular 3x3 convolution reads the input on a fixed grid R around every output position p0
(Eq. 1): ``y(p0) = sum_n w(p_n) x(p0 + p_n)``. A deformable convolution adds a learned offset to
each of the 9 taps (Eq. 2):

    y(p0) = sum_n w(p_n) * x(p0 + p_n + dp_n)            (DCNv1)
    y(p0) = sum_n w(p_n) * m_n * x(p0 + p_n + dp_n)      (DCNv2, modulated: a mask m_n in [0, 1])

The offsets ``dp_n`` are fractional, so ``x`` is read with bilinear interpolation (zero outside the
image). The offsets themselves come from an ordinary 3x3 convolution on the same input, initialised
to zero so that training starts from the regular grid (see :class:`defectlib.models.danet`).

This module computes exactly what :func:`torchvision.ops.deform_conv2d` computes (same argument
layout: ``offset`` is ``[B, 2 * offset_groups * kh * kw, Ho, Wo]`` holding (dy, dx) pairs per tap,
``mask`` is ``[B, offset_groups * kh * kw, Ho, Wo]``) but in a way that is fast on CPU:

1. turn every tap's sampling position into a ``grid_sample`` grid -> the 9 (or kh*kw) bilinearly
   sampled copies of the input, ``[B, C, K, Ho*Wo]`` (this is the "deformable im2col");
2. multiply by the mask (DCNv2);
3. one matrix multiply with the weight ``[C_out, C*K]``.

Both steps are single, well-vectorised ATen kernels whose backward passes autograd already knows,
so the gradients (input, offset, mask, weight, bias) come for free and match torchvision's to
float32 rounding. On CUDA, torchvision's fused kernel is used instead (``backend="auto"``).
``tests/test_dcn.py`` checks equality; ``benchmarks/bench_danet.py`` measures the speed-up.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair
from torchvision.ops import deform_conv2d as tv_deform_conv2d

__all__ = ["deform_conv2d", "DeformConv2d", "sampling_positions"]


def _tap_grid(ho: int, wo: int, kh: int, kw: int, stride, padding, dilation, device, dtype):
    """Regular-grid positions p0 + p_n of every tap, as (y [K, Ho, 1], x [K, 1, Wo]) in pixels."""
    ys = torch.arange(ho, device=device, dtype=dtype) * stride[0] - padding[0]
    xs = torch.arange(wo, device=device, dtype=dtype) * stride[1] - padding[1]
    ky = (torch.arange(kh, device=device, dtype=dtype) * dilation[0]).repeat_interleave(kw)
    kx = (torch.arange(kw, device=device, dtype=dtype) * dilation[1]).repeat(kh)
    return ky[:, None, None] + ys[None, :, None], kx[:, None, None] + xs[None, None, :]


def sampling_positions(offset: Tensor, kernel_size=3, stride=1, padding=1, dilation=1) -> Tensor:
    """Absolute sampling positions ``p0 + p_n + dp_n`` in pixels, ``[B, G, K, Ho, Wo, 2]`` as (y, x).

    Handy for drawing where a deformable convolution looks (the notebook does)."""
    kh, kw = _pair(kernel_size)
    b, _, ho, wo = offset.shape
    k = kh * kw
    off = offset.view(b, -1, k, 2, ho, wo)
    gy, gx = _tap_grid(ho, wo, kh, kw, _pair(stride), _pair(padding), _pair(dilation),
                       offset.device, offset.dtype)
    return torch.stack([gy + off[:, :, :, 0], gx + off[:, :, :, 1]], dim=-1)


def deform_conv2d(input: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None = None,
                  stride=1, padding=0, dilation=1, mask: Tensor | None = None,
                  backend: str = "auto") -> Tensor:
    """Deformable 2-D convolution with the signature of :func:`torchvision.ops.deform_conv2d`.

    ``backend``: ``"auto"`` (torchvision's kernel on CUDA, grid_sample + matmul elsewhere),
    ``"grid_sample"`` or ``"torchvision"``.
    """
    if backend not in ("auto", "grid_sample", "torchvision"):
        raise ValueError(f"backend must be 'auto', 'grid_sample' or 'torchvision', got {backend!r}")
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    if backend == "torchvision" or (backend == "auto" and input.is_cuda):
        return tv_deform_conv2d(input, offset, weight, bias, stride=stride, padding=padding,
                                dilation=dilation, mask=mask)
    b, c, h, w = input.shape
    c_out, c_per_group, kh, kw = weight.shape
    k = kh * kw
    if c % c_per_group:
        raise ValueError(f"input has {c} channels, not a multiple of weight.shape[1]={c_per_group}")
    groups = c // c_per_group
    ho, wo = offset.shape[-2:]
    exp_ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    exp_wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if (ho, wo) != (exp_ho, exp_wo):
        raise ValueError(f"offset spatial size {(ho, wo)} != output size {(exp_ho, exp_wo)}")
    if offset.shape[1] % (2 * k):
        raise ValueError(f"offset has {offset.shape[1]} channels, not a multiple of 2*kh*kw={2 * k}")
    og = offset.shape[1] // (2 * k)
    if c % og:
        raise ValueError(f"input channels {c} not divisible by offset groups {og}")

    # 1. where each tap reads, in grid_sample's normalised coordinates (align_corners=False:
    #    pixel centre i maps to (2i + 1) / size - 1, valid for any size including 1).
    off = offset.view(b, og, k, 2, ho, wo)
    gy, gx = _tap_grid(ho, wo, kh, kw, stride, padding, dilation, input.device, input.dtype)
    py = (gy + off[:, :, :, 0]) * (2.0 / h) + (1.0 / h - 1.0)
    px = (gx + off[:, :, :, 1]) * (2.0 / w) + (1.0 / w - 1.0)
    grid = torch.stack([px, py], dim=-1).view(b * og, k * ho, wo, 2)

    # 2. bilinear samples of every tap (zeros outside), then the DCNv2 mask.
    cols = F.grid_sample(input.reshape(b * og, c // og, h, w), grid, mode="bilinear",
                         padding_mode="zeros", align_corners=False)       # [B*G, C/G, K*Ho, Wo]
    cols = cols.view(b, og, c // og, k, ho * wo)
    if mask is not None:
        cols = cols * mask.view(b, og, 1, k, ho * wo)

    # 3. one matmul per weight group: [C_out/g, C/g*K] @ [C/g*K, Ho*Wo].
    cols = cols.reshape(b, groups, c_per_group * k, ho * wo)
    out = torch.matmul(weight.reshape(groups, c_out // groups, c_per_group * k), cols)
    out = out.reshape(b, c_out, ho, wo)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


class DeformConv2d(nn.Module):
    """Drop-in for :class:`torchvision.ops.DeformConv2d` (same parameters and state-dict keys),
    computed with :func:`deform_conv2d` (fast on CPU, torchvision's kernel on CUDA)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, backend: str = "auto"):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels {in_channels} and out_channels {out_channels} must be "
                             f"divisible by groups {groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation = _pair(padding), _pair(dilation)
        self.groups, self.backend = groups, backend
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups,
                                               *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight[0].numel()
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor, offset: Tensor, mask: Tensor | None = None) -> Tensor:
        return deform_conv2d(input, offset, self.weight, self.bias, stride=self.stride,
                             padding=self.padding, dilation=self.dilation, mask=mask,
                             backend=self.backend)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, padding={self.padding}")
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")
