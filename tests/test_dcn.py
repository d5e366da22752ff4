"""defectlib.models.dcn against torchvision.ops.deform_conv2d (the oracle): forward and every
gradient (input, offset, mask, weight, bias) to relative error 1e-5, DCNv1 and DCNv2, random
offsets that reach outside the image, strides, dilations, weight groups and offset groups."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.ops import deform_conv2d as tv_deform_conv2d

from defectlib.models.dcn import DeformConv2d, deform_conv2d, sampling_positions

RTOL = 1e-5

# (B, C_in, H, W, C_out, kernel, stride, padding, dilation, groups, offset_groups)
CASES = [
    (2, 8, 11, 9, 6, 3, 1, 1, 1, 1, 1),
    (2, 8, 12, 10, 6, 3, 2, 1, 1, 2, 2),
    (1, 4, 9, 9, 4, 3, 1, 2, 2, 1, 4),
    (2, 6, 1, 5, 3, 3, 1, 1, 1, 3, 1),       # a 1-pixel-high input
    (1, 4, 8, 7, 5, (3, 2), (2, 1), (1, 0), 1, 1, 2),   # non-square kernel, stride, padding
]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


@pytest.mark.parametrize("modulated", [False, True], ids=["DCNv1", "DCNv2"])
@pytest.mark.parametrize("case", CASES)
def test_forward_and_gradients_equal_torchvision(case, modulated):
    b, c, h, w, c_out, k, s, p, d, g, og = case
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _pair(k), _pair(s), _pair(p), _pair(d)
    gen = torch.Generator().manual_seed(hash((case, modulated)) % 2**31)
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    x = torch.randn(b, c, h, w, generator=gen).requires_grad_()
    weight = torch.randn(c_out, c // g, kh, kw, generator=gen).requires_grad_()
    bias = torch.randn(c_out, generator=gen).requires_grad_()
    # offsets of a few pixels: many taps land between pixels and some outside the image
    offset = (3 * torch.randn(b, 2 * og * kh * kw, ho, wo, generator=gen)).requires_grad_()
    mask = torch.rand(b, og * kh * kw, ho, wo, generator=gen).requires_grad_() if modulated else None
    grad_out = torch.randn(b, c_out, ho, wo, generator=gen)
    inputs = [x, offset, weight, bias] + ([mask] if modulated else [])
    results = []
    for fn in (tv_deform_conv2d, deform_conv2d):
        out = fn(x, offset, weight, bias, stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw),
                 mask=mask)
        results.append([out, *torch.autograd.grad(out, inputs, grad_out)])
    names = ["output", "d_input", "d_offset", "d_weight", "d_bias", "d_mask"]
    for name, ours, ref in zip(names, results[1], results[0]):
        assert ours.shape == ref.shape, name
        assert rel_err(ours, ref) <= RTOL, f"{name}: relative error {rel_err(ours, ref):.2e}"


def test_zero_offsets_equal_a_regular_convolution():
    torch.manual_seed(0)
    x, weight = torch.randn(2, 5, 10, 10), torch.randn(7, 5, 3, 3)
    offset = torch.zeros(2, 18, 5, 5)
    out = deform_conv2d(x, offset, weight, stride=2, padding=1)
    assert rel_err(out, F.conv2d(x, weight, stride=2, padding=1)) <= RTOL


def test_integer_offsets_shift_the_taps():
    """An offset of exactly (+1, 0) on every tap reads the row below: conv of the shifted image."""
    torch.manual_seed(0)
    x, weight = torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3)
    offset = torch.zeros(1, 18, 8, 8)
    offset[:, 0::2] = 1.0                                    # dy = +1 on all 9 taps
    out = deform_conv2d(x, offset, weight, padding=1)
    # the same as padding 0 rows on top and 2 below instead of 1 and 1
    assert rel_err(out, F.conv2d(F.pad(x, (1, 1, 0, 2)), weight)) <= RTOL


def test_module_is_a_drop_in_for_torchvision_module():
    torch.manual_seed(0)
    ours = DeformConv2d(6, 4, 3, stride=1, padding=1, groups=2, bias=True)
    ref = torchvision.ops.DeformConv2d(6, 4, 3, stride=1, padding=1, groups=2, bias=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in ref.state_dict().items()}
    ref.load_state_dict(ours.state_dict())
    x, offset = torch.randn(2, 6, 7, 7), torch.randn(2, 18, 7, 7)
    mask = torch.rand(2, 9, 7, 7)
    assert rel_err(ours(x, offset, mask), ref(x, offset, mask)) <= RTOL
    assert DeformConv2d(6, 4, 3, bias=False).bias is None
    assert "groups=2" in repr(ours)


def test_backends_and_errors():
    torch.manual_seed(0)
    x, weight, offset = torch.randn(1, 4, 6, 6), torch.randn(2, 4, 3, 3), torch.randn(1, 18, 6, 6)
    a = deform_conv2d(x, offset, weight, padding=1, backend="torchvision")
    b = deform_conv2d(x, offset, weight, padding=1, backend="grid_sample")
    assert rel_err(b, a) <= RTOL
    with pytest.raises(ValueError, match="backend"):
        deform_conv2d(x, offset, weight, padding=1, backend="cuda-magic")
    with pytest.raises(ValueError, match="offset spatial size"):
        deform_conv2d(x, offset, weight, padding=0)
    with pytest.raises(ValueError, match="multiple of 2\\*kh\\*kw"):
        deform_conv2d(x, offset[:, :10], weight, padding=1)
    with pytest.raises(ValueError, match="divisible by groups"):
        DeformConv2d(5, 4, 3, groups=2)


def test_sampling_positions_regular_grid_at_zero_offset():
    pos = sampling_positions(torch.zeros(1, 18, 4, 4), 3, stride=1, padding=1)
    assert pos.shape == (1, 1, 9, 4, 4, 2)
    # tap 0 is the top-left neighbour (-1, -1) of every output pixel, tap 4 the pixel itself
    assert torch.equal(pos[0, 0, 4, 2, 3], torch.tensor([2.0, 3.0]))
    assert torch.equal(pos[0, 0, 0, 2, 3], torch.tensor([1.0, 2.0]))
