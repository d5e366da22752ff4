"""Real staged data (DEFECTLIB_DATA=../shared/datasets) loads completely; skipped when absent."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from defectlib.data import MTD, NEUDET, NEUSeg
from defectlib.data.io import read_gray

pytestmark = pytest.mark.realdata


def test_neu_det_loads_completely(real_dataset):
    ds = NEUDET(real_dataset("neu-det"))
    assert len(ds) == 1800
    assert ds.box_counts() == {"crazing": 689, "inclusion": 1011, "patches": 881, "pitted_surface": 432,
                               "rolled-in_scale": 628, "scratches": 548}
    n_boxes = 0
    for i in range(len(ds)):
        image, t = ds[i]
        assert image.shape == (1, 200, 200)
        n_boxes += len(t["boxes"])
    assert n_boxes == 4189
    # labels come from box names: 123 images hold boxes of another class than their file name,
    # e.g. 71 inclusion boxes in 49 scratches_* images
    from defectlib.data.neu_det import filename_class
    other = [(i, r) for i, r in zip(ds.ids, ds.records)
             if any(ds.CLASSES[k - 1] != filename_class(i) for k in r.labels)]
    assert len(other) == 123
    scratch_inclusion = [int((r.labels == 2).sum()) for i, r in other if i.startswith("scratches")]
    assert (sum(x > 0 for x in scratch_inclusion), sum(scratch_inclusion)) == (49, 71)


@pytest.mark.slow
def test_neu_seg_loads_completely(real_dataset):
    root = real_dataset("neu-seg")
    for split, n, present in (("training", 3630, (1460, 1448, 1429)), ("test", 840, (364, 360, 353))):
        ds = NEUSeg(root, split)
        assert len(ds) == n
        counts = np.zeros(4, int)
        for i in range(n):
            img, mask = ds[i]
            assert img.shape == (1, 200, 200) and mask.shape == (200, 200)
            counts[torch.unique(mask).numpy()] += 1
        assert tuple(counts[1:]) == present


@pytest.mark.slow
def test_mtd_loads_completely(real_dataset):
    ds = MTD(real_dataset("mtd"), with_label=True)
    assert len(ds) == 1344 and ds.labels.count(0) == 952
    empty_defective = 0
    for i in range(len(ds)):
        img, mask, label = ds[i]
        assert img.shape == mask.shape
        if label == 0:
            assert mask.sum() == 0
        elif mask.sum() == 0:
            empty_defective += 1
    assert empty_defective == 4  # the 4 MT_Uneven masks with no pixel > 127 (SOURCE.md)
