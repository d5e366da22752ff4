"""CBAM (Eqs. 3-6) against a direct numpy transcription of the equations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from defectlib.models.cbam import CBAM, ChannelAttention, SpatialAttention


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def channel_ref(f, w0, w1):
    """Eq. 5: sigmoid(W1 relu(W0 avg) + W1 relu(W0 max)), f [B, C, H, W] -> [B, C]."""
    avg, mx = f.mean(axis=(2, 3)), f.max(axis=(2, 3))
    mlp = lambda v: np.maximum(v @ w0.T, 0) @ w1.T  # noqa: E731
    return sigmoid(mlp(avg) + mlp(mx))


def spatial_ref(f, k):
    """Eq. 6: sigmoid(conv7x7([mean_c; max_c])) with zero padding, by explicit loops."""
    b, _, h, w = f.shape
    pooled = np.stack([f.mean(axis=1), f.max(axis=1)], axis=1)    # [B, 2, H, W]
    r = k.shape[-1] // 2
    padded = np.pad(pooled, ((0, 0), (0, 0), (r, r), (r, r)))
    out = np.zeros((b, h, w))
    for i in range(h):
        for j in range(w):
            out[:, i, j] = (padded[:, :, i:i + 2 * r + 1, j:j + 2 * r + 1] * k[0]).sum(axis=(1, 2, 3))
    return sigmoid(out)


@pytest.fixture
def feature():
    torch.manual_seed(0)
    return torch.randn(2, 32, 9, 11, dtype=torch.float64)


def test_channel_attention_is_eq5(feature):
    ca = ChannelAttention(32, reduction=16).double()
    w0, w1 = ca.mlp[0].weight.detach().numpy(), ca.mlp[2].weight.detach().numpy()
    assert w0.shape == (2, 32) and w1.shape == (32, 2)          # C/r hidden units
    got = ca(feature).detach().numpy()
    assert got.shape == (2, 32, 1, 1)
    np.testing.assert_allclose(got[:, :, 0, 0], channel_ref(feature.numpy(), w0, w1), rtol=1e-12)


def test_spatial_attention_is_eq6(feature):
    sa = SpatialAttention(7).double()
    got = sa(feature).detach().numpy()
    assert got.shape == (2, 1, 9, 11)
    np.testing.assert_allclose(got[:, 0], spatial_ref(feature.numpy(), sa.conv.weight.detach().numpy()),
                               rtol=1e-10)


def test_cbam_applies_channel_then_spatial(feature):
    m = CBAM(32, reduction=8).double()
    f = feature.numpy()
    mc = channel_ref(f, m.channel.mlp[0].weight.detach().numpy(), m.channel.mlp[2].weight.detach().numpy())
    f1 = f * mc[:, :, None, None]                                   # Eq. 3
    ms = spatial_ref(f1, m.spatial.conv.weight.detach().numpy())
    f2 = f1 * ms[:, None]                                           # Eq. 4
    np.testing.assert_allclose(m(feature).detach().numpy(), f2, rtol=1e-10)
    got_mc, got_ms = m.attention_maps(feature)
    np.testing.assert_allclose(got_mc[:, :, 0, 0].numpy(), mc, rtol=1e-12)
    np.testing.assert_allclose(got_ms[:, 0].numpy(), ms, rtol=1e-10)
    assert 0 < got_ms.min() and got_ms.max() < 1


def test_cbam_trains():
    torch.manual_seed(0)
    m = CBAM(16, reduction=4)
    x = torch.randn(3, 16, 8, 8, requires_grad=True)
    m(x).square().mean().backward()
    assert x.grad is not None and all(p.grad is not None and p.grad.abs().sum() > 0
                                      for p in m.parameters())
