"""Image/mask pairs from folders: the shared base of NRSD-MN, NEU-Seg, MTD and user data.

``ImageMaskFolder`` reads the layouts most public defect sets use:

* two folders with matching stems: ``images/x.png`` + ``masks/x.png`` (NRSD-MN, NEU-Seg, user data)
* one folder with a suffix: ``x.png`` + ``x_GT.png`` (KSDD2), or ``Imgs/x.jpg`` + ``Imgs/x.png`` (MTD)
* separate label folder with a suffix: ``Train/x.PNG`` + ``Train/Label/x_label.PNG`` (DAGM 2007;
  defect-free images have no label file -> ``allow_missing_masks=True`` gives them an empty mask).

Masks are binarised with ``mask > threshold`` (MTD masks carry JPEG-like edge values 1..254).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DatasetNotFoundError, EmptyDatasetError, MissingFileError
from .io import IMAGE_EXTS, check_same_size, read_gray, to_image, to_mask


class PairedMasks(Dataset):
    """Base: ``items`` of (id, image path, mask path or None, label). ``ds[i]`` -> (image, mask).

    ``mask_fn(uint8 [H, W]) -> array`` turns the stored mask into the returned one (binary by
    default: float ``[1, H, W]`` in {0, 1}); ``with_label=True`` appends the per-image label.
    """

    def __init__(self, items: Sequence[tuple[str, Path, Path | None, int]], transforms=None,
                 threshold: int = 127, mask_fn: Callable | None = None, with_label: bool = False,
                 mask_dtype=torch.float32):
        self.ids = [it[0] for it in items]
        self.image_paths = [it[1] for it in items]
        self.mask_paths = [it[2] for it in items]
        self.labels = [it[3] for it in items]
        self.threshold = threshold
        self.mask_fn = mask_fn or (lambda m: (m > self.threshold).astype(np.uint8))
        self.mask_dtype = mask_dtype
        self.with_label = with_label
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.ids)

    def load_arrays(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw uint8 image and stored mask (zeros when the image has no mask file)."""
        img = read_gray(self.image_paths[i])
        mp = self.mask_paths[i]
        if mp is None:
            return img, np.zeros_like(img)
        mask = read_gray(mp)
        check_same_size(self.image_paths[i], img, mp, mask)
        return img, mask

    def __getitem__(self, i: int):
        img, raw = self.load_arrays(i)
        image, mask = to_image(img), to_mask(self.mask_fn(raw), self.mask_dtype)
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return (image, mask, self.labels[i]) if self.with_label else (image, mask)


def select_ids(items: list, ids, root) -> list:
    """Keep ``items`` whose id is in ``ids`` (in the order of ``ids``); MissingFileError for unknown ids."""
    if ids is None:
        return items
    by_id = {it[0]: it for it in items}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise MissingFileError(root, f"{len(unknown)} requested ids not in the dataset, e.g. {unknown[:3]}")
    return [by_id[i] for i in ids]


def pair_folder(image_dir: Path, mask_dir: Path | None = None, mask_suffix: str = "",
                mask_ext: str | None = None, allow_missing_masks: bool = False, id_prefix: str = "",
                label: int = 0) -> list[tuple[str, Path, Path | None, int]]:
    """Match every image in ``image_dir`` with ``mask_dir/<stem><mask_suffix>.<ext>``.

    Raises DatasetNotFoundError / EmptyDatasetError for the folder, MissingFileError for the first
    image without a mask (unless ``allow_missing_masks``) and for masks without an image.
    """
    image_dir = Path(image_dir)
    mask_dir = Path(mask_dir) if mask_dir is not None else image_dir
    if not image_dir.is_dir():
        raise DatasetNotFoundError(image_dir, "image folder not found")
    if not mask_dir.is_dir() and not allow_missing_masks:
        raise DatasetNotFoundError(mask_dir, "mask folder not found")
    same = mask_dir.resolve() == image_dir.resolve()
    masks: dict[str, Path] = {}
    if mask_dir.is_dir():
        for p in mask_dir.iterdir():
            if p.suffix.lower() in IMAGE_EXTS and (not mask_ext or p.suffix.lower() == mask_ext.lower()):
                if mask_suffix and not p.stem.endswith(mask_suffix):
                    continue
                masks[p.stem[: len(p.stem) - len(mask_suffix)] if mask_suffix else p.stem] = p
    images = []
    for p in sorted(image_dir.iterdir()):
        if p.suffix.lower() not in IMAGE_EXTS or not p.is_file():
            continue
        if same and (masks.get(p.stem) == p or (mask_suffix and p.stem.endswith(mask_suffix))):
            continue  # the mask itself
        images.append(p)
    if not images:
        raise EmptyDatasetError(image_dir, "no images found")
    items, missing = [], []
    for p in images:
        m = masks.get(p.stem)
        if m is None and not allow_missing_masks:
            missing.append(p)
        items.append((f"{id_prefix}{p.stem}", p, m, label))
    if missing:
        raise MissingFileError(missing[0], f"image has no mask {missing[0].stem}{mask_suffix}.* in {mask_dir}"
                               + (f" ({len(missing) - 1} more images lack one)" if len(missing) > 1 else ""))
    orphans = sorted(set(masks) - {p.stem for p in images})
    if orphans:
        raise MissingFileError(masks[orphans[0]], f"mask has no image {orphans[0]}.* in {image_dir}"
                               + (f" ({len(orphans) - 1} more)" if len(orphans) > 1 else ""))
    return items


class ImageMaskFolder(PairedMasks):
    """Generic binary-segmentation folder (KSDD2, DAGM, your own data).

    >>> ImageMaskFolder("ksdd2/train", masks=None, mask_suffix="_GT")            # KSDD2
    >>> ImageMaskFolder("dagm/Class1/Train", masks="Label", mask_suffix="_label",
    ...                 allow_missing_masks=True)                                # DAGM 2007
    >>> ImageMaskFolder("my_parts", images="images", masks="masks")              # your data

    ``images``/``masks`` are sub-folders of ``root`` (``None`` = ``root`` itself). Labels: 1 when
    the mask has any defect pixel, else 0 (computed lazily by :meth:`image_labels`).
    """

    def __init__(self, root, images: str | None = "images", masks: str | None = "masks",
                 mask_suffix: str = "", mask_ext: str | None = None, threshold: int = 127,
                 allow_missing_masks: bool = False, transforms=None, with_label: bool = False):
        root = Path(root)
        if not root.is_dir():
            raise DatasetNotFoundError(root, "dataset folder not found")
        image_dir = root / images if images else root
        mask_dir = root / masks if masks else root
        items = pair_folder(image_dir, mask_dir, mask_suffix, mask_ext, allow_missing_masks)
        super().__init__(items, transforms=transforms, threshold=threshold, with_label=with_label)
        self.root = root

    def image_labels(self) -> list[int]:
        """1 if the image's mask has a defect pixel, else 0 (reads every mask once)."""
        self.labels = [int(mp is not None and (read_gray(mp) > self.threshold).any()) for mp in self.mask_paths]
        return self.labels
