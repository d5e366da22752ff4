"""Image/mask pairs from folders: the shared base of NRSD-MN, NEU-Seg, MTD and user data.

``ImageMaskFolder`` reads the layouts most public defect sets use:

* two folders with matching stems: ``images/x.png`` + ``masks/x.png`` (NRSD-MN, NEU-Seg, user data)
* one folder with a suffix: ``x.png`` + ``x_GT.png`` (KSDD2), or ``Imgs/x.jpg`` + ``Imgs/x.png`` (MTD)
* separate label folder with a suffix: ``Train/x.PNG`` + ``Train/Label/x_label.PNG`` (DAGM 2007;
  defect-free images have no label file -> ``allow_missing_masks=True`` gives them an empty mask).

How stored mask values become a mask is a :class:`~defectlib.data.masks.MaskRule`: 0/255, 0/1,
class indices, black + one colour and ``.mat`` files are read automatically; anything ambiguous
is an error naming the file and the option to pass (``threshold=``, ``encoding=``, ``colors=``,
``mat_key=``). MTD and NRSD-MN use their documented rule, grey level > 127. Two files with the
same stem (``a.png`` and ``a.jpg``) are an error naming both.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import (DatasetError, DatasetNotFoundError, DuplicateFileError, EmptyDatasetError,
                     MissingFileError)
from .io import IMAGE_EXTS, check_same_size, read_gray, to_image, to_mask
from .masks import MASK_EXTS, MaskRule, decode_mask, read_mask


class PairedMasks(Dataset):
    """Base: ``items`` of (id, image path, mask path or None, label). ``ds[i]`` -> (image, mask).

    ``rule`` (a :class:`~defectlib.data.masks.MaskRule`; default: grey level > ``threshold``)
    turns a stored mask into class indices and the returned mask is binary (float ``[1, H, W]``
    in {0, 1}: any class is a defect). ``mask_fn(stored [H, W]) -> array`` replaces that step
    (NEU-Seg keeps its class indices); ``with_label=True`` appends the per-image label.
    """

    def __init__(self, items: Sequence[tuple[str, Path, Path | None, int]], transforms=None,
                 threshold: int | None = 127, mask_fn: Callable | None = None, with_label: bool = False,
                 mask_dtype=torch.float32, rule: MaskRule | None = None):
        self.ids = [it[0] for it in items]
        self.image_paths = [it[1] for it in items]
        self.mask_paths = [it[2] for it in items]
        self.labels = [it[3] for it in items]
        self.rule = rule if rule is not None else MaskRule(threshold=threshold)
        self.threshold = self.rule.threshold
        self.mask_fn = mask_fn
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
        mask = read_mask(mp, self.rule) if self.mask_fn is None else read_gray(mp)
        check_same_size(self.image_paths[i], img, mp, mask)
        return img, mask

    def decode(self, i: int, stored: np.ndarray) -> np.ndarray:
        """The returned mask's array from the stored one (binary unless ``mask_fn`` says otherwise)."""
        if self.mask_fn is not None:
            return self.mask_fn(stored)
        return (decode_mask(stored, self.rule, self.mask_paths[i]) > 0).astype(np.uint8)

    def __getitem__(self, i: int):
        img, raw = self.load_arrays(i)
        image, mask = to_image(img), to_mask(self.decode(i, raw), self.mask_dtype)
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


def _listing(folder: Path, exts, problems: list, broken: set) -> list[Path]:
    """Files of ``folder`` with one of ``exts``, sorted; a dangling or looping symbolic link is a
    problem (it would otherwise vanish from the listing and its partner be reported instead)."""
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in exts:
            continue
        if p.is_symlink() and not p.exists():
            problems.append(MissingFileError(p, "broken symbolic link (its target is missing, or a link loop)"))
            broken.add(p.stem)
            continue
        if p.is_file():
            out.append(p)
    return out


def _by_stem(files: list[Path], key, problems: list, what: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in files:
        k = key(p)
        if k in out:
            problems.append(DuplicateFileError(p, f"{what} {p.name} and {out[k].name} have the same name stem "
                                                  f"{k!r}: keep one (or pass mask_ext / an image folder of its own)"))
            continue
        out[k] = p
    return out


def scan_pairs(image_dir: Path, mask_dir: Path | None = None, mask_suffix: str = "",
               mask_ext: str | None = None, allow_missing_masks: bool = False, id_prefix: str = "",
               label: int = 0) -> tuple[list[tuple[str, Path, Path | None, int]], list[DatasetError]]:
    """Pair every image in ``image_dir`` with ``mask_dir/<stem><mask_suffix>.<ext>``.

    Returns ``(items, problems)``: every problem found (missing folders, broken links, duplicate
    stems, images without a mask, masks without an image) instead of stopping at the first, for
    ``defectlib data check``; :func:`pair_folder` raises the first one.
    """
    image_dir = Path(image_dir)
    mask_dir = Path(mask_dir) if mask_dir is not None else image_dir
    problems: list[DatasetError] = []
    broken: set[str] = set()
    if not image_dir.is_dir():
        return [], [DatasetNotFoundError(image_dir, "image folder not found")]
    if not mask_dir.is_dir() and not allow_missing_masks:
        return [], [DatasetNotFoundError(mask_dir, "mask folder not found")]
    same = mask_dir.resolve() == image_dir.resolve()
    mask_files = []
    if mask_dir.is_dir():
        exts = (mask_ext.lower(),) if mask_ext else MASK_EXTS
        mask_files = [p for p in _listing(mask_dir, exts, problems, set())
                      if not mask_suffix or p.stem.endswith(mask_suffix)]
        if same and not mask_suffix and not mask_ext:
            mask_files = []  # masks beside their images need a suffix or an extension to tell them apart
    masks = _by_stem(mask_files, lambda p: p.stem[: len(p.stem) - len(mask_suffix)] if mask_suffix else p.stem,
                     problems, "masks")
    taken = set(mask_files)
    image_files = [p for p in _listing(image_dir, IMAGE_EXTS, problems, broken)
                   if not (same and (p in taken or (mask_suffix and p.stem.endswith(mask_suffix))))]
    images = _by_stem(image_files, lambda p: p.stem, problems, "images")
    if not images:
        problems.append(EmptyDatasetError(image_dir, "no images found"))
        return [], _unique(problems)
    items, missing = [], []
    for stem, p in images.items():
        m = masks.get(stem)
        if m is None and not allow_missing_masks:
            missing.append(p)
        items.append((f"{id_prefix}{stem}", p, m, label))
    if missing:
        problems.append(MissingFileError(missing[0], f"image has no mask {missing[0].stem}{mask_suffix}.* in "
                                         f"{mask_dir}" + (f" ({len(missing) - 1} more images lack one)"
                                                          if len(missing) > 1 else "")))
    orphans = sorted(set(masks) - set(images) - broken)
    if orphans:
        problems.append(MissingFileError(masks[orphans[0]], f"mask has no image {orphans[0]}.* in {image_dir}"
                                         + (f" ({len(orphans) - 1} more)" if len(orphans) > 1 else "")))
    return items, _unique(problems)


def _unique(problems: list) -> list:
    seen, out = set(), []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


def pair_folder(image_dir: Path, mask_dir: Path | None = None, mask_suffix: str = "",
                mask_ext: str | None = None, allow_missing_masks: bool = False, id_prefix: str = "",
                label: int = 0) -> list[tuple[str, Path, Path | None, int]]:
    """:func:`scan_pairs`, raising its first problem (DatasetNotFoundError / EmptyDatasetError for
    the folder, MissingFileError, DuplicateFileError for a file)."""
    items, problems = scan_pairs(image_dir, mask_dir, mask_suffix, mask_ext, allow_missing_masks,
                                 id_prefix, label)
    if problems:
        raise problems[0]
    return items


class ImageMaskFolder(PairedMasks):
    """Generic binary-segmentation folder (KSDD2, DAGM, your own data).

    >>> ImageMaskFolder("ksdd2/train", masks=None, mask_suffix="_GT")            # KSDD2
    >>> ImageMaskFolder("dagm/Class1/Train", masks="Label", mask_suffix="_label",
    ...                 allow_missing_masks=True)                                # DAGM 2007
    >>> ImageMaskFolder("my_parts", images="images", masks="masks")              # your data
    >>> ImageMaskFolder("cfd", images="image", masks="groundTruth",            # CrackForest .mat:
    ...                 mat_key="groundTruth.Segmentation", threshold=1)         # 1 = bg, 2 = crack

    ``images``/``masks`` are sub-folders of ``root`` (``None`` = ``root`` itself). Masks follow
    the rules of :mod:`defectlib.data.masks`: ``encoding="auto"`` reads 0/255, 0/1, class indices
    and black + one colour, and refuses anything ambiguous with an error naming the file and the
    option to pass: ``threshold=T`` (grey > T), ``encoding="binary" | "index"``, ``colors=``,
    ``mat_key=`` (``num_classes`` bounds ``encoding="index"``). Labels: 1 when the mask has any
    defect pixel, else 0 (:meth:`image_labels`).
    """

    def __init__(self, root, images: str | None = "images", masks: str | None = "masks",
                 mask_suffix: str = "", mask_ext: str | None = None, threshold: float | None = None,
                 allow_missing_masks: bool = False, transforms=None, with_label: bool = False,
                 encoding: str = "auto", colors=None, mat_key: str | None = None,
                 num_classes: int | None = None):
        root = Path(root)
        if not root.is_dir():
            raise DatasetNotFoundError(root, "dataset folder not found")
        rule = MaskRule(encoding, threshold, colors, mat_key, num_classes)
        image_dir = root / images if images else root
        mask_dir = root / masks if masks else root
        items = pair_folder(image_dir, mask_dir, mask_suffix, mask_ext, allow_missing_masks)
        super().__init__(items, transforms=transforms, with_label=with_label, rule=rule)
        self.root = root

    def image_labels(self) -> list[int]:
        """1 if the image's mask has a defect pixel, else 0 (reads every mask once)."""
        self.labels = [int(mp is not None and bool(self.decode(i, read_mask(mp, self.rule)).any()))
                       for i, mp in enumerate(self.mask_paths)]
        return self.labels
