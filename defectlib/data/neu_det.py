"""NEU-DET: hot-rolled steel strip surface defects with Pascal-VOC boxes (6 classes, 1800 images).

K. Song, Y. Yan, Applied Surface Science 285 (2013) 858-864; boxes: Y. He et al., IEEE TIM 2020.
Used by paper 000 (DANet). Two on-disk layouts are read:

* flat (the original release):  ``IMAGES/<class>_<n>.jpg`` + ``ANNOTATIONS/<class>_<n>.xml``
* split (common re-uploads):     ``{train,validation}/{images,annotations}/...``

Labels come from each box's ``<name>`` (123 images hold boxes of another class than their file
name); the file-name class is only the image-level label used to stratify splits.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from .errors import AnnotationError, DatasetNotFoundError, EmptyDatasetError, MissingFileError
from .io import IMAGE_EXTS, is_hidden, read_gray, to_image

CLASSES = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")
#: spellings seen in copies of NEU-DET, mapped to the canonical class name
ALIASES = {"rolled-in scale": "rolled-in_scale", "rolled_in_scale": "rolled-in_scale",
           "pitted surface": "pitted_surface", "pittedsurface": "pitted_surface",
           "scratch": "scratches", "patch": "patches"}


@dataclass
class VOCRecord:
    """One parsed annotation: file stem, image size and boxes (xyxy, pixel corners) with labels 1..6."""
    name: str
    width: int
    height: int
    boxes: np.ndarray   # float32 [N, 4]
    labels: np.ndarray  # int64 [N]


def filename_class(stem: str) -> str:
    """Image-level class from a NEU file name: ``rolled-in_scale_12`` -> ``rolled-in_scale``."""
    for c in sorted(CLASSES, key=len, reverse=True):
        if stem.startswith(c + "_") or stem == c:
            return c
    base = stem.rsplit("_", 1)[0]
    return ALIASES.get(base, base)


def parse_voc(path: str | os.PathLike, classes=CLASSES, check_inside: bool = True) -> VOCRecord:
    """Parse a Pascal-VOC XML file; AnnotationError names the file and the problem."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise AnnotationError(path, f"not valid XML ({exc})") from None
    size = root.find("size")
    try:
        width, height = int(float(size.findtext("width"))), int(float(size.findtext("height")))
    except (AttributeError, TypeError, ValueError):
        raise AnnotationError(path, "missing or unreadable <size> (<width>, <height>)") from None
    if width <= 0 or height <= 0:
        raise AnnotationError(path, f"<size> is {width}x{height}")
    boxes, labels = [], []
    for i, obj in enumerate(root.iter("object"), 1):
        raw = (obj.findtext("name") or "").strip()
        name = ALIASES.get(raw.lower(), raw)
        if name not in classes:
            raise AnnotationError(path, f"object {i} has unknown class {raw!r} (known: {', '.join(classes)})")
        bb = obj.find("bndbox")
        try:
            x0, y0, x1, y1 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise AnnotationError(path, f"object {i} ({name}) has a missing or unreadable <bndbox>") from None
        if not (x0 < x1 and y0 < y1):
            raise AnnotationError(path, f"box {i} ({name}) is empty or inverted: "
                                        f"xmin={x0:g} ymin={y0:g} xmax={x1:g} ymax={y1:g}")
        if check_inside and (x0 < 0 or y0 < 0 or x1 > width or y1 > height):
            raise AnnotationError(path, f"box {i} ({name}) xmin={x0:g} ymin={y0:g} xmax={x1:g} ymax={y1:g} "
                                        f"lies outside the {width}x{height} image")
        boxes.append((x0, y0, x1, y1))
        labels.append(classes.index(name) + 1)
    return VOCRecord(path.stem, width, height, np.asarray(boxes, np.float32).reshape(-1, 4),
                     np.asarray(labels, np.int64))


def _find_pairs(root: Path, split: str | None) -> list[tuple[Path, Path]]:
    """(image, xml) pairs for either layout; MissingFileError when an XML has no image or vice versa."""
    if (root / "ANNOTATIONS").is_dir() or (root / "IMAGES").is_dir():
        dirs = [(root / "IMAGES", root / "ANNOTATIONS")]
    else:
        splits = [s for s in ("train", "validation", "val", "test") if (root / s).is_dir()]
        if split is not None:
            if split not in splits:
                raise DatasetNotFoundError(root / split, f"split folder not found (have: {splits or 'none'})")
            splits = [split]
        if not splits:
            raise DatasetNotFoundError(root, "no NEU-DET layout: expected IMAGES/ + ANNOTATIONS/ "
                                             "or train|validation/{images,annotations}/")
        dirs = [(root / s / "images", root / s / "annotations") for s in splits]
    pairs = []
    for img_dir, ann_dir in dirs:
        for d, what in ((img_dir, "image"), (ann_dir, "annotation")):
            if not d.is_dir():
                raise DatasetNotFoundError(d, f"{what} folder not found")
        images = {p.stem: p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS and not is_hidden(p)}
        xmls = sorted(x for x in ann_dir.glob("*.xml") if not is_hidden(x))
        for x in xmls:
            if x.stem not in images:
                raise MissingFileError(x, f"annotation has no image {x.stem}.* in {img_dir}")
            pairs.append((images[x.stem], x))
        missing = sorted(set(images) - {x.stem for x in xmls})
        if missing:
            raise MissingFileError(images[missing[0]], f"image has no annotation {missing[0]}.xml in {ann_dir}"
                                   + (f" ({len(missing) - 1} more images lack one)" if len(missing) > 1 else ""))
    if not pairs:
        raise EmptyDatasetError(root, "no NEU-DET image/annotation pairs found")
    return pairs


class NEUDET(Dataset):
    """NEU-DET as a torchvision-style detection dataset.

    ``ds[i]`` -> ``(image, target)``: ``image`` float ``[1, H, W]`` in [0, 1] (a ``tv_tensors.Image``),
    ``target = {"boxes": BoundingBoxes xyxy float [N, 4], "labels": int64 [N] in 1..6,
    "image_id": i, "name": "<class>_<n>"}``. ``ids`` restricts to those file stems (e.g. a split).
    ``transforms(image, target)`` is applied jointly (``torchvision.transforms.v2``).
    """

    CLASSES = CLASSES

    def __init__(self, root, ids=None, transforms=None, split: str | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetNotFoundError(self.root, "NEU-DET folder not found")
        pairs = {img.stem: (img, xml) for img, xml in _find_pairs(self.root, split)}
        if ids is not None:
            ids = [str(i).removesuffix(".jpg").removesuffix(".xml") for i in ids]
            unknown = [i for i in ids if i not in pairs]
            if unknown:
                raise MissingFileError(self.root, f"{len(unknown)} requested ids not in the dataset, "
                                                  f"e.g. {unknown[:3]}")
        self.ids = list(ids) if ids is not None else sorted(pairs)
        self.files = [pairs[i] for i in self.ids]
        self.records = [parse_voc(x) for _, x in self.files]
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        img_path, xml_path = self.files[i]
        rec = self.records[i]
        arr = read_gray(img_path)
        if arr.shape != (rec.height, rec.width):
            raise AnnotationError(xml_path, f"<size> says {rec.width}x{rec.height} but {img_path.name} "
                                            f"is {arr.shape[1]}x{arr.shape[0]}")
        image = to_image(arr)
        target = {
            "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(rec.boxes.copy()), format="XYXY",
                                              canvas_size=arr.shape),
            "labels": torch.from_numpy(rec.labels.copy()),
            "image_id": i,
            "name": self.ids[i],
        }
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def filename_classes(self) -> list[str]:
        """Image-level (file-name) class of every sample, e.g. for stratified splits."""
        return [filename_class(i) for i in self.ids]

    def box_counts(self) -> dict[str, int]:
        labels = np.concatenate([r.labels for r in self.records]) if self.records else np.zeros(0, int)
        return {c: int((labels == k + 1).sum()) for k, c in enumerate(CLASSES)}


def collate_detection(batch):
    """DataLoader collate for detection: tuple of images, tuple of targets (torchvision style)."""
    return tuple(zip(*batch))
