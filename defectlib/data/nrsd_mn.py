"""NRSD-MN: no-service rail surface defects, binary masks (D. Zhang et al., MCnet, IEEE TIM 70, 2021).

Used by paper 003 (OCINet): 2,086 man-made training images; test: 965 man-made + 165 natural.
The archive is password-protected (ask the MCnet authors), so the exact folder names of a copy
vary. The layout the OCINet authors' train/test scripts read is the default, and the layout the
project's stand-in is written in::

    nrsd-mn/2086/{img,gt}/            train       (man-made)
    nrsd-mn/1130/965/{img,gt}/        test-man-made
    nrsd-mn/1130/165/{img,gt}/        test-natural

Also accepted: ``train/``, ``test/man-made/``, ``test/natural/`` (each with ``img|images`` and
``gt|masks``). Images are ``.jpg`` or ``.png``, masks ``.png`` with 0 / 255 (binarised at > 127).
"""
from __future__ import annotations

from pathlib import Path

from .errors import DatasetNotFoundError
from .folder import PairedMasks, pair_folder

SPLITS = {
    "train": ("2086", "train", "training", "Train"),
    "test-man-made": ("1130/965", "test/man-made", "test/965", "test/MN", "man-made"),
    "test-natural": ("1130/165", "test/natural", "test/165", "natural"),
}
IMAGE_DIRS = ("img", "images", "Img", "Images", "image")
MASK_DIRS = ("gt", "masks", "GT", "Masks", "mask", "labels")


def split_dirs(root: Path, split: str) -> tuple[Path, Path]:
    """(image folder, mask folder) of ``split`` under ``root``; DatasetNotFoundError lists what was tried."""
    if split not in SPLITS:
        raise ValueError(f"unknown NRSD-MN split {split!r}; choose from {list(SPLITS)}")
    for sub in SPLITS[split]:
        base = root / sub
        img = next((base / d for d in IMAGE_DIRS if (base / d).is_dir()), None)
        gt = next((base / d for d in MASK_DIRS if (base / d).is_dir()), None)
        if img is not None and gt is not None:
            return img, gt
    tried = ", ".join(f"{s}/{{img,gt}}" for s in SPLITS[split])
    raise DatasetNotFoundError(root, f"NRSD-MN split {split!r} not found (tried {tried})")


class NRSDMN(PairedMasks):
    """``ds[i]`` -> ``(image float [1,H,W] in [0,1], mask float [1,H,W] in {0,1})``.

    ``split`` is ``"train"``, ``"test-man-made"`` or ``"test-natural"``; ids are ``<split>/<stem>``.
    """

    SPLITS = tuple(SPLITS)

    def __init__(self, root, split: str = "train", transforms=None, threshold: int = 127):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetNotFoundError(self.root, "NRSD-MN folder not found")
        img_dir, gt_dir = split_dirs(self.root, split)
        items = pair_folder(img_dir, gt_dir, id_prefix=f"{split}/", label=1)
        super().__init__(items, transforms=transforms, threshold=threshold)
        self.split = split
