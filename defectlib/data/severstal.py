"""Severstal steel defect detection (Kaggle 2019): 256x1600 strips, 4 classes, masks as RLE in train.csv.

Used by paper 001 (two-stage classifier + U-Net). On disk: ``train.csv`` + ``train_images/*.jpg``
(``test_images/`` too). ``train.csv`` comes in two historical formats, both read here:

* old: ``ImageId_ClassId,EncodedPixels`` -- 4 rows per image (``x.jpg_1``..``x.jpg_4``), empty = none
* new: ``ImageId,ClassId,EncodedPixels`` -- defect rows only; images without rows are clean

RLE (Kaggle's format, docs/papers.md#severstal-two-stage): space-separated ``start length`` pairs,
1-indexed, pixels numbered down each column first (column-major, numpy ``order="F"``), pairs sorted,
positive, not overlapping.
"""
from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import (AnnotationError, DatasetNotFoundError, EmptyDatasetError, MaskSizeError, MissingFileError,
                     RLEError)
from .io import is_hidden, read_gray, to_image, to_mask

HEIGHT, WIDTH = 256, 1600
NUM_CLASSES = 4
CLASSES = ("1", "2", "3", "4")


def _parse_rle(rle: str, source=None) -> tuple[np.ndarray, np.ndarray]:
    tokens = rle.split()
    try:
        ints = [int(t) for t in tokens]
    except ValueError:
        raise RLEError(source, f"RLE holds a non-integer value: {rle[:60]!r}") from None
    big = next((v for v in ints if abs(v) > 2 ** 40), None)
    if big is not None:
        raise RLEError(source, f"RLE {rle[:60]!r} holds {big}, far past any image's pixel count")
    values = np.asarray(ints, dtype=np.int64)
    if values.size % 2:
        raise RLEError(source, f"RLE has an odd number of values ({values.size}); expected start/length pairs")
    return values[0::2], values[1::2]


def validate_rle(starts: np.ndarray, lengths: np.ndarray, n_pixels: int, source=None) -> None:
    """Raise RLEError unless runs are 1-indexed, positive, sorted, non-overlapping and inside the image."""
    if starts.size == 0:
        return
    if (starts < 1).any():
        k = int(np.argmax(starts < 1))
        raise RLEError(source, f"run {k + 1} starts at {starts[k]}; RLE starts are 1-indexed (>= 1)")
    if (lengths < 1).any():
        k = int(np.argmax(lengths < 1))
        raise RLEError(source, f"run {k + 1} has length {lengths[k]}; lengths must be >= 1")
    if (np.diff(starts) <= 0).any():
        k = int(np.argmax(np.diff(starts) <= 0))
        raise RLEError(source, f"runs are not sorted: run {k + 2} starts at {starts[k + 1]} "
                               f"after run {k + 1} at {starts[k]}")
    ends = starts + lengths - 1
    if (starts[1:] <= ends[:-1]).any():
        k = int(np.argmax(starts[1:] <= ends[:-1]))
        raise RLEError(source, f"runs overlap: run {k + 1} covers {starts[k]}..{ends[k]}, "
                               f"run {k + 2} starts at {starts[k + 1]}")
    if ends[-1] > n_pixels:
        raise RLEError(source, f"last run ends at pixel {ends[-1]}, past the image's {n_pixels} pixels")


def rle_decode(rle: str | float | None, shape=(HEIGHT, WIDTH), source=None) -> np.ndarray:
    """RLE string -> uint8 mask ``shape`` (column-major, 1-indexed). Empty/NaN/None -> all zeros."""
    h, w = shape
    if rle is None or (isinstance(rle, float) and np.isnan(rle)) or not str(rle).strip():
        return np.zeros((h, w), np.uint8)
    starts, lengths = _parse_rle(str(rle), source)
    validate_rle(starts, lengths, h * w, source)
    flat = np.zeros(h * w + 1, np.int32)
    np.add.at(flat, starts - 1, 1)
    np.add.at(flat, starts - 1 + lengths, -1)
    return np.cumsum(flat[:-1]).astype(np.uint8).reshape((h, w), order="F")


def rle_encode(mask) -> str:
    """Binary mask ``[H, W]`` (numpy or tensor, bool or 0/1) -> RLE string (column-major,
    1-indexed); '' if empty. Any other value (a probability 0.3, 255, NaN) or another number of
    dimensions is a ValueError naming ``mask``: binarise first (``probs > 0.5``, ``mask > 127``)."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask: expected one [H, W] mask, got shape {list(mask.shape)} "
                         "(encode each class channel separately)")
    if mask.dtype != bool:
        if not np.issubdtype(mask.dtype, np.number):
            raise ValueError(f"mask: expected 0/1 or bool values, got an array of {mask.dtype}")
        bad = (mask != 0) & (mask != 1)
        if bad.any():
            r, c = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f"mask: expected 0/1 or bool values, found {mask[r, c].item()} at [{r}, {c}] "
                             "(binarise first: probs > 0.5, or mask > 127 for 0/255)")
    flat = np.concatenate([[0], (mask != 0).reshape(-1, order="F").astype(np.int8), [0]])
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts, ends = change[0::2], change[1::2]
    return " ".join(f"{s} {e - s}" for s, e in zip(starts, ends))


def read_train_csv(path: str | os.PathLike) -> tuple[dict[str, dict[int, str]], list[str], str]:
    """Parse train.csv (either format) -> ({image_id: {class_id: rle}}, images listed, format)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "train.csv not found")
    rles: dict[str, dict[int, str]] = defaultdict(dict)
    listed: list[str] = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise EmptyDatasetError(path, "CSV file is empty")
        header = [h.strip() for h in header]
        if header[:2] == ["ImageId_ClassId", "EncodedPixels"]:
            fmt = "old"
        elif header[:3] == ["ImageId", "ClassId", "EncodedPixels"]:
            fmt = "new"
        else:
            raise AnnotationError(path, f"unknown header {header}; expected 'ImageId_ClassId,EncodedPixels' "
                                        "or 'ImageId,ClassId,EncodedPixels'")
        for line_no, row in enumerate(reader, 2):
            if not row:
                continue
            try:
                if fmt == "old":
                    image_id, cls = row[0].rsplit("_", 1)
                    rle = row[1] if len(row) > 1 else ""
                else:
                    image_id, cls, rle = row[0], row[1], row[2] if len(row) > 2 else ""
                cls = int(cls)
            except (ValueError, IndexError):
                raise AnnotationError(path, f"line {line_no} is malformed: {row!r}") from None
            if not 1 <= cls <= NUM_CLASSES:
                raise AnnotationError(path, f"line {line_no}: unknown class {cls} (classes are 1..4)")
            if image_id not in rles and image_id not in listed:
                listed.append(image_id)
            if rle.strip():
                if cls in rles[image_id]:
                    raise AnnotationError(path, f"line {line_no}: second mask for {image_id} class {cls}")
                rles[image_id][cls] = rle
    return dict(rles), listed, fmt


def decode_masks(rles: dict[int, str], shape=(HEIGHT, WIDTH), source=None) -> np.ndarray:
    """{class_id: rle} -> uint8 ``[4, H, W]``; class ids are 1-based (1..4 -> channels 0..3), any
    other id is an RLEError naming it."""
    out = np.zeros((NUM_CLASSES, *shape), np.uint8)
    for cls, rle in rles.items():
        if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)) or not 1 <= cls <= NUM_CLASSES:
            raise RLEError(source, f"class id {cls!r} is not a Severstal class 1..{NUM_CLASSES} (class ids are "
                                   f"1-based: channel c holds class c + 1)")
        out[cls - 1] = rle_decode(rle, shape, source=f"{source} (class {cls})" if source else None)
    return out


class Severstal(Dataset):
    """Severstal as a segmentation dataset: ``ds[i]`` -> ``(image [1,256,1600], mask [4,256,1600])``.

    ``image`` is a float ``tv_tensors.Image`` in [0, 1]; ``mask`` a float ``tv_tensors.Mask`` in {0, 1}.
    All images in ``images_dir`` are used (clean ones have an all-zero mask); ``ids`` restricts them.
    The RLE of ``train.csv`` numbers the pixels of a ``rle_shape`` image (256x1600): an image of
    another size (a resized copy) is a MaskSizeError naming both sizes, never a re-wrapped mask.
    Hidden files (``._x.jpg``) are skipped (listed in ``self.hidden``).
    ``self.labels[i]`` is the set of classes present, ``self.defective[i]`` whether any is.
    """

    CLASSES = CLASSES

    def __init__(self, root, ids=None, transforms=None, images_dir="train_images", csv_name="train.csv",
                 rle_shape: tuple[int, int] = (HEIGHT, WIDTH)):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetNotFoundError(self.root, "Severstal folder not found")
        self.image_dir = self.root / images_dir
        if not self.image_dir.is_dir():
            raise DatasetNotFoundError(self.image_dir, "image folder not found")
        self.csv_path = self.root / csv_name
        self.rles, listed, self.csv_format = read_train_csv(self.csv_path)
        files = [p for p in self.image_dir.iterdir() if p.suffix.lower() in (".jpg", ".png")]
        self.hidden = sorted(p for p in files if is_hidden(p))
        on_disk = sorted(p.name for p in files if not is_hidden(p))
        self.rle_shape = tuple(int(v) for v in rle_shape)
        if not on_disk:
            raise EmptyDatasetError(self.image_dir, "no images found")
        present = set(on_disk)
        missing = [i for i in listed if i not in present]
        if missing:
            raise MissingFileError(self.image_dir / missing[0], f"listed in {csv_name} but the image is missing"
                                   + (f" ({len(missing) - 1} more)" if len(missing) > 1 else ""))
        if ids is not None:
            unknown = [i for i in ids if i not in present]
            if unknown:
                raise MissingFileError(self.image_dir, f"requested ids not found, e.g. {unknown[:3]}")
        self.ids = list(ids) if ids is not None else on_disk
        self.labels = [sorted(self.rles.get(i, {})) for i in self.ids]
        self.defective = [bool(lab) for lab in self.labels]
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        path = self.image_dir / self.ids[i]
        arr = read_gray(path)
        rles = self.rles.get(self.ids[i], {})
        check_rle_size(path, arr.shape, self.rle_shape, bool(rles))
        masks = decode_masks(rles, arr.shape, source=f"{self.csv_path} [{self.ids[i]}]")
        image, mask = to_image(arr), to_mask(masks)
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask


def check_rle_size(path, image_shape, rle_shape=(HEIGHT, WIDTH), has_rle: bool = True) -> None:
    """MaskSizeError naming both sizes when an image with RLE rows is not ``rle_shape``: RLE
    numbers the pixels of one image size, and decoding it into another paints stripes."""
    if has_rle and tuple(image_shape[:2]) != tuple(rle_shape):
        raise MaskSizeError(path, f"image is {image_shape[1]}x{image_shape[0]} (WxH) but train.csv's RLE numbers "
                                  f"the pixels of a {rle_shape[1]}x{rle_shape[0]} image: use the original "
                                  "images, or pass rle_shape= if the RLE was written for this size")


def write_submission(path: str | os.PathLike, predictions, fmt: str = "new") -> Path:
    """Write a Kaggle submission CSV from ``{image_id: mask [4, H, W]}`` (or (id, mask) pairs).

    ``fmt="new"``: ``ImageId,EncodedPixels,ClassId`` (4 rows per image, the later sample format);
    ``fmt="old"``: ``ImageId_ClassId,EncodedPixels``. Empty masks give an empty EncodedPixels field.
    """
    items = predictions.items() if isinstance(predictions, dict) else predictions
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageId", "EncodedPixels", "ClassId"] if fmt == "new" else ["ImageId_ClassId", "EncodedPixels"])
        for image_id, mask in items:
            for c in range(len(mask)):  # one row per class channel: 4 for Severstal
                rle = rle_encode(mask[c])
                w.writerow([image_id, rle, c + 1] if fmt == "new" else [f"{image_id}_{c + 1}", rle])
    return path


def write_train_csv(path: str | os.PathLike, masks: dict[str, np.ndarray], fmt: str = "new") -> Path:
    """Write train.csv in either historical format from ``{image_id: uint8 [4, H, W]}``."""
    path = Path(path)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if fmt == "new":
            w.writerow(["ImageId", "ClassId", "EncodedPixels"])
            for image_id, m in masks.items():
                for c in range(NUM_CLASSES):
                    if m[c].any():
                        w.writerow([image_id, c + 1, rle_encode(m[c])])
        else:
            w.writerow(["ImageId_ClassId", "EncodedPixels"])
            for image_id, m in masks.items():
                for c in range(NUM_CLASSES):
                    w.writerow([f"{image_id}_{c + 1}", rle_encode(m[c])])
    return path
