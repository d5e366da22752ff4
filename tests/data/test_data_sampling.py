"""Class-balanced batches, crop schedule + dark-crop rejection, intensity-biased crop, exposure
stacking, tiling and stitching."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from defectlib.data.sampling import (ClassBalancedBatchSampler, RandomCropDataset, crop_size_for_epoch,
                                     defect_biased_crop, exposure_stack, intensity_biased_crop, pad_to_multiple,
                                     primary_labels, stitch, tile)


def test_balanced_batches_with_clean_as_a_class():
    labels = ["clean"] * 500 + [1] * 40 + [3] * 10 + [4] * 2
    s = ClassBalancedBatchSampler(labels, batch_size=8, num_batches=100, seed=0)
    counts = Counter(labels[i] for batch in s for i in batch)
    assert all(len(b) == 8 for b in s) and len(s) == 100
    assert set(counts) == {"clean", 1, 3, 4}
    assert all(190 <= c <= 210 for c in counts.values()), counts  # 800 draws / 4 classes
    s2 = ClassBalancedBatchSampler(labels, batch_size=8, num_batches=100, seed=0)
    assert list(s2) == list(ClassBalancedBatchSampler(labels, 8, 100, seed=0))


def test_primary_label_is_rarest_present():
    assert primary_labels([[], [3], [1, 3], [3, 4], [3]]) == [0, 3, 1, 4, 3]


class _Strip(torch.utils.data.Dataset):
    """One 64x400 'strip', dark except columns 300..399."""
    def __len__(self):
        return 4

    def __getitem__(self, i):
        img = torch.zeros(1, 64, 400)
        img[..., 300:] = 0.8
        return img, (img > 0).float()


def test_crop_schedule_and_dark_rejection():
    assert [crop_size_for_epoch(e) for e in range(3)] == [(256, 384), (256, 512), (256, 384)]
    ds = RandomCropDataset(_Strip(), sizes=[(64, 64), (64, 96)], dark_threshold=0.5, max_tries=200)
    img, mask = ds[0]
    assert img.shape == (1, 64, 64) and img.mean() >= 0.5 and torch.equal(mask, (img > 0).float())
    ds.set_epoch(1)
    assert ds[2][0].shape == (1, 64, 96)
    no_reject = RandomCropDataset(_Strip(), sizes=[(64, 64)], dark_threshold=None)
    means = [float(no_reject[i][0].mean()) for i in range(4) for no_reject.epoch in range(5)]
    assert min(means) < 0.5  # without rejection dark crops do occur


def test_intensity_biased_crop_centres_on_bright_pixels():
    img = torch.zeros(1, 300, 300)
    img[0, 250, 40] = 1.0
    mask = img.clone()
    for seed in range(5):
        c, m = intensity_biased_crop(img, mask, size=(64, 64), rng=np.random.default_rng(seed))
        assert c.shape == (1, 64, 64) and c.sum() == 1 and torch.equal(c, m)
    small = intensity_biased_crop(torch.ones(1, 20, 30), size=(32, 32))
    assert small.shape == (1, 32, 32) and small.sum() == 600


def test_exposure_stack():
    x = torch.tensor([0.1, 0.3, 0.6]).reshape(1, 1, 3)
    out = exposure_stack(x)
    assert out.shape == (3, 1, 3)
    assert torch.allclose(out[:, 0], torch.tensor([[0.1, 0.3, 0.6], [0.2, 0.6, 1.0], [0.4, 1.0, 1.0]]))


@pytest.mark.parametrize("shape, tile_size, overlap", [((1, 300, 700), (128, 160), 0),
                                                       ((3, 300, 700), (128, 160), 16),
                                                       ((1, 100, 100), (352, 416), 0)])
def test_tile_and_stitch_are_inverse(shape, tile_size, overlap):
    x = torch.rand(shape)
    patches, info = tile(x, tile_size, overlap)
    assert patches.shape[1:] == (shape[0], *tile_size)
    assert torch.allclose(stitch(patches, info), x)
    assert pad_to_multiple(x, 96).shape[-2:] == tuple(-(-s // 96) * 96 for s in shape[-2:])


def test_defect_biased_crop_holds_the_defect_and_jitters_it():
    img = torch.rand(1, 200, 300)
    mask = torch.zeros(1, 200, 300)
    mask[:, 150:153, 40:44] = 1                                  # one 3x4 defect, 0.02 % of the image
    centres = set()
    for seed in range(40):
        c, m = defect_biased_crop(img, mask, (64, 64), np.random.default_rng(seed), jitter=0.25)
        assert c.shape == m.shape == (1, 64, 64) and m.sum() >= 1  # jitter 16 px < 32: always inside
        ys, xs = torch.nonzero(m[0], as_tuple=True)
        centres.add((int(ys.float().mean()), int(xs.float().mean())))
        hit = torch.nonzero((img[0].unfold(0, 64, 1).unfold(1, 64, 1) == c[0]).flatten(2).all(-1))
        assert len(hit) == 1 and torch.equal(mask[..., hit[0, 0]:hit[0, 0] + 64, hit[0, 1]:hit[0, 1] + 64], m)
    assert len(centres) > 10                                     # not always in the middle
    # an empty mask: a uniform crop; an image smaller than the crop: zero-padded
    c, m = defect_biased_crop(img, torch.zeros_like(mask), (64, 64), np.random.default_rng(0))
    assert c.shape == (1, 64, 64) and m.sum() == 0
    c, m = defect_biased_crop(torch.ones(1, 20, 30), torch.ones(1, 20, 30), (32, 32), np.random.default_rng(0))
    assert c.shape == (1, 32, 32) and c.sum() == 600 and m.sum() == 600
