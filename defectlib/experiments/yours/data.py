"""Notebook 05's data: a folder of images and masks the user brings, looked at before any training,
then split into training, validation and test images.

- :class:`FolderSpec`: where the images and masks are and how the masks read: the options of
  :class:`~defectlib.data.ImageMaskFolder` (layout) and of :class:`~defectlib.data.masks.MaskRule`
  (encoding). Without a folder (:func:`folder_spec` with ``data_dir=None``) the notebook reads
  NEU-Seg's training images as such a folder, binarised (any defect class is a defect: the mask
  rule reads its class indices 0..3), from ``data_root`` when it is there, else its generated
  stand-in.
- :func:`look`: ``defectlib data check`` of the folder (every problem a clear error naming the
  file, :mod:`defectlib.data.check`), the defect-pixel share of every image, the empty masks, the
  image sizes and the near-duplicate pairs (:mod:`defectlib.data.duplicates`).
- :func:`split`: a seeded train / validation / test split, stratified by defective or clean and
  grouped so that near-duplicates stay on one side (:func:`~defectlib.data.splits.grouped_split`),
  or the user's own split file, honoured as it is (:func:`read_split_file`).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ...data import ImageMaskFolder
from ...data.check import Report, check_dataset
from ...data.errors import DatasetError, SplitError
from ...data.masks import MaskRule
from ...data.splits import grouped_split, groups_from_pairs
from ...progress import tqdm
from ...runtime import pin_memory
from ...synth import locate
from ..ocinet.data import TrainTransform   # notebook 03's resize, turns by 90 degrees and flips

PARTS = ("train", "val", "test")
_PART_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}


# --- the folder ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FolderSpec:
    """A folder of images and masks: ``images`` / ``masks`` are sub-folders of ``root`` (None: ``root``
    itself), masks named ``<stem><mask_suffix>.<ext>``; the mask rule (``threshold``, ``encoding``,
    ``colors``, ``mat_key``, ``defect_labels``) and ``bit_depth`` as :class:`~defectlib.data.ImageMaskFolder`
    takes them. ``name`` and ``real`` say what the records call the data."""
    root: Path
    images: str | None = "images"
    masks: str | None = "masks"
    mask_suffix: str = ""
    mask_ext: str | None = None
    allow_missing_masks: bool = False
    threshold: float | None = None
    encoding: str = "auto"
    colors: tuple | None = None
    mat_key: str | None = None
    defect_labels: tuple | None = None
    bit_depth: int | None = None
    name: str = ""
    real: bool = True

    def rule(self) -> MaskRule:
        return MaskRule(self.encoding, self.threshold, self.colors, self.mat_key, None, self.defect_labels)

    def open(self) -> ImageMaskFolder:
        """The folder as a dataset; its first problem (no such folder, an image without a mask, two
        files with one stem, masks that fit no rule...) is raised as the data layer words it."""
        return ImageMaskFolder(self.root, images=self.images, masks=self.masks, mask_suffix=self.mask_suffix,
                               mask_ext=self.mask_ext, allow_missing_masks=self.allow_missing_masks,
                               threshold=self.threshold, encoding=self.encoding, colors=self.colors,
                               mat_key=self.mat_key, defect_labels=self.defect_labels, bit_depth=self.bit_depth)

    def check(self, duplicates: bool = True, progress: bool = False) -> Report:
        """``defectlib data check`` of the folder, read as :meth:`open` reads it."""
        return check_dataset(self.root, rule=self.rule(), bit_depth=self.bit_depth, duplicates=duplicates,
                             progress=progress, images=self.images, masks=self.masks,
                             mask_suffix=self.mask_suffix, mask_ext=self.mask_ext,
                             allow_missing_masks=self.allow_missing_masks)

    def command(self) -> str:
        """The ``defectlib data check`` line that reads the folder the same way."""
        opts = [f"--images {self.images or '.'}", f"--masks {self.masks or '.'}"]
        opts += [f"--mask-suffix {self.mask_suffix}"] if self.mask_suffix else []
        opts += [f"--mask-ext {self.mask_ext}"] if self.mask_ext else []
        opts += ["--allow-missing-masks"] if self.allow_missing_masks else []
        opts += [f"--threshold {self.threshold:g}"] if self.threshold is not None else []
        opts += [f"--encoding {self.encoding}"] if self.encoding not in ("auto", "threshold") else []
        return f"defectlib data check {self.root} " + " ".join(opts)


#: the folder of notebook 05 without ``data_dir``: the one its committed seeds (results/) were run on
NEU_SEG = "NEU-Seg training, binarised"


def folder_spec(data_dir=None, data_root=None, **options) -> FolderSpec:
    """The folder notebook 05 reads: ``data_dir`` with ``options`` (the fields of :class:`FolderSpec`),
    or, with no ``data_dir``, NEU-Seg's training images read as a folder and binarised (real under
    ``data_root``, else the generated stand-in)."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        colors = options.pop("colors", None)
        if isinstance(colors, dict):
            colors = tuple(colors.items())
        labels = options.pop("defect_labels", None)
        return FolderSpec(root, colors=colors, defect_labels=tuple(labels) if labels is not None else None,
                          name=options.pop("name", root.name), **options)
    path, real = locate("neu-seg", data_root)
    name = NEU_SEG if real else "NEU-Seg stand-in (generated), binarised"
    return FolderSpec(path, images="images/training", masks="annotations/training", name=name, real=real)


# --- looking before training -----------------------------------------------------------------------
@dataclass
class Look:
    """What :func:`look` found: the folder, the data check's report, per image its defect-pixel
    share and size (height, width), and the near-duplicate pairs (id a, id b, MAD, kind)."""
    spec: FolderSpec
    folder: ImageMaskFolder
    report: Report
    shares: np.ndarray
    sizes: list[tuple[int, int]]
    pairs: list[tuple[str, str, float, str]]
    notes: list[str] = field(default_factory=list)

    @property
    def defective(self) -> np.ndarray:
        return self.shares > 0

    def summary(self) -> dict:
        """The numbers the notebook prints and records (shares in %)."""
        d = self.shares[self.defective]
        sizes = Counter(f"{w}x{h}" for h, w in self.sizes)
        return {"images": len(self.shares), "defective": int(self.defective.sum()),
                "empty masks": int((~self.defective).sum()),
                "image sizes (WxH)": ", ".join(f"{k} ({n})" for k, n in sizes.most_common(3))
                + (f" and {len(sizes) - 3} more" if len(sizes) > 3 else ""),
                "mask rule": self.folder.rule.describe(),
                "defect share, median (%)": round(100 * float(np.median(d)), 3) if len(d) else 0.0,
                "defect share, 5th-95th percentile (%)": (f"{100 * np.quantile(d, 0.05):.3g} to "
                                                          f"{100 * np.quantile(d, 0.95):.3g}" if len(d) else "-"),
                "identical pairs": sum(p[3] == "identical" for p in self.pairs),
                "near-duplicate pairs": sum(p[3] == "near" for p in self.pairs)}


def look(spec: FolderSpec, duplicates: bool = True, progress: bool = False) -> Look:
    """Open and check the folder, then read every mask once. A bad folder stops here with the data
    layer's first error (it names the file and the problem; ``print(look.report)`` lists them all)."""
    try:
        folder = spec.open()
    except DatasetError as exc:
        boxes = _voc_files(spec.root)
        if boxes:   # boxes where masks were expected: say so, not only "image has no mask"
            raise DatasetError(spec.root, f"{exc.problem}; the folder holds VOC box annotations ({boxes[0].name}...): "
                                          "notebook 05 trains segmentation models on masks; boxes are notebook "
                                          "01's detector (DANet), not part of notebook 05 yet") from exc
        raise
    report = spec.check(duplicates=duplicates, progress=progress)
    if report.problems:
        first = report.problems[0]
        more = len(report.problems) - 1
        if more:
            raise type(first)(first.path, f"{first.problem} (and {more} more problems: "
                                          f"`{spec.command()}` lists them)")
        raise first
    shares, sizes = np.zeros(len(folder)), []
    for i in tqdm(range(len(folder)), desc="masks", disable=not progress):
        image, stored = folder.load_arrays(i)
        mask = folder.decode(i, stored) > 0
        shares[i] = float(mask.mean())
        sizes.append(image.shape[:2])
    pairs = [(p.a.split("/", 1)[1], p.b.split("/", 1)[1], p.mad, p.kind) for p in report.pairs]
    notes = list(report.warnings[:5]) + ([f"... {len(report.warnings) - 5} more warnings"]
                                         if len(report.warnings) > 5 else [])
    return Look(spec, folder, report, shares, sizes, pairs, notes)


def _voc_files(root: Path) -> list[Path]:
    """Pascal VOC ``.xml`` files in ``root`` or one folder below it."""
    if not root.is_dir():
        return []
    return sorted([*root.glob("*.xml"), *root.glob("*/*.xml")])[:1]


# --- the split -------------------------------------------------------------------------------------
@dataclass
class YourData:
    """The folder split three ways: ``parts[name]`` are indices into ``look.folder``."""
    look: Look
    parts: dict[str, list[int]]
    source: str                                  # "seeded split (seed N)" or the split file
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.look.spec.name

    @property
    def real(self) -> bool:
        return self.look.spec.real

    def ids(self, part: str) -> list[str]:
        return [self.look.folder.ids[i] for i in self.parts[part]]

    def dataset(self, part: str, transform=None) -> Dataset:
        return Part(self.look.folder, self.parts[part], transform)

    def counts(self) -> dict[str, str]:
        d = self.look.defective
        return {p: f"{len(ix)} images ({int(d[ix].sum())} defective)" for p, ix in self.parts.items()}


class Part(Dataset):
    """Images ``indices`` of ``folder``, each ``(image, mask)`` through ``transform`` when given."""

    def __init__(self, folder: ImageMaskFolder, indices, transform=None):
        self.folder, self.indices, self.transform = folder, list(indices), transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        image, mask = self.folder[self.indices[i]]
        return self.transform(image, mask) if self.transform is not None else (image, mask)


def split(look: Look, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0,
          split_file=None, min_images: int = 20, max_images: int | None = None) -> YourData:
    """Train / validation / test indices of the folder (see the module docstring). ``max_images``:
    a seeded subset of the folder first (the smoke profile; a split file is honoured whole). Too
    few images is a SplitError saying what is needed."""
    folder, n = look.folder, len(look.folder)
    keep = list(range(n))
    notes: list[str] = []
    if max_images is not None and n > max_images and split_file is None:
        keep = sorted(np.random.default_rng(seed).permutation(n)[:max_images].tolist())
        notes.append(f"{max_images} of the {n} images used (a seeded subset: the profile's max_images)")
    if split_file is not None:
        parts = read_split_file(split_file, [folder.ids[i] for i in keep])
        parts = {p: [keep[i] for i in ix] for p, ix in parts.items()}
        notes += _leaks(look, parts)
        return YourData(look, parts, f"split file {split_file}", notes)
    if len(keep) < min_images:
        raise SplitError(look.spec.root, f"{len(keep)} labelled images: too few to split into training, "
                                         f"validation and test images; notebook 05 needs at least {min_images} "
                                         f"(about {min_images - 2 * max(1, round(min_images * 0.15))} to train, "
                                         f"{max(1, round(min_images * 0.15))} to choose the threshold, "
                                         f"{max(1, round(min_images * 0.15))} to test). Label more images, or "
                                         "give split_file= with your own split")
    ids = [folder.ids[i] for i in keep]
    labels = [int(look.shares[i] > 0) for i in keep]
    groups = groups_from_pairs(ids, [(a, b) for a, b, _, _ in look.pairs])
    train, val, test = grouped_split(labels, (val_fraction, test_fraction), seed=seed, groups=groups)
    parts = {"train": [keep[i] for i in train], "val": [keep[i] for i in val], "test": [keep[i] for i in test]}
    empty = [p for p, ix in parts.items() if not ix]
    if empty:
        raise SplitError(look.spec.root, f"the seeded split left {', '.join(empty)} empty ({len(keep)} images, "
                                         f"fractions {val_fraction} / {test_fraction}): label more images")
    if groups:
        notes.append(f"{len(groups)} groups of near-duplicate images ({sum(map(len, groups))} images) kept whole "
                     "on one side of the split")
    return YourData(look, parts, f"seeded split (seed {seed}), stratified by defective / clean", notes)


def _leaks(look: Look, parts: dict[str, list[int]]) -> list[str]:
    """Notes on near-duplicate pairs that a user's split puts on two sides (honoured, but said)."""
    side = {look.folder.ids[i]: p for p, ix in parts.items() for i in ix}
    cross = [(a, b) for a, b, _, _ in look.pairs if a in side and b in side and side[a] != side[b]]
    if not cross:
        return []
    return [f"the split file puts {len(cross)} near-duplicate pairs on two sides (e.g. {cross[0][0]} in "
            f"{side[cross[0][0]]}, {cross[0][1]} in {side[cross[0][1]]}): their test scores are optimistic"]


def read_split_file(path, ids: list[str]) -> dict[str, list[int]]:
    """A split file: one line per image, ``<image>,<part>`` (comma, tab or spaces), ``<image>`` its
    file name or stem, ``<part>`` train / val (validation) / test; blank lines, ``#`` comments and a
    header line are skipped. Every image of the folder must be listed once: each problem is a
    SplitError naming the file and the line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SplitError(path, "split file not found")
    index = {k: i for i, k in enumerate(ids)}
    parts: dict[str, list[int]] = {p: [] for p in PARTS}
    seen: dict[str, int] = {}
    for ln, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f for f in re.split(r"[,\t ]+", line) if f]
        if len(fields) != 2:
            raise SplitError(path, f"line {ln}: {line!r} is not '<image>,<part>'")
        name, part = fields
        stem = name if name in index else Path(name).stem
        if part.lower() not in _PART_NAMES:
            if not seen and stem not in index:       # a header line ("image,split") before any image
                continue
            raise SplitError(path, f"line {ln}: part {part!r} is not one of train, val, test")
        if stem not in index:
            raise SplitError(path, f"line {ln}: image {name!r} is not in the folder (e.g. {ids[0]!r} is)")
        if stem in seen:
            raise SplitError(path, f"line {ln}: image {name!r} is listed twice (also line {seen[stem]})")
        seen[stem] = ln
        parts[_PART_NAMES[part.lower()]].append(index[stem])
    missing = [k for k in ids if k not in seen]
    if missing:
        raise SplitError(path, f"{len(missing)} images of the folder are not listed, e.g. {missing[:3]} "
                               "(list every image once: train, val or test)")
    empty = [p for p in PARTS if not parts[p]]
    if empty:
        raise SplitError(path, f"no image in {', '.join(empty)}: notebook 05 needs training, validation "
                               "(to choose the threshold) and test images")
    return {p: sorted(ix) for p, ix in parts.items()}


# --- training batches ------------------------------------------------------------------------------
class Repeated(Dataset):
    """``dataset`` read ``length`` times in a row (index ``i`` is item ``i mod len``): an epoch of a
    fixed number of batches whatever the folder's size (the loader shuffles it)."""

    def __init__(self, dataset: Dataset, length: int):
        self.dataset, self.length = dataset, int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        return self.dataset[i % len(self.dataset)]


def train_loader(data: YourData, cfg, plan, seed: int = 0, batch_size: int | None = None) -> DataLoader:
    """Seeded, shuffled batches of ``plan.batch_size`` resized (and, with ``cfg.augment``, turned
    and flipped) training images: ``plan.steps_per_epoch`` of them per epoch. ``batch_size``: each
    process's share of the plan's batch under torchrun (the engine shards the epoch)."""
    train = data.dataset("train", TrainTransform(cfg.input_size, cfg.augment))
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(Repeated(train, plan.images_per_epoch), batch_size=batch_size or plan.batch_size, shuffle=True,
                      drop_last=True, num_workers=cfg.num_workers, pin_memory=pin_memory(cfg.pin_memory),
                      generator=gen)


def with_models(models) -> dict:
    """The profile change a notebook's ``models`` parameter asks for (None: the profile's own)."""
    return {} if models is None else {"models": tuple([models] if isinstance(models, str) else models)}


__all__ = ["PARTS", "FolderSpec", "folder_spec", "Look", "look", "YourData", "Part", "split", "read_split_file",
           "Repeated", "train_loader", "with_models"]
