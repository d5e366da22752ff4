"""RandomRot90 is exact for images, masks and boxes; affine/photometric pipelines keep masks binary;
drawing helpers touch only the boxes / mask pixels."""
from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors

from defectlib.data.transforms import RandomRot90, normalize_minus1_1, segmentation_train
from defectlib.viz import draw_boxes, draw_masks, show_grid, to_uint8


def _sample(h=40, w=64):
    mask = torch.zeros(1, h, w)
    mask[0, 5:12, 40:57] = 1
    box = tv_tensors.BoundingBoxes(torch.tensor([[40.0, 5.0, 57.0, 12.0]]), format="XYXY", canvas_size=(h, w))
    return tv_tensors.Image(torch.rand(1, h, w)), tv_tensors.Mask(mask), box


def _mask_box(mask):
    ys, xs = torch.nonzero(mask[0], as_tuple=True)
    return torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rot90_exact(k):
    image, mask, box = _sample()
    out_img, out_mask, out_box = RandomRot90(ks=(k,))(image, mask, box)
    assert torch.equal(out_img.as_subclass(torch.Tensor), torch.rot90(image, k, (-2, -1)).as_subclass(torch.Tensor))
    assert out_mask.shape[-2:] == out_img.shape[-2:] == ((40, 64) if k % 2 == 0 else (64, 40))
    assert torch.allclose(out_box.as_subclass(torch.Tensor), _mask_box(out_mask))
    assert tuple(out_box.canvas_size) == tuple(out_img.shape[-2:])


def test_affine_and_photometric_keep_masks_binary_and_images_in_range():
    torch.manual_seed(0)
    tf = segmentation_train(degrees=15, shift=0.1, brightness=0.3, contrast=0.3, rot90=True)
    for _ in range(5):
        image, mask, _ = _sample()
        out_img, out_mask = tf(image, mask)
        assert set(out_mask.unique().tolist()) <= {0.0, 1.0}
        assert 0 <= float(out_img.min()) and float(out_img.max()) <= 1
    x = normalize_minus1_1()(tv_tensors.Image(torch.tensor([[[0.0, 0.5, 1.0]]])))
    assert torch.allclose(x, torch.tensor([[[-1.0, 0.0, 1.0]]]))


def test_draw_boxes_and_overlay_touch_only_their_pixels():
    image, mask, box = _sample()
    drawn = draw_boxes(image, box, labels=[2], class_names=("a", "b"), scores=[0.9])
    base = to_uint8(image)
    assert drawn.dtype == torch.uint8 and drawn.shape == (3, 40, 64)
    changed = (drawn != base).any(0)
    assert changed[5, 45] and not changed[25, 10]
    over = draw_masks(image, mask)
    changed = (over != base).any(0)
    assert torch.equal(changed, mask[0] > 0)
    idx = torch.zeros(40, 64, dtype=torch.int64)
    idx[0:3, 0:3] = 2
    assert torch.equal((draw_masks(image, idx) != base).any(0), idx > 0)
    fig = show_grid([[drawn, image]], titles=[["boxes", "grey"]])
    assert len(fig.axes) == 2
