"""U-Net encoders and the ResNet gate of paper 001: sizes pinned, one training step each, weights.

Oracle: segmentation_models_pytorch (a widely used U-Net library; the paper names none) builds the same U-Net;
parameter counts must agree, and with identical weights the ResNet34 U-Net must give identical
outputs. Without smp installed those comparisons skip; the pinned counts still run.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision

from defectlib.models.classifier import build_classifier, classifier_from_encoder
from defectlib.models.unet import ENCODERS, build_unet

# (encoder, num_classes, in_channels) -> parameters. Paper setting: 4 classes, grey input.
UNET_PARAMS = {
    ("resnet34", 4, 1): 24_430_532,
    ("resnet34", 4, 3): 24_436_804,
    ("resnet50", 4, 1): 32_515_268,
    ("efficientnet_b3", 4, 1): 12_565_852,
}
CLASSIFIER_PARAMS = {("resnet50", 1): 23_503_809, ("resnet34", 1): 21_278_913}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("key", list(UNET_PARAMS))
def test_unet_parameter_count_pinned(key):
    n = n_params(build_unet(*key))
    print(f"U-Net {key}: {n:,} parameters")
    assert n == UNET_PARAMS[key]


@pytest.mark.parametrize("key", list(CLASSIFIER_PARAMS))
def test_classifier_parameter_count_pinned(key):
    n = n_params(build_classifier(*key))
    print(f"classifier {key}: {n:,} parameters")
    # = torchvision's network minus its 1000-way fc plus a 1-way one
    tv = n_params(getattr(torchvision.models, key[0])())
    fc_in = 2048 if key[0] == "resnet50" else 512
    grey_stem = 64 * (3 - key[1]) * 7 * 7  # conv1 loses (3 - in_channels) input planes
    assert n == tv - (fc_in * 1000 + 1000) + (fc_in + 1) - grey_stem
    assert n == CLASSIFIER_PARAMS[key]


@pytest.mark.parametrize("encoder,smp_name", [("resnet34", "resnet34"), ("resnet50", "resnet50"),
                                              ("efficientnet_b3", "timm-efficientnet-b3")])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # smp: "timm-" encoder names
def test_unet_parameter_count_matches_smp(encoder, smp_name):
    smp = pytest.importorskip("segmentation_models_pytorch")
    ours = build_unet(encoder, 4, 1)
    theirs = smp.Unet(smp_name, encoder_weights=None, classes=4, in_channels=1)
    expected = n_params(theirs)
    if encoder == "efficientnet_b3":  # smp keeps timm's 1x1 conv_head + bn2, never used in forward
        expected -= sum(p.numel() for n, p in theirs.encoder.named_parameters()
                        if n.startswith(("conv_head.", "bn2.")))
    assert n_params(ours) == expected


def test_unet_resnet34_same_function_as_smp():
    smp = pytest.importorskip("segmentation_models_pytorch")
    torch.manual_seed(0)
    ours = build_unet("resnet34", 4, 1).eval()
    theirs = smp.Unet("resnet34", encoder_weights=None, classes=4, in_channels=1).eval()
    src, dst = list(theirs.state_dict().values()), ours.state_dict()
    assert [tuple(v.shape) for v in src] == [tuple(v.shape) for v in dst.values()]
    ours.load_state_dict(dict(zip(dst.keys(), src)))
    x = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-5)   # other modules: rounding differs


@pytest.mark.parametrize("encoder", ENCODERS)
def test_unet_any_size_and_one_training_step(encoder):
    torch.manual_seed(0)
    model = build_unet(encoder, num_classes=3, in_channels=1)
    with torch.no_grad():  # NEU-Seg is 200x200: not a multiple of 32
        assert model.eval()(torch.rand(1, 1, 200, 200)).shape == (1, 3, 200, 200)
    model.train()
    x, y = torch.rand(2, 1, 64, 96), (torch.rand(2, 3, 64, 96) > 0.9).float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = model.head.weight.detach().clone()
    loss = F.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())  # every stage is used
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.head.weight)


def test_classifier_one_logit_per_image_and_step():
    torch.manual_seed(0)
    model = build_classifier("resnet50", in_channels=1)
    x, y = torch.rand(2, 1, 64, 160), torch.tensor([1.0, 0.0])
    logits = model(x)
    assert logits.shape == (2,)
    loss = F.binary_cross_entropy_with_logits(logits, y)
    loss.backward()
    torch.optim.Adam(model.parameters(), 1e-3).step()
    p = model.predict_proba(x)
    assert p.shape == (2,) and ((p > 0) & (p < 1)).all()


def test_local_state_dict_weights(tmp_path):
    torch.manual_seed(1)
    tv = torchvision.models.resnet34()
    path = tmp_path / "resnet34.pth"
    torch.save({k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}, path)
    grey = build_unet("resnet34", 4, in_channels=1, weights=str(path))
    stem, layer4 = grey.encoder.stages[0][0], grey.encoder.stages[4]
    torch.testing.assert_close(stem.weight, tv.conv1.weight.sum(1, keepdim=True))
    torch.testing.assert_close(layer4[0].conv1.weight, tv.layer4[0].conv1.weight)
    # a grey image fed as 1 channel == the same image as R=G=B into the RGB weights
    rgb = build_unet("resnet34", 4, in_channels=3, weights=tv.state_dict())
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():  # a 1-channel stem vs 3 channels: other convolution shapes, rounding differs
        torch.testing.assert_close(grey.encoder.eval()(x)[0],
                                   rgb.encoder.eval()(x.expand(1, 3, 64, 64))[0], rtol=1e-4, atol=1e-5)
    cls = build_classifier("resnet34", 1, weights=path)
    torch.testing.assert_close(cls.trunk[4][0].conv1.weight, tv.layer1[0].conv1.weight)


def test_bad_weights_and_names_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_unet("resnet34", weights=tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="do not match"):
        build_unet("resnet34", weights=torchvision.models.resnet50().state_dict())
    with pytest.raises(ValueError, match="unknown encoder"):
        build_unet("vgg16")
    with pytest.raises(ValueError, match="unknown classifier"):
        build_classifier("vgg16")


@pytest.mark.parametrize("name", ["resnet34", "efficientnet_b3"])
def test_classifier_from_encoder_starts_from_the_unet_and_owns_its_weights(name):
    torch.manual_seed(0)
    unet = build_unet(name, 5, in_channels=1).eval()
    gate = classifier_from_encoder(unet.encoder).eval()
    x = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        deepest = unet.encoder(x)[-1]
        expected = gate.fc(deepest.mean((2, 3))).squeeze(1)
        torch.testing.assert_close(gate(x), expected)   # default tolerance: the gate pools with its own kernel
    if name == "resnet34":    # the same layers build_classifier makes: its weights load one-to-one
        ref = build_classifier("resnet34", in_channels=1)
        assert [p.shape for p in ref.trunk.parameters()] == [p.shape for p in gate.trunk.parameters()]
    # a copy: training the gate leaves the U-Net as it was
    before = [p.clone() for p in unet.encoder.parameters()]
    gate.train()
    F.binary_cross_entropy_with_logits(gate(x), torch.tensor([1.0, 0.0])).backward()
    torch.optim.SGD(gate.parameters(), lr=1.0).step()
    assert all(torch.equal(a, b) for a, b in zip(before, unet.encoder.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(before, gate.trunk.parameters()))

