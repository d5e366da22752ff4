"""FCN / DeepLabV3 / U-Net of paper 004: shapes, channels, output stride 8, ResNet-50 layout."""
import pytest
import torch
from torchvision.models.resnet import Bottleneck

from defectlib.models.seg_baselines import ARCHITECTURES, build_seg_baseline, output_stride


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_one_logit_map_at_input_size(arch, in_channels):
    torch.manual_seed(0)
    model = build_seg_baseline(arch, in_channels=in_channels).eval()
    with torch.no_grad():
        out = model(torch.rand(1, in_channels, 64, 96))
    assert out.shape == (1, 1, 64, 96)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ["fcn", "deeplabv3"])
def test_dilated_resnet50_layout_output_stride_8(arch):
    model = build_seg_baseline(arch)
    assert output_stride(model, 64) == 8
    body = model.net.backbone
    blocks = [len(getattr(body, f"layer{i}")) for i in range(1, 5)]
    assert blocks == [3, 4, 6, 3]                                 # "ResNet-34 with bottleneck blocks"
    assert isinstance(body.layer4[0], Bottleneck)
    assert body.layer4[1].conv2.dilation == (4, 4) and body.layer3[1].conv2.dilation == (2, 2)
    assert model.net.aux_classifier is None


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_seg_baseline("segformer")
