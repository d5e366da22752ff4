"""``defectlib data check PATH``: validate a dataset folder and find duplicates / near-duplicates.

Reports every problem instead of stopping at the first: counts per split and class, image/mask and
image/annotation pairs, decodability, sizes, mask value ranges, boxes inside images, RLE validity.
Duplicates: identical pixels (exact hash), near-duplicates by a 64-bit perceptual hash (DCT of a
32x32 thumbnail, Zauner 2010) with Hamming distance <= ``max_hamming``, confirmed by the mean
absolute grey difference (MAD) of the full images being below ``mad_threshold`` (default 2.9 grey
levels, as in NEU-Seg's SOURCE.md). On low-contrast steel textures the DCT hash is only a coarse
filter: true copies re-encoded as JPEG reach Hamming distances of 18, hence the loose default. Each pair is
labelled within-split or cross-split -- cross-split pairs leak test images into training.

Masks are read with the loaders' own rules (:mod:`defectlib.data.masks`): MTD and NRSD-MN grey
level > 127, NEU-Seg class indices 0..3, a generic folder by ``MaskRule`` (``encoding="auto"``
unless ``threshold`` / ``encoding`` / ``colors`` / ``mat_key`` say otherwise). A mask the rule
cannot read is a problem, and so is a folder whose masks are *all* empty (masks stored in an
encoding the rule misreads look exactly like that). A generic folder takes the options of
:class:`~defectlib.data.ImageMaskFolder` (``images``, ``masks``, ``mask_suffix``, ``mask_ext``,
``allow_missing_masks``); without them the layout is guessed and the report says which it assumed.
A folder is what the loaders call a folder: the guess pairs ``x.bmp`` + ``x.png`` in one folder
(MTD-style, masks by extension) and never reads a mask as an image; ``encoding="auto"`` is decided
once for the folder by the loaders' own :func:`~defectlib.data.masks.decide_auto` and the report
says what it decided. Hidden files (``._x.png``) are skipped and noted.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .duplicates import near_pairs, phash, thumbnail
from .errors import (AnnotationError, DatasetError, DatasetNotFoundError, EmptyDatasetError, MaskEncodingError,
                     MaskSizeError, MissingFileError)
from .folder import KNOWN_SUFFIXES, scan_pairs
from .io import IMAGE_EXTS, is_hidden, read_gray
from .masks import MaskRule, decide_auto, decode_mask, read_mask_as

FOLDER_OPTIONS = ("images", "masks", "mask_suffix", "mask_ext", "allow_missing_masks")
#: extensions a mask beside its image is guessed to have (``x.bmp`` + ``x.png``: the .png is the mask)
MASK_EXT_PREFERENCE = (".png", ".bmp", ".tif", ".tiff", ".gif")


@dataclass
class Sample:
    key: str
    split: str
    image: Path
    mask: Path | None = None
    xml: Path | None = None
    rles: dict | None = None
    label: str = ""


@dataclass
class Report:
    path: Path
    kind: str
    counts: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    pairs: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
    cross_dataset: list = field(default_factory=list)
    hidden: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [f"defectlib data check: {self.path}  (format: {self.kind})", "", "Counts:"]
        for k, v in self.counts.items():
            lines.append(f"  {k}: {v}")
        for k, v in self.info.items():
            lines.append(f"  {k}: {v}")
        lines += ["", f"Problems: {len(self.problems)}"] + [f"  [{type(p).__name__}] {p}" for p in self.problems]
        lines += ["", f"Warnings: {len(self.warnings)}"] + [f"  {w}" for w in self.warnings]
        ident = [p for p in self.pairs if p.kind == "identical"]
        near = [p for p in self.pairs if p.kind == "near"]
        cross = [p for p in self.pairs if p.cross_split]
        lines += ["", f"Duplicates: {len(ident)} identical, {len(near)} near-duplicate pairs "
                      f"({len(cross)} across splits)"]
        for p in sorted(self.pairs, key=lambda p: (not p.cross_split, p.mad)):
            where = "CROSS-SPLIT" if p.cross_split else "same split"
            lines.append(f"  {p.kind:9s} {where:11s} MAD={p.mad:5.2f} hamming={p.hamming:2d}  {p.a}  {p.b}")
        if self.cross_dataset:
            by_kind = Counter(p.kind for p in self.cross_dataset)
            lines += ["", f"Shared with the other dataset: {len(self.cross_dataset)} pairs "
                          f"({by_kind.get('identical', 0)} identical, {by_kind.get('near', 0)} near)"]
            by_split = Counter((p.a.split("/")[0], p.b.split("/")[0]) for p in self.cross_dataset)
            for (sa, sb), n in sorted(by_split.items()):
                lines.append(f"  {n:4d} pairs  {sa} <-> {sb}")
        lines.append("")
        lines.append("OK" if self.ok else f"{len(self.problems)} problem(s) found")
        return "\n".join(lines)


# ---------------------------------------------------------------- format detection and enumeration
def detect_kind(root: Path) -> str:
    if (root / "ANNOTATIONS").is_dir() or (root / "train" / "annotations").is_dir():
        return "neu-det"
    if (root / "images" / "training").is_dir() or (root / "annotations" / "training").is_dir():
        return "neu-seg"
    if any(p.name.startswith("MT_") for p in root.iterdir() if p.is_dir()):
        return "mtd"
    if (root / "train.csv").is_file():
        return "severstal"
    if (root / "2086").is_dir() or (root / "1130").is_dir() or (root / "test" / "man-made").is_dir():
        return "nrsd-mn"
    return "folder"


def _images(folder: Path, ext: str | None = None, report=None) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    files = [p for p in sorted(folder.iterdir())
             if p.suffix.lower() in IMAGE_EXTS and (ext is None or p.suffix.lower() == ext)]
    if report is not None:
        report.hidden += [p for p in files if is_hidden(p)]
    return {p.stem: p for p in files if not is_hidden(p)}


def _scan(report, split, image_dir, mask_dir=None, label="", **kw) -> list[Sample]:
    """Image/mask pairs exactly as the loaders pair them (:func:`~defectlib.data.folder.scan_pairs`)."""
    items, problems = scan_pairs(image_dir, mask_dir, hidden=report.hidden, **kw)
    report.problems.extend(problems)
    return [Sample(f"{split}/{stem}", split, img, mask=m, label=label) for stem, img, m, _ in items]


def guess_folder_layout(root: Path) -> dict:
    """ImageMaskFolder options for a folder of unknown layout: ``images/`` + ``masks/``, else one
    folder with masks named ``<stem>_GT.*`` (or another :data:`KNOWN_SUFFIXES`), else one folder
    with ``x.bmp`` + ``x.png`` (masks by extension, :data:`MASK_EXT_PREFERENCE`), else images only."""
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return {"images": "images", "masks": "masks"}
    files = [p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTS and not is_hidden(p)]
    stems = {p.stem for p in files}
    for suffix in KNOWN_SUFFIXES:
        paired = [s for s in stems if s.endswith(suffix) and s[: -len(suffix)] in stems]
        if paired and 2 * len(paired) >= len(stems) // 2:
            return {"images": None, "masks": None, "mask_suffix": suffix}
    exts: dict[str, set] = {}
    for p in files:
        exts.setdefault(p.stem, set()).add(p.suffix.lower())
    pairs = [e for e in exts.values() if len(e) == 2]
    if pairs and 2 * len(pairs) >= len(stems):
        for ext in MASK_EXT_PREFERENCE:  # the mask extension: present in every pair
            if all(ext in e for e in pairs):
                return {"images": None, "masks": None, "mask_ext": ext}
    return {"images": "images" if (root / "images").is_dir() else None, "masks": False}


def _describe_layout(root: Path, opts: dict) -> str:
    img = root / opts["images"] if opts.get("images") else root
    if opts.get("masks") is False:
        return f"images in {img}, no masks (images only)"
    msk = root / opts["masks"] if opts.get("masks") else root
    name = f"<stem>{opts.get('mask_suffix') or ''}{opts.get('mask_ext') or '.*'}"
    return f"images in {img}, masks {msk}/{name}" + (", masks optional" if opts.get("allow_missing_masks") else "")


def _pair(report, split, imgs: dict, others: dict, what: str, label: str = "", attr="mask") -> list[Sample]:
    out = []
    for stem, p in imgs.items():
        if stem not in others:
            report.problems.append(MissingFileError(p, f"image has no {what}"))
            continue
        out.append(Sample(f"{split}/{stem}", split, p, label=label, **{attr: others[stem]}))
    for stem in sorted(set(others) - set(imgs)):
        report.problems.append(MissingFileError(others[stem], f"{what} has no image"))
    return out


def _enumerate(root: Path, kind: str, report: Report, layout: dict | None = None) -> list[Sample]:
    samples: list[Sample] = []
    if kind == "neu-det":
        from .neu_det import filename_class
        layouts = [("all", root / "IMAGES", root / "ANNOTATIONS")] if (root / "ANNOTATIONS").is_dir() else \
            [(s, root / s / "images", root / s / "annotations") for s in ("train", "validation", "val", "test")
             if (root / s).is_dir()]
        for split, idir, adir in layouts:
            xmls = {p.stem: p for p in sorted(adir.glob("*.xml")) if not is_hidden(p)} if adir.is_dir() else {}
            for s in _pair(report, split, _images(idir, report=report), xmls, "annotation (.xml)", attr="xml"):
                s.label = filename_class(s.image.stem)
                samples.append(s)
    elif kind == "neu-seg":
        for split in ("training", "test"):
            samples += _scan(report, split, root / "images" / split, root / "annotations" / split, mask_ext=".png")
    elif kind == "mtd":
        for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("MT_")):
            samples += _scan(report, d.name, d / "Imgs", mask_ext=".png", label=d.name[3:])
    elif kind == "nrsd-mn":
        from .nrsd_mn import SPLITS, split_dirs
        for split in SPLITS:
            try:
                idir, gdir = split_dirs(root, split)
            except DatasetError as exc:
                report.warnings.append(str(exc))
                continue
            samples += _scan(report, split, idir, gdir)
    elif kind == "severstal":
        from .severstal import read_train_csv
        try:
            rles, listed, fmt = read_train_csv(root / "train.csv")
        except DatasetError as exc:
            report.problems.append(exc)
            rles, listed, fmt = {}, [], "?"
        report.info["train.csv format"] = fmt
        for split in ("train_images", "test_images"):
            imgs = {p.name: p for p in _images(root / split, report=report).values()}
            for name, p in imgs.items():
                r = rles.get(name, {}) if split == "train_images" else None
                lab = ("+".join(map(str, sorted(r))) or "clean") if r is not None else "test"
                samples.append(Sample(f"{split}/{name}", split, p, rles=r, label=lab))
            if split == "train_images":
                for name in listed:
                    if name not in imgs:
                        report.problems.append(MissingFileError(root / split / name, "listed in train.csv but missing"))
    else:
        opts = layout or guess_folder_layout(root)
        report.info["layout"] = _describe_layout(root, opts) + ("" if layout else " (guessed; pass "
                                                                "--images/--masks/--mask-suffix to change)")
        if opts.get("masks") is False:  # images only: listed as the loaders list them (same-stem files clash)
            folder = root / opts["images"] if opts.get("images") else root
            samples += _scan(report, "all", folder, folder, allow_missing_masks=True, mask_ext=".none")
        else:
            samples += _scan(report, "all", root / opts["images"] if opts.get("images") else root,
                             root / opts["masks"] if opts.get("masks") else root,
                             mask_suffix=opts.get("mask_suffix") or "", mask_ext=opts.get("mask_ext"),
                             allow_missing_masks=bool(opts.get("allow_missing_masks")))
    return samples


# ---------------------------------------------------------------- per-sample checks and hashes
def mask_rule(kind: str, rule: MaskRule | None = None) -> MaskRule:
    """The rule the loader of ``kind`` reads masks with (``rule`` for a generic folder)."""
    if kind == "neu-seg":
        return MaskRule("index", num_classes=4)
    if kind in ("mtd", "nrsd-mn"):
        return MaskRule(threshold=127)
    return rule or MaskRule()


def _check_sample(s: Sample, kind: str, report: Report, mask_values: Counter, rule: MaskRule,
                  masks_seen: list, bit_depth: int | None = None, read_as: Counter | None = None
                  ) -> np.ndarray | None:
    from .neu_det import parse_voc
    from .severstal import check_rle_size, decode_masks
    try:
        img = read_gray(s.image, bit_depth)
    except DatasetError as exc:
        report.problems.append(exc)
        return None
    low = _low_bits(s.image) if bit_depth is None else None
    if low:
        report.warnings.append(f"{s.image}: 16-bit image whose values stop at {low} (< 4096): 10/12-bit camera "
                               "data in a 16-bit file reads dark; pass bit_depth=12 (--bit-depth 12) if so")
    if img.max() == img.min():
        report.warnings.append(f"{s.image}: constant image (every pixel = {img.max()})")
    if s.xml is not None:
        try:
            rec = parse_voc(s.xml)
            if (rec.height, rec.width) != img.shape:
                report.problems.append(AnnotationError(s.xml, f"<size> {rec.width}x{rec.height} differs from the "
                                                              f"image's {img.shape[1]}x{img.shape[0]}"))
            for lab in rec.labels:
                report.counts.setdefault("boxes per class", Counter())[int(lab)] += 1
            if rec.labels.size == 0:
                report.warnings.append(f"{s.xml}: no objects")
        except DatasetError as exc:
            report.problems.append(exc)
    if s.mask is not None:
        try:
            m, how = read_mask_as(s.mask, rule)
            if read_as is not None:
                read_as[how] += 1
            if m.shape[:2] != img.shape:
                raise MaskSizeError(s.mask, f"mask is {m.shape[1]}x{m.shape[0]} but image {s.image.name} "
                                            f"is {img.shape[1]}x{img.shape[0]}")
            if m.ndim == 2:
                vals, cnt = np.unique(m, return_counts=True)
                mask_values.update(dict(zip(vals.tolist(), cnt.tolist())))
            defect = decode_mask(m, rule, s.mask).any()
            masks_seen.append(bool(defect))
            if kind in ("mtd", "nrsd-mn", "folder") and s.label != "Free" and not defect:
                report.warnings.append(f"{s.mask}: empty mask (no defect pixel under rule {rule.describe()})")
        except DatasetError as exc:
            report.problems.append(exc)
    if s.rles:
        try:
            check_rle_size(s.image, img.shape, has_rle=True)
            decode_masks(s.rles, img.shape, source=f"train.csv [{s.image.name}]")
        except DatasetError as exc:
            report.problems.append(exc)
    return img


def _low_bits(path) -> int | None:
    """The largest value of a 16-bit image when it is below 4096 (12-bit data?), else None."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            if not im.mode.startswith("I;16") and not (im.mode == "I" and im.format == "PNG"):
                return None
            top = int(np.asarray(im).max())
    except Exception:
        return None
    return top if 0 < top < 4096 else None


def check_dataset(path, kind: str | None = None, max_hamming: int = 22, mad_threshold: float = 2.9,
                  duplicates: bool = True, progress: bool = False, against=None,
                  rule: MaskRule | None = None, bit_depth: int | None = None, **layout) -> Report:
    """Check a dataset folder; returns a :class:`Report` (``print(report)`` for the text).

    ``against``: another dataset folder; duplicates between the two are reported too (keys then
    carry the folder name, e.g. ``neu-seg:test/000001`` vs ``neu-det:all/inclusion_1``), the
    other folder itself is not validated. ``bit_depth`` as :func:`~defectlib.data.io.read_gray`.
    ``rule`` (a :class:`~defectlib.data.masks.MaskRule`) and
    the layout options of :class:`~defectlib.data.ImageMaskFolder` (``images``, ``masks``,
    ``mask_suffix``, ``mask_ext``, ``allow_missing_masks``) read the folder as that class does;
    either makes the format ``"folder"``.
    """
    root = Path(path)
    unknown = sorted(set(layout) - set(FOLDER_OPTIONS))
    if unknown:
        raise TypeError(f"check_dataset() got unknown options {unknown}; layout options are {FOLDER_OPTIONS}")
    if (layout or rule is not None) and kind not in (None, "folder"):
        raise ValueError(f"kind={kind!r} has its own layout and mask rule; the folder options "
                         f"({', '.join(sorted(layout)) or 'rule'}) apply to kind='folder'")
    if not root.is_dir():
        report = Report(root, kind or "?")
        report.problems.append(DatasetNotFoundError(root, "folder not found"))
        return report
    if layout:
        layout = {"images": "images", "masks": "masks"} | layout
    kind = kind or ("folder" if layout or rule is not None else detect_kind(root))
    report = Report(root, kind)
    rule = mask_rule(kind, rule)
    samples = _enumerate(root, kind, report, layout or None)
    if not samples:
        report.problems.append(EmptyDatasetError(root, f"no samples found for format {kind!r}"))
        return report
    if kind == "folder":
        try:  # "auto" decided once for the folder, exactly as ImageMaskFolder decides it
            rule = decide_auto([s.mask for s in samples], rule)
        except DatasetError as exc:
            report.problems.append(exc)
    report.counts["samples per split"] = dict(Counter(s.split for s in samples))
    labels = Counter(f"{s.split}/{s.label}" for s in samples if s.label)
    if labels:
        report.counts["samples per split/class"] = dict(sorted(labels.items()))
    mask_values: Counter = Counter()
    keys, hashes, shapes, paths, exact, thumbs = [], [], [], [], [], []
    sizes: Counter = Counter()

    def fingerprint(key, path, img):  # what the duplicate search compares
        keys.append(key)
        paths.append(path)
        shapes.append(img.shape)
        hashes.append(phash(img))
        thumbs.append(thumbnail(img))
        exact.append(hashlib.sha1(img.tobytes() + str(img.shape).encode()).hexdigest())
    from ..progress import tqdm
    it = tqdm(samples, desc=f"check {root.name}") if progress else samples
    masks_seen: list[bool] = []
    read_as: Counter = Counter()
    for s in it:
        img = _check_sample(s, kind, report, mask_values, rule, masks_seen, bit_depth, read_as)
        if img is None:
            continue
        sizes[f"{img.shape[1]}x{img.shape[0]}"] += 1
        if duplicates:
            fingerprint(s.key, s.image, img)
    report.info["image sizes (WxH)"] = dict(sizes.most_common(5)) | ({"...": f"{len(sizes)} sizes"} if len(sizes) > 5 else {})
    with_mask = sum(s.mask is not None for s in samples)
    if with_mask:
        report.info["mask rule"] = rule.describe()
        if set(read_as) - {"grey"}:
            report.info["mask files read as"] = dict(sorted(read_as.items()))
        unread = with_mask - len(masks_seen)
        if masks_seen and not any(masks_seen):
            report.problems.append(MaskEncodingError(root, f"all {len(masks_seen)} masks read are empty under "
                                                           f"rule {rule.describe()}: the masks are probably "
                                                           "stored in another encoding (see data/README.md; "
                                                           "--threshold / --encoding / --colors)"))
        if unread:
            report.info["masks unreadable"] = f"{unread} of {with_mask} (see problems)"
    if report.hidden:
        names = sorted({p.name for p in report.hidden})
        report.info["hidden files skipped"] = f"{len(names)} ({', '.join(names[:3])}{' ...' if len(names) > 3 else ''})"
    if mask_values:
        vals = sorted(mask_values)
        valid = {0, 1, 2, 3} if kind == "neu-seg" else {0, 255} if 255 in mask_values else {0, 1}
        if (rule.decision() or "").startswith("class indices"):  # auto decided class indices 0..K
            valid = set(range(int(max(rule.decided)) + 1))
        odd = sum(c for v, c in mask_values.items() if v not in valid)
        report.info["mask values"] = (f"{len(vals)} distinct, {vals[:6]}{'...' if len(vals) > 6 else ''}; "
                                      f"{odd} of {sum(mask_values.values())} pixels outside {sorted(valid)}")
    if "boxes per class" in report.counts:
        from .neu_det import CLASSES
        report.counts["boxes per class"] = {CLASSES[k - 1]: v for k, v in sorted(report.counts["boxes per class"].items())}
    if duplicates and against is not None:
        other = Path(against)
        scratch = Report(other, detect_kind(other))
        others = _enumerate(other, scratch.kind, scratch)
        keys[:] = [f"{root.name}:{k}" for k in keys]
        n_own = len(keys)
        for s in (tqdm(others, desc=f"hash {other.name}") if progress else others):
            try:
                img = read_gray(s.image)
            except DatasetError:
                continue
            fingerprint(f"{other.name}:{s.key}", s.image, img)
        pairs = near_pairs(keys, hashes, shapes, paths, max_hamming, mad_threshold, exact, thumbs)
        own = set(keys[:n_own])
        report.pairs = [p for p in pairs if (p.a in own) == (p.b in own) and p.a in own]
        report.cross_dataset = [p for p in pairs if (p.a in own) != (p.b in own)]
        report.info["compared against"] = f"{other} ({len(others)} images)"
    elif duplicates:
        report.pairs = near_pairs(keys, hashes, shapes, paths, max_hamming, mad_threshold, exact, thumbs)
    return report
