"""Write small generated datasets in the REAL on-disk formats, so the real loaders read them.

* :func:`write_neu_det`   NEU-DET-like: 6 classes, 200x200 3-channel grey JPEGs, Pascal-VOC XML,
  flat ``IMAGES/`` + ``ANNOTATIONS/``; some images carry a box of a second class (as in NEU-DET).
* :func:`write_severstal` Severstal-like: 256x1600 strips, 4 classes, ``train.csv`` with RLE
  (new or old format), about half the images clean.
* :func:`write_nrsd_mn`   NRSD-MN-like: rail-top images with binary masks in the OCINet authors'
  layout (``2086/``, ``1130/965/`` man-made, ``1130/165/`` natural; see defectlib.data.nrsd_mn).
* :func:`write_neu_seg`, :func:`write_mtd`: small NEU-Seg- and MTD-like sets, so every notebook
  has an offline default even for the datasets that are real-only in the course.

Each writes a ``STANDIN.json`` (generator, seed, counts) next to the data: a stand-in is never
mistaken for real data. All three together take a few seconds at their default sizes.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

from . import defects as D
from .textures import rail_texture, steel_texture

#: bump when a generator's output changes, so cached stand-ins (``locate``) are rewritten
STANDIN_VERSION = 2

NEU_CLASSES = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")
#: a second class that often shares an image in NEU-DET (file-name class -> extra box class)
NEU_COMPANIONS = {"scratches": "inclusion", "pitted_surface": "patches", "patches": "inclusion"}


def _u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255.0 + 0.5).astype(np.uint8)


def _save_rgb_jpeg(path: Path, img: np.ndarray, quality: int = 92) -> None:
    """Grey content stored as 3 identical channels, like the NEU and Severstal JPEGs."""
    g = _u8(img)
    Image.fromarray(np.repeat(g[:, :, None], 3, axis=2)).save(path, quality=quality)


def _finish(tmp: Path, root: Path, info: dict) -> Path:
    info["version"] = STANDIN_VERSION
    (tmp / "STANDIN.json").write_text(json.dumps(info, indent=1))
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
    try:
        tmp.rename(root)
    except OSError:  # another process wrote the same stand-in meanwhile: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _start(root) -> tuple[Path, Path]:
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp{time.time_ns()}"
    tmp.mkdir()
    return root, tmp


def _neu_instance(cls: str, img: np.ndarray, rng) -> np.ndarray:
    """One instance of a NEU class; pitted surface is a cluster of pits (one box, like NEU)."""
    if cls == "pitted_surface":
        h, w = img.shape
        cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
        spread = rng.uniform(8, 30)
        mask = np.zeros(img.shape, bool)
        for _ in range(int(rng.integers(3, 9))):
            r = rng.uniform(2, 5)
            c = (np.clip(cx + rng.normal(0, spread), r, w - r), np.clip(cy + rng.normal(0, spread), r, h - r))
            mask |= D.pit(img, rng, center=c, radius=r)
        return mask
    if cls == "scratches":
        return D.scratch(img, rng, length=rng.uniform(0.3, 0.8) * img.shape[0],
                         angle=rng.normal(np.pi / 2, 0.25), width=int(rng.integers(1, 3)))
    return D.PRIMITIVES[cls](img, rng)


def write_neu_det(root, per_class: int = 20, size: int = 200, seed: int = 0, companion_prob: float = 0.15) -> Path:
    """NEU-DET-like set: ``per_class`` images per class, 1-3 boxes of the file-name class each."""
    root, tmp = _start(root)
    (tmp / "IMAGES").mkdir()
    (tmp / "ANNOTATIONS").mkdir()
    rng = np.random.default_rng(seed)
    n_boxes = 0
    for cls in NEU_CLASSES:
        for n in range(1, per_class + 1):
            img = steel_texture((size, size), rng)
            objects = []
            k = 1 if cls == "crazing" else int(rng.integers(1, 4))
            names = [cls] * k
            if cls in NEU_COMPANIONS and rng.random() < companion_prob:
                names.append(NEU_COMPANIONS[cls])
            for name in names:
                box = D.bbox(_neu_instance(name, img, rng))
                if box is not None:
                    objects.append((name, box))
            stem = f"{cls}_{n}"
            _save_rgb_jpeg(tmp / "IMAGES" / f"{stem}.jpg", img)
            (tmp / "ANNOTATIONS" / f"{stem}.xml").write_text(_voc_xml(stem, size, size, objects))
            n_boxes += len(objects)
    return _finish(tmp, root, {"standin": "neu-det", "generator": "defectlib.synth.write_neu_det",
                               "seed": seed, "images": per_class * 6, "boxes": n_boxes,
                               "note": "generated stand-in, NOT real NEU-DET data"})


def _voc_xml(stem: str, w: int, h: int, objects) -> str:
    objs = "".join(
        f"\t<object>\n\t\t<name>{escape(name)}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
        f"\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{int(x0)}</xmin>\n\t\t\t<ymin>{int(y0)}</ymin>\n"
        f"\t\t\t<xmax>{int(x1)}</xmax>\n\t\t\t<ymax>{int(y1)}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        for name, (x0, y0, x1, y1) in objects)
    return (f"<annotation>\n\t<folder>IMAGES</folder>\n\t<filename>{stem}.jpg</filename>\n\t<source>\n"
            f"\t\t<database>defectlib stand-in</database>\n\t</source>\n\t<size>\n\t\t<width>{w}</width>\n"
            f"\t\t<height>{h}</height>\n\t\t<depth>1</depth>\n\t</size>\n\t<segmented>0</segmented>\n{objs}</annotation>\n")


def _severstal_defect(cls: int, img: np.ndarray, rng, x_range=None) -> np.ndarray:
    """Class look-alikes: 1 small pits, 2 thin crack lines, 3 long scratches/abrasion, 4 large patches."""
    h, w = img.shape
    mask = np.zeros(img.shape, bool)
    lo, hi = x_range or (0, w)
    x0 = rng.uniform(lo, max(lo, hi - 400))
    if cls == 1:
        for _ in range(int(rng.integers(2, 7))):
            mask |= D.pit(img, rng, center=(x0 + rng.uniform(0, 400), rng.uniform(8, h - 8)), radius=rng.uniform(3, 8))
    elif cls == 2:
        mask |= D.crazing(img, rng, box=(x0, rng.uniform(0, h / 2), x0 + rng.uniform(60, 200), h - 1),
                          n_cracks=int(rng.integers(4, 10)), contrast=-0.15)
    elif cls == 3:
        for _ in range(int(rng.integers(1, 4))):
            mask |= D.scratch(img, rng, length=rng.uniform(80, 250), width=int(rng.integers(2, 6)),
                              angle=rng.normal(np.pi / 2, 0.2), start=(x0 + rng.uniform(0, 400), h / 2))
    else:
        mask |= D.patch(img, rng, center=(x0 + 200, rng.uniform(60, h - 60)), radius=rng.uniform(30, 70))
    return mask


def write_severstal(root, n_images: int = 40, clean_fraction: float = 0.5, seed: int = 0, fmt: str = "new",
                    with_test: bool = False) -> Path:
    """Severstal-like set: ``train_images/<9 hex>.jpg`` 256x1600 + ``train.csv`` (RLE)."""
    from defectlib.data.severstal import write_train_csv
    root, tmp = _start(root)
    (tmp / "train_images").mkdir()
    rng = np.random.default_rng(seed)
    masks: dict[str, np.ndarray] = {}
    names = sorted({f"{v:09x}" for v in rng.integers(0, 16 ** 9, n_images * 2)})[:n_images]
    clean = set(rng.choice(n_images, int(round(clean_fraction * n_images)), replace=False).tolist())
    counts = [0, 0, 0, 0]
    for k, name in enumerate(names):
        img = steel_texture((256, 1600), rng, stretch=rng.uniform(6, 12))
        x_range = (0, 1600)
        if rng.random() < 0.3:  # a black margin where the strip ends (why paper 001 rejects dark crops)
            edge = int(rng.integers(150, 500))
            dark = np.abs(0.02 + 0.01 * rng.standard_normal((256, edge))).astype(np.float32)
            if rng.random() < 0.5:
                img[:, :edge], x_range = dark, (edge, 1600)
            else:
                img[:, -edge:], x_range = dark, (0, 1600 - edge)
        m = np.zeros((4, 256, 1600), np.uint8)
        if k not in clean:
            classes = {int(rng.choice(4, p=[0.15, 0.07, 0.58, 0.20])) + 1 for _ in range(int(rng.integers(1, 3)))}
            for c in sorted(classes):
                m[c - 1] = _severstal_defect(c, img, rng, x_range)
                counts[c - 1] += 1
        masks[f"{name}.jpg"] = m
        _save_rgb_jpeg(tmp / "train_images" / f"{name}.jpg", img)
    write_train_csv(tmp / "train.csv", masks, fmt=fmt)
    if with_test:
        (tmp / "test_images").mkdir()
        for v in rng.integers(0, 16 ** 9, 4):
            _save_rgb_jpeg(tmp / "test_images" / f"{v:09x}.jpg", steel_texture((256, 1600), rng))
    return _finish(tmp, root, {"standin": "severstal", "generator": "defectlib.synth.write_severstal",
                               "seed": seed, "images": n_images, "clean": len(clean), "csv_format": fmt,
                               "images_per_class": counts,
                               "note": "generated stand-in, NOT real Severstal data"})


def _rail_defect(img: np.ndarray, rng, natural: bool) -> np.ndarray:
    """Man-made (cut, grinding, weld spots) or natural (small scars, pits) defect on the running band."""
    h, w = img.shape
    cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.15, 0.85) * h
    if natural:
        r = rng.uniform(4, 14)
        return D.inclusion(img, rng, center=(cx, cy), length=r * rng.uniform(1.5, 4), width=r,
                           angle=rng.normal(np.pi / 2, 0.4), contrast=-rng.uniform(0.2, 0.35))
    kind = rng.integers(0, 3)
    if kind == 0:
        return D.scratch(img, rng, length=rng.uniform(0.2, 0.5) * h, width=int(rng.integers(3, 8)),
                         angle=rng.uniform(0, np.pi), start=(cx, cy), contrast=-rng.uniform(0.25, 0.4))
    if kind == 1:
        return D.patch(img, rng, center=(cx, cy), radius=rng.uniform(0.06, 0.14) * w,
                       contrast=rng.choice([-1, 1]) * rng.uniform(0.2, 0.3))
    return D.pit(img, rng, center=(cx, cy), radius=rng.uniform(6, 16), depth=0.35)


def write_nrsd_mn(root, n_train: int = 40, n_test_man_made: int = 16, n_test_natural: int = 8,
                  size: tuple[int, int] = (256, 256), seed: int = 0) -> Path:
    """NRSD-MN-like set: every image defective, masks 0/255 PNG, man-made train/test + natural test."""
    root, tmp = _start(root)
    rng = np.random.default_rng(seed)
    plan = [("2086", n_train, False), ("1130/965", n_test_man_made, False), ("1130/165", n_test_natural, True)]
    for sub, n, natural in plan:
        (tmp / sub / "img").mkdir(parents=True)
        (tmp / sub / "gt").mkdir(parents=True)
        for k in range(1, n + 1):
            img = rail_texture(size, rng)
            mask = np.zeros(size, bool)
            for _ in range(int(rng.integers(1, 3))):
                mask |= _rail_defect(img, rng, natural)
            Image.fromarray(_u8(img)).save(tmp / sub / "img" / f"{k:04d}.jpg", quality=92)
            Image.fromarray(mask.astype(np.uint8) * 255).save(tmp / sub / "gt" / f"{k:04d}.png")
    return _finish(tmp, root, {"standin": "nrsd-mn", "generator": "defectlib.synth.write_nrsd_mn",
                               "seed": seed, "train": n_train, "test-man-made": n_test_man_made,
                               "test-natural": n_test_natural,
                               "note": "generated stand-in, NOT real NRSD-MN data"})


NEU_SEG_PRIMITIVES = {1: "inclusion", 2: "patches", 3: "scratches"}


def write_neu_seg(root, n_training: int = 48, n_test: int = 16, size: int = 200, seed: int = 0) -> Path:
    """NEU-Seg-like set: ``images/{training,test}/*.jpg`` + ``annotations/{training,test}/*.png``
    with class indices 1 inclusion, 2 patches, 3 scratches (later instances win where they overlap)."""
    root, tmp = _start(root)
    rng = np.random.default_rng(seed)
    for split, n, first in (("training", n_training, 201), ("test", n_test, 1)):
        (tmp / "images" / split).mkdir(parents=True)
        (tmp / "annotations" / split).mkdir(parents=True)
        for k in range(first, first + n):
            img = steel_texture((size, size), rng)
            lab = np.zeros((size, size), np.uint8)
            for c in rng.choice([1, 2, 3], size=int(rng.integers(1, 3)), replace=False):
                lab[_neu_instance(NEU_SEG_PRIMITIVES[int(c)], img, rng)] = c
            _save_rgb_jpeg(tmp / "images" / split / f"{k:06d}.jpg", img)
            Image.fromarray(lab).save(tmp / "annotations" / split / f"{k:06d}.png")
    return _finish(tmp, root, {"standin": "neu-seg", "generator": "defectlib.synth.write_neu_seg", "seed": seed,
                               "training": n_training, "test": n_test,
                               "note": "generated stand-in, NOT real NEU-Seg data"})


MTD_CLASSES = ("Blowhole", "Break", "Crack", "Fray", "Uneven")


def _mtd_defect(cls: str, img: np.ndarray, rng) -> np.ndarray:
    h, w = img.shape
    if cls == "Blowhole":
        return D.pit(img, rng, radius=rng.uniform(3, 8), depth=0.3)
    if cls == "Crack":
        return D.scratch(img, rng, length=rng.uniform(0.2, 0.5) * h, width=2, contrast=-0.3)
    if cls == "Break":
        return D.patch(img, rng, center=(rng.uniform(0.2, 0.8) * w, rng.uniform(0.05, 0.2) * h),
                       radius=rng.uniform(0.08, 0.15) * w, contrast=-0.3)
    if cls == "Fray":
        return D.crazing(img, rng, box=(0, 0.3 * h, w - 1, 0.7 * h), n_cracks=int(rng.integers(6, 15)), contrast=-0.2)
    return D.patch(img, rng, radius=rng.uniform(0.2, 0.35) * min(h, w), contrast=rng.choice([-1, 1]) * 0.15)


def write_mtd(root, n_free: int = 24, per_defect_class: int = 6, seed: int = 0) -> Path:
    """MTD-like set: ``MT_<class>/Imgs/<id>.jpg`` + ``<id>.png`` (0/255), varying sizes, mostly Free."""
    root, tmp = _start(root)
    rng = np.random.default_rng(seed)
    k = 0
    for cls, n in [("Free", n_free)] + [(c, per_defect_class) for c in MTD_CLASSES]:
        folder = tmp / f"MT_{cls}" / "Imgs"
        folder.mkdir(parents=True)
        for _ in range(n):
            h, w = int(rng.integers(222, 404)), int(rng.integers(103, 633))
            img = steel_texture((h, w), rng, mean=rng.uniform(0.2, 0.45), stretch=1.0)
            mask = np.zeros((h, w), bool) if cls == "Free" else _mtd_defect(cls, img, rng)
            stem = f"exp{k % 7}_num_{k}"
            k += 1
            Image.fromarray(_u8(img)).save(folder / f"{stem}.jpg", quality=92)
            Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{stem}.png")
    return _finish(tmp, root, {"standin": "mtd", "generator": "defectlib.synth.write_mtd", "seed": seed,
                               "free": n_free, "per_defect_class": per_defect_class,
                               "note": "generated stand-in, NOT real MTD data"})


STANDINS = {"neu-det": write_neu_det, "severstal": write_severstal, "nrsd-mn": write_nrsd_mn,
            "neu-seg": write_neu_seg, "mtd": write_mtd}


def write_standin(name: str, root, **kwargs) -> Path:
    """Write the stand-in called ``name`` (``neu-det``, ``severstal``, ``nrsd-mn``) into ``root``."""
    if name not in STANDINS:
        raise ValueError(f"no stand-in generator for {name!r}; have {sorted(STANDINS)}")
    return STANDINS[name](root, **kwargs)
