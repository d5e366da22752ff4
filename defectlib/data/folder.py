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
from .io import IMAGE_EXTS, check_same_size, is_hidden, read_gray, to_image, to_mask
from .masks import MASK_EXTS, MaskRule, decide_auto, decode_mask, read_mask

#: mask-name suffixes tried when an image has no mask, to suggest ``mask_suffix=``
KNOWN_SUFFIXES = ("_GT", "_gt", "_mask", "_Mask", "_label", "_Label", "_seg", "_anno")


class PairedMasks(Dataset):
    """Base: ``items`` of (id, image path, mask path or None, label). ``ds[i]`` -> (image, mask).

    ``rule`` (a :class:`~defectlib.data.masks.MaskRule`; default: grey level > ``threshold``)
    turns a stored mask into class indices and the returned mask is binary (float ``[1, H, W]``
    in {0, 1}: any class is a defect). ``mask_fn(stored [H, W]) -> array`` replaces that step
    (NEU-Seg keeps its class indices); ``with_label=True`` appends the per-image label.
    ``bit_depth`` is for images stored with 9..16 bits (:func:`~defectlib.data.io.read_gray`).
    """

    def __init__(self, items: Sequence[tuple[str, Path, Path | None, int]], transforms=None,
                 threshold: int | None = 127, mask_fn: Callable | None = None, with_label: bool = False,
                 mask_dtype=torch.float32, rule: MaskRule | None = None, bit_depth: int | None = None):
        self.ids = [it[0] for it in items]
        self.image_paths = [it[1] for it in items]
        self.mask_paths = [it[2] for it in items]
        self.labels = [it[3] for it in items]
        self.rule = rule if rule is not None else MaskRule(threshold=threshold)
        self.threshold = self.rule.threshold
        self.bit_depth = bit_depth
        self.mask_fn = mask_fn
        self.mask_dtype = mask_dtype
        self.with_label = with_label
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.ids)

    def load_arrays(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw uint8 image and stored mask (zeros when the image has no mask file)."""
        img = read_gray(self.image_paths[i], self.bit_depth)
        mp = self.mask_paths[i]
        if mp is None:
            return img, np.zeros_like(img)
        mask = read_mask(mp, self.rule)
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


def _listing(folder: Path, exts, problems: list, broken: set, hidden: list | None = None) -> list[Path]:
    """Files of ``folder`` with one of ``exts``, sorted; a dangling or looping symbolic link is a
    problem (it would otherwise vanish from the listing and its partner be reported instead).
    Hidden files (``._x.png`` macOS resource forks, ``.x.png``) are skipped, and added to ``hidden``."""
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in exts:
            continue
        if is_hidden(p):
            if hidden is not None:
                hidden.append(p)
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
               label: int = 0, hidden: list | None = None
               ) -> tuple[list[tuple[str, Path, Path | None, int]], list[DatasetError]]:
    """Pair every image in ``image_dir`` with ``mask_dir/<stem><mask_suffix>.<ext>``.

    Returns ``(items, problems)``: every problem found (missing folders, broken links, duplicate
    stems, images without a mask, masks without an image) instead of stopping at the first, for
    ``defectlib data check``; :func:`pair_folder` raises the first one. Hidden files are never
    samples: they are appended to ``hidden`` (``data check`` notes them).
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
        mask_files = [p for p in _listing(mask_dir, exts, problems, set(), hidden)
                      if not mask_suffix or p.stem.endswith(mask_suffix)]
        if same and not mask_suffix and not mask_ext:
            mask_files = []  # masks beside their images need a suffix or an extension to tell them apart
    masks = _by_stem(mask_files, lambda p: p.stem[: len(p.stem) - len(mask_suffix)] if mask_suffix else p.stem,
                     problems, "masks")
    taken = set(mask_files)
    image_files = [p for p in _listing(image_dir, IMAGE_EXTS, problems, broken, None if same else hidden)
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
                                                          if len(missing) > 1 else "")
                                         + _suffix_hint(missing, mask_dir, mask_suffix, mask_ext)))
    orphans = sorted(set(masks) - set(images) - broken)
    if orphans:
        problems.append(MissingFileError(masks[orphans[0]], f"mask has no image {orphans[0]}.* in {image_dir}"
                                         + (f" ({len(orphans) - 1} more)" if len(orphans) > 1 else "")))
    return items, _unique(problems)


def _suffix_hint(missing: list[Path], mask_dir: Path, mask_suffix: str, mask_ext: str | None) -> str:
    """``; mask_suffix="_mask" would pair them`` when masks named ``<stem><suffix>.*`` exist."""
    if not mask_dir.is_dir():
        return ""
    stems = {p.stem for p in mask_dir.iterdir() if p.suffix.lower() in MASK_EXTS and not is_hidden(p)
             and (mask_ext is None or p.suffix.lower() == mask_ext.lower())}
    wanted = [p.stem for p in missing]
    best, hits = None, 0
    suffixes = set(KNOWN_SUFFIXES)
    for s in stems:  # also a suffix seen on the first image's mask: x -> x-gt, x.mask ...
        if wanted and s.startswith(wanted[0]) and len(s) > len(wanted[0]):
            suffixes.add(s[len(wanted[0]):])
    for suffix in sorted(suffixes):
        if suffix == mask_suffix:
            continue
        n = sum(f"{w}{suffix}" in stems for w in wanted)
        if n > hits:
            best, hits = suffix, n
    if best is None:
        return ""
    return f"; masks named <stem>{best}.* are there: mask_suffix={best!r} would pair {hits} of them"


def _unique(problems: list) -> list:
    seen, out = set(), []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


def pair_folder(image_dir: Path, mask_dir: Path | None = None, mask_suffix: str = "",
                mask_ext: str | None = None, allow_missing_masks: bool = False, id_prefix: str = "",
                label: int = 0, hidden: list | None = None) -> list[tuple[str, Path, Path | None, int]]:
    """:func:`scan_pairs`, raising its first problem (DatasetNotFoundError / EmptyDatasetError for
    the folder, MissingFileError, DuplicateFileError for a file)."""
    items, problems = scan_pairs(image_dir, mask_dir, mask_suffix, mask_ext, allow_missing_masks,
                                 id_prefix, label, hidden)
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
    ``mat_key=`` (``num_classes`` bounds ``encoding="index"``), ``defect_labels=[2]`` (those
    stored values are defects: label images with several labels). ``encoding="auto"`` is decided
    once for the folder (:func:`~defectlib.data.masks.decide_auto`, ``self.rule.describe()`` says
    what it decided). ``bit_depth=12`` reads 10/12-bit camera images stored in 16-bit files.
    Hidden files (``._x.png``) are skipped and listed in ``self.hidden``. Labels: 1 when the mask
    has any defect pixel, else 0 (:meth:`image_labels`).
    """

    def __init__(self, root, images: str | None = "images", masks: str | None = "masks",
                 mask_suffix: str = "", mask_ext: str | None = None, threshold: float | None = None,
                 allow_missing_masks: bool = False, transforms=None, with_label: bool = False,
                 encoding: str = "auto", colors=None, mat_key: str | None = None,
                 num_classes: int | None = None, defect_labels=None, bit_depth: int | None = None):
        root = Path(root)
        if not root.is_dir():
            raise DatasetNotFoundError(root, "dataset folder not found")
        rule = MaskRule(encoding, threshold, colors, mat_key, num_classes, defect_labels)
        image_dir = root / images if images else root
        mask_dir = root / masks if masks else root
        self.hidden: list[Path] = []
        items = pair_folder(image_dir, mask_dir, mask_suffix, mask_ext, allow_missing_masks, hidden=self.hidden)
        rule = decide_auto([it[2] for it in items], rule)
        super().__init__(items, transforms=transforms, with_label=with_label, rule=rule, bit_depth=bit_depth)
        self.root = root

    def image_labels(self) -> list[int]:
        """1 if the image's mask has a defect pixel, else 0 (reads every mask once)."""
        self.labels = [int(mp is not None and bool(self.decode(i, read_mask(mp, self.rule)).any()))
                       for i, mp in enumerate(self.mask_paths)]
        return self.labels
