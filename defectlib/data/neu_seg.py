"""NEU-Seg: 200x200 hot-rolled steel images with class-index masks (inclusion, patches, scratches).

Usually cited as the segmentation set of H. Dong et al., "PGA-Net", IEEE TII 16(12), 2020.
Layout: ``images/{training,test}/<id>.jpg`` + ``annotations/{training,test}/<id>.png``; mask values
0 background, 1 inclusion, 2 patches, 3 scratches (grey PNGs; a copy saved with a VOC colour
palette is read by its palette indices). 300 file names exist in BOTH splits as
different images, so samples are keyed ``<split>/<name>``. See SOURCE.md for its overlaps with
NEU-DET. Test images that near-duplicate a training image: 16 pairs are listed in SOURCE.md's
``near_duplicates.txt``; ``defectlib data check`` finds 22 at the same threshold (mean absolute grey
difference < 2.9), and :func:`~defectlib.data.splits.neu_seg_clean_test_ids` drops those 22.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import AnnotationError, DatasetNotFoundError
from .folder import PairedMasks, pair_folder, select_ids
from .masks import MaskRule

CLASSES = ("background", "inclusion", "patches", "scratches")
SPLIT_ALIASES = {"train": "training", "training": "training", "test": "test", "val": "test"}


class NEUSeg(PairedMasks):
    """``ds[i]`` -> ``(image [1,200,200], mask)``; mask int64 ``[H, W]`` class indices 0..3, or with
    ``binary=True`` float ``[1, H, W]`` (any defect). ``ids`` are ``"training/000201"`` style."""

    CLASSES = CLASSES

    def __init__(self, root, split: str = "training", binary: bool = False, transforms=None, ids=None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetNotFoundError(self.root, "NEU-Seg folder not found")
        if split not in SPLIT_ALIASES:
            raise ValueError(f"unknown NEU-Seg split {split!r}; choose 'training' or 'test'")
        split = SPLIT_ALIASES[split]
        items = pair_folder(self.root / "images" / split, self.root / "annotations" / split,
                            mask_ext=".png", id_prefix=f"{split}/")
        items = select_ids(items, ids, self.root)
        self.split, self.binary = split, binary
        # stored values are class indices: grey PNGs as they are, palette PNGs by their indices
        rule = MaskRule("index")
        if binary:
            super().__init__(items, transforms=transforms, mask_fn=_any_defect, rule=rule)
        else:
            super().__init__(items, transforms=transforms, mask_fn=self._index_mask, mask_dtype=torch.int64,
                             rule=rule)

    def _index_mask(self, m: np.ndarray) -> np.ndarray:  # a method, not a lambda: loader workers pickle it
        if m.max() >= len(CLASSES):
            raise AnnotationError(None, f"mask value {int(m.max())} is not a class index 0..3")
        return m

    def __getitem__(self, i: int):
        try:
            image, mask = super().__getitem__(i)
        except AnnotationError as exc:
            raise AnnotationError(self.mask_paths[i], exc.problem) from None
        return image, (mask if self.binary else mask[0])


def _any_defect(m: np.ndarray) -> np.ndarray:
    """Class indices -> 0/1 (any defect class). A module function, not a lambda: a dataset that
    loader workers started with "spawn" or "forkserver" receive must pickle."""
    return (m > 0).astype(np.uint8)
