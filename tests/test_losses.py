"""Losses: hand-computed values, torchvision/torch references and gradcheck in double precision."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal_loss

from defectlib.losses import (BCEDiceLoss, BCEIoULoss, DeepSupervisionLoss, DiceLoss, FocalLoss, SoftIoULoss,
                              TverskyLoss, focal_loss, sigmoid_focal_loss)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_focal_hand_computed():
    # p_t = 0.9 for the true class: FL = -0.25 * (1 - 0.9)^2 * log(0.9)
    logits = torch.log(torch.tensor([[0.9, 0.05, 0.05]]))
    expected = -0.25 * 0.1**2 * math.log(0.9)
    assert focal_loss(logits, torch.tensor([0]), alpha=0.25, gamma=2).item() == pytest.approx(expected, rel=1e-5)
    x = torch.tensor([2.0])  # binary, y = 1: p_t = sigmoid(2)
    p = 1 / (1 + math.exp(-2))
    assert sigmoid_focal_loss(x, torch.ones(1)).item() == pytest.approx(-0.25 * (1 - p) ** 2 * math.log(p), rel=1e-5)


def test_focal_reduces_to_cross_entropy(gen):
    logits = torch.randn(32, 7, generator=gen)
    y = torch.randint(0, 7, (32,), generator=gen)
    torch.testing.assert_close(focal_loss(logits, y, alpha=1.0, gamma=0), F.cross_entropy(logits, y))
    torch.testing.assert_close(focal_loss(logits, y, alpha=0.5, gamma=0), 0.5 * F.cross_entropy(logits, y))
    w = torch.rand(7, generator=gen)
    torch.testing.assert_close(focal_loss(logits, y, alpha=w, gamma=0, reduction="none"),
                               F.cross_entropy(logits, y, weight=w, reduction="none"))
    # RetinaNet's split with a background class: alpha on objects, 1 - alpha on background
    w_bg = torch.full((7,), 0.25)
    w_bg[0] = 0.75
    torch.testing.assert_close(focal_loss(logits, y, alpha=0.25, gamma=0, background=0, reduction="none"),
                               F.cross_entropy(logits, y, weight=w_bg, reduction="none"))
    x = torch.randn(4, 1, 8, 8, generator=gen)
    t = (torch.rand(4, 1, 8, 8, generator=gen) > 0.7).float()
    torch.testing.assert_close(sigmoid_focal_loss(x, t, alpha=0.5, gamma=0),
                               0.5 * F.binary_cross_entropy_with_logits(x, t))
    # focusing shrinks every term: FL <= CE, most for the easy (confident, right) examples
    fl = focal_loss(logits, y, alpha=1.0, gamma=2, reduction="none")
    assert (fl <= F.cross_entropy(logits, y, reduction="none") + 1e-7).all()


def test_sigmoid_focal_equals_torchvision(gen):
    x = torch.randn(3, 5, 6, generator=gen) * 3
    t = (torch.rand(3, 5, 6, generator=gen) > 0.5).float()
    for alpha, gamma in [(0.25, 2.0), (0.6, 1.0), (-1, 2.0)]:
        ref = tv_sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction="mean")
        torch.testing.assert_close(sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma), ref)
    assert FocalLoss(mode="binary")(x, t).item() == pytest.approx(tv_sigmoid_focal_loss(x, t, reduction="mean").item())


def test_overlap_losses_hand_computed():
    p = torch.tensor([1.0, 0, 1, 0]).view(1, 1, 2, 2)  # probabilities
    g = torch.tensor([1.0, 1, 0, 0]).view(1, 1, 2, 2)  # TP 1, FP 1, FN 1
    assert DiceLoss(smooth=0, from_logits=False)(p, g).item() == pytest.approx(0.5)
    assert SoftIoULoss(smooth=0, from_logits=False)(p, g).item() == pytest.approx(1 - 1 / 3)
    assert TverskyLoss(alpha=0.3, smooth=0, from_logits=False)(p, g).item() == pytest.approx(0.5)
    many_fp = torch.tensor([1.0, 1, 1, 0]).view(1, 1, 2, 2)
    one = torch.tensor([1.0, 0, 0, 0]).view(1, 1, 2, 2)
    tv = TverskyLoss(alpha=0.3, smooth=0, from_logits=False)
    # paper 001 Eq. 3: alpha on FN, 1 - alpha = 0.7 on FP -> two FPs cost more than two FNs
    assert tv(many_fp, one).item() == pytest.approx(1 - 1 / (1 + 0.7 * 2))
    assert tv(one, many_fp).item() == pytest.approx(1 - 1 / (1 + 0.3 * 2))
    # alpha = 0.5 is Dice (Dice's smoothing s matches Tversky's s / 2)
    x, y = torch.randn(2, 3, 5, 5), (torch.rand(2, 3, 5, 5) > 0.5).float()
    torch.testing.assert_close(TverskyLoss(alpha=0.5, smooth=0.5)(x, y), DiceLoss(smooth=1.0)(x, y))
    torch.testing.assert_close(TverskyLoss(alpha=0.5, smooth=0)(x, y), DiceLoss(smooth=0)(x, y))


def test_pooling_and_composites(gen):
    x = torch.randn(2, 4, 6, 6, generator=gen)
    y = (torch.rand(2, 4, 6, 6, generator=gen) > 0.6).float()
    p = torch.sigmoid(x)
    pooled = 1 - ((2 * (p * y).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + y.sum((1, 2, 3)) + 1)).mean()
    torch.testing.assert_close(DiceLoss(pool="image")(x, y), pooled)
    torch.testing.assert_close(BCEDiceLoss()(x, y), F.binary_cross_entropy_with_logits(x, y) + DiceLoss()(x, y))
    torch.testing.assert_close(BCEIoULoss()(x, y), F.binary_cross_entropy_with_logits(x, y) + SoftIoULoss()(x, y))


def test_deep_supervision_weights_and_upsampling(gen):
    target = (torch.rand(2, 1, 16, 16, generator=gen) > 0.7).float()
    maps = [torch.randn(2, 1, s, s, generator=gen) for s in (16, 16, 8, 4)]
    loss, parts = DeepSupervisionLoss()(maps, target, return_parts=True)
    hyb = BCEIoULoss()
    up = [m if m.shape[-1] == 16 else F.interpolate(m, size=(16, 16), mode="bilinear", align_corners=False)
          for m in maps]
    expected = hyb(up[0], target) + hyb(up[1], target) + hyb(up[2], target) / 2 + hyb(up[3], target) / 4
    torch.testing.assert_close(loss, expected)
    assert len(parts) == 4
    with pytest.raises(ValueError, match="side outputs"):
        DeepSupervisionLoss()(maps[:3], target)


def test_gradcheck_double(gen):
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    y = (torch.rand(2, 2, 4, 4, generator=gen) > 0.5).double()
    logits = torch.randn(6, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    labels = torch.randint(0, 4, (6,), generator=gen)
    maps = [torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=gen, requires_grad=True) for _ in range(4)]
    checks = [
        (lambda a: focal_loss(a, labels, alpha=0.25, gamma=2.0), (logits,)),
        (lambda a: focal_loss(a, labels, alpha=[0.1, 0.2, 0.3, 0.4], gamma=1.5), (logits,)),
        (lambda a: sigmoid_focal_loss(a, y), (x,)),
        (lambda a: DiceLoss()(a, y), (x,)),
        (lambda a: BCEDiceLoss()(a, y), (x,)),
        (lambda a: TverskyLoss(0.3)(a, y), (x,)),
        (lambda a: SoftIoULoss()(a, y), (x,)),
        (lambda *m: DeepSupervisionLoss()(list(m), y[:, :1]), tuple(maps)),
    ]
    for fn, inputs in checks:
        assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


def test_bad_input_messages():
    with pytest.raises(ValueError, match="classes"):
        focal_loss(torch.randn(3, 4), torch.tensor([0, 1, 2]), alpha=[0.5, 0.5])
    with pytest.raises(ValueError, match="shape"):
        DiceLoss()(torch.randn(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="alpha"):
        TverskyLoss(alpha=1.5)


def test_agrees_with_the_danet_box_classifier_loss(gen):
    danet = pytest.importorskip("defectlib.models.danet")
    logits = torch.randn(40, 7, generator=gen)
    y = torch.randint(0, 7, (40,), generator=gen)
    torch.testing.assert_close(focal_loss(logits, y, alpha=0.25, gamma=2.0, background=0),
                               danet.softmax_focal_loss(logits, y, 0.25, 2.0))
