"""MTD: Magnetic Tile Defects (Y. Huang, C. Qiu, K. Yuan, The Visual Computer 36, 2020).

Layout (authors' repository): ``MT_<class>/Imgs/<id>.jpg`` + ``<id>.png`` in the same folder, for
classes Blowhole, Break, Crack, Fray, Uneven and Free (defect-free). 1344 pairs, 952 of them Free.
Masks are not strictly binary (JPEG-like edge values): binarised with ``mask > 127``. Image sizes
vary (ROI crops). Used by paper 004 as a real planar set and by the clean/defective gate.
"""
from __future__ import annotations

from pathlib import Path

from .errors import DatasetNotFoundError, EmptyDatasetError
from .folder import PairedMasks, pair_folder, select_ids

#: index 0 is the clean class
CLASSES = ("Free", "Blowhole", "Break", "Crack", "Fray", "Uneven")


class MTD(PairedMasks):
    """``ds[i]`` -> ``(image [1,H,W], mask float [1,H,W] in {0,1})``, or with ``with_label=True``
    ``(image, mask, label)`` where ``label`` indexes :data:`CLASSES` (0 = Free = clean).

    ``classes`` restricts the folders read; ``ids`` (``"MT_Crack/exp1_num_4"`` style) the samples.
    ``self.labels`` / ``self.defective`` give every image's class without decoding anything.
    """

    CLASSES = CLASSES

    def __init__(self, root, classes=None, transforms=None, with_label: bool = False, ids=None,
                 threshold: int = 127):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetNotFoundError(self.root, "MTD folder not found")
        wanted = list(classes) if classes is not None else list(CLASSES)
        unknown = [c for c in wanted if c not in CLASSES]
        if unknown:
            raise ValueError(f"unknown MTD classes {unknown}; choose from {CLASSES}")
        folders = [c for c in wanted if (self.root / f"MT_{c}").is_dir()]
        if not folders:
            raise EmptyDatasetError(self.root, "no MT_<class>/Imgs folders found "
                                               "(expected e.g. MT_Free/Imgs, MT_Crack/Imgs)")
        items = []
        for c in folders:
            items += pair_folder(self.root / f"MT_{c}" / "Imgs", mask_ext=".png",
                                 id_prefix=f"MT_{c}/", label=CLASSES.index(c))
        items = select_ids(items, ids, self.root)
        super().__init__(items, transforms=transforms, threshold=threshold, with_label=with_label)

    @property
    def defective(self) -> list[bool]:
        return [lab != 0 for lab in self.labels]
