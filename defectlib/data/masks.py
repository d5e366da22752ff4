"""How a stored mask file becomes a mask: one rule per encoding, never a silent guess.

Public defect sets store their ground truth in many ways. :class:`MaskRule` names the encoding and
:func:`read_mask` + :func:`decode_mask` turn a file into class indices ``uint8 [H, W]`` (0 is
background; a binary dataset keeps ``> 0``). The full table is in ``data/README.md``; in short:

Reading the file (:func:`read_mask`), whatever the encoding:

* EXIF orientation is applied (as to images, :mod:`defectlib.data.io`).
* Palette PNGs: a palette whose *used* entries are all grey (black/white, as an editor's indexed
  mode or PIL's ``quantize(2)`` writes a white-on-black mask) is read by its colours (grey
  levels); a palette with colours (VOC-style class palettes) by its indices. ``encoding="index"``
  always reads indices, ``colors=`` always reads colours.
* An alpha channel that is not fully opaque (masks painted on a transparent layer, RGBA / LA):
  transparent is background. Drawn in one colour: the mask is the alpha (opacity) channel; drawn
  in several colours: those colours on black, read by the colour rules.
* JPEG masks are refused unless ``threshold=T`` is given: JPEG changes the stored values (a 0/1
  mask comes back as 0, 1, 2 ...), so only a grey-level threshold can read one.
* 16-bit masks keep their values (0/65535 is binary); with ``threshold=T`` they are first scaled
  by the format, ``value / 65535 * 255``.

``encoding="auto"`` (the default) is decided **once per folder** (:func:`decide_auto`: from all
its masks, or an evenly spaced sample of :data:`AUTO_SAMPLE`), then applied to every file:

========================  =======================================================================
stored values (folder)    read as
========================  =======================================================================
{0} only                  an empty mask (no defect)
0 and one other value v   binary: v is the defect (0/255, 0/1, 0/128 ... all mean the same)
0 and values 1..K         class indices 0..K (K <= :data:`MAX_AUTO_CLASSES`)
RGB, black + one colour   binary: that colour is the defect (a red-on-black mask, say)
RGB, several colours      error: pass ``colors={(r, g, b): class, ...}``
masks that disagree       error naming two files (one 0/1, one 0/255 ...)
anything else             error naming the file, the values found and the option to pass:
                          ``threshold=T`` (grey level > T is a defect: anti-aliased, bilinear-
                          upscaled or JPEG masks, MTD's {0, 128, 255}), or ``encoding="index"``
no value 0 (e.g. {1, 2})  error: the background value is unknown (CrackForest's 1 = background,
                          2 = crack needs ``defect_labels=[2]`` or ``threshold=1``)
========================  =======================================================================

Other encodings, chosen explicitly: ``threshold=T`` (grey level ``> T``; colour images are first
converted to grey as PIL's ``convert("L")`` does, which is how MTD and NRSD-MN are read; a label
image (``.mat``) with more than two labels is refused: which labels are defects is the user's
call), ``defect_labels=[v, ...]`` (those stored values are a defect, every other value is
background), ``encoding="binary"`` (any non-zero value is a defect), ``encoding="index"`` (values
are class indices, checked against ``num_classes`` when given) and ``colors`` (RGB colour -> class
index; an unlisted colour is an error). MATLAB ``.mat`` ground truth is read with
``scipy.io.loadmat``: ``mat_key`` names the variable (``"gt"``), or a field path into a struct
(``"groundTruth.Segmentation"``); without it the file must hold exactly one 2-D array. Its values
then follow the same rules.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import CorruptImageError, DatasetError, MaskEncodingError
from .io import gray_levels, upright

ENCODINGS = ("auto", "binary", "threshold", "index", "color", "labels")
#: the largest class index ``encoding="auto"`` accepts without being told
MAX_AUTO_CLASSES = 32
#: how many masks (evenly spaced) ``encoding="auto"`` reads to decide a folder's encoding
AUTO_SAMPLE = 500
MASK_EXTS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".gif", ".mat")


@dataclass(frozen=True)
class MaskRule:
    """Which encoding a folder's masks use (see the module docstring for every rule).

    ``threshold`` given implies ``encoding="threshold"``; ``colors`` implies ``"color"``;
    ``defect_labels`` implies ``"labels"``. ``decided`` / ``decided_from`` are set by
    :func:`decide_auto`: the stored values of the folder's masks that ``"auto"`` was decided from.
    """

    encoding: str = "auto"
    threshold: float | None = None
    colors: tuple | None = None  # ((r, g, b), class) pairs; a dict is accepted and converted
    mat_key: str | None = None
    num_classes: int | None = None
    defect_labels: tuple | None = None
    decided: tuple | None = None
    decided_from: int = 0

    def __post_init__(self):
        enc = self.encoding
        if self.threshold is not None:
            if enc not in ("auto", "threshold"):
                raise ValueError(f"threshold={self.threshold!r} contradicts encoding={enc!r}")
            if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                    or not np.isfinite(self.threshold):
                raise ValueError(f"threshold must be a finite number, got {self.threshold!r}")
            object.__setattr__(self, "encoding", "threshold")
        if self.colors is not None:
            if enc not in ("auto", "color"):
                raise ValueError(f"colors= contradicts encoding={enc!r}")
            items = self.colors.items() if isinstance(self.colors, dict) else self.colors
            try:
                pairs = tuple((tuple(int(c) for c in rgb), int(k)) for rgb, k in items)
            except (TypeError, ValueError):
                raise ValueError(f"colors must map (r, g, b) to a class index, got {self.colors!r}") from None
            if not pairs or any(len(rgb) != 3 for rgb, _ in pairs):
                raise ValueError(f"colors must map (r, g, b) to a class index, got {self.colors!r}")
            object.__setattr__(self, "colors", pairs)
            object.__setattr__(self, "encoding", "color")
        if self.defect_labels is not None:
            if enc not in ("auto", "labels") or self.threshold is not None or self.colors is not None:
                raise ValueError(f"defect_labels= contradicts encoding={enc!r} / threshold / colors")
            raw = [self.defect_labels] if np.isscalar(self.defect_labels) else list(self.defect_labels)
            try:
                labels = tuple(sorted({float(v) if float(v) != int(v) else int(v) for v in raw}))
            except (TypeError, ValueError):
                raise ValueError(f"defect_labels must be stored values, got {self.defect_labels!r}") from None
            if not labels:
                raise ValueError("defect_labels= is empty: name the stored values that are defects")
            object.__setattr__(self, "defect_labels", labels)
            object.__setattr__(self, "encoding", "labels")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}; got {enc!r}")
        if self.encoding == "threshold" and self.threshold is None:
            raise ValueError("encoding='threshold' needs threshold=T (grey level > T is a defect)")
        if self.encoding == "color" and self.colors is None:
            raise ValueError("encoding='color' needs colors={(r, g, b): class, ...}")
        if self.encoding == "labels" and self.defect_labels is None:
            raise ValueError("encoding='labels' needs defect_labels=[v, ...] (the stored values that are defects)")

    def decision(self) -> str | None:
        """What ``"auto"`` decided for the folder (``None`` before :func:`decide_auto`)."""
        if self.decided is None or len(self.decided) <= 1:
            return None
        nonzero = [v for v in self.decided if v != 0]
        if len(nonzero) == 1:
            return f"binary, {nonzero[0]} is a defect"
        return f"class indices 0..{max(nonzero)}"

    def describe(self) -> str:
        """One line for reports: ``auto (0/v binary, ...)``, ``grey level > 127`` ..."""
        if self.encoding == "threshold":
            text = f"grey level > {self.threshold:g}"
        elif self.encoding == "color":
            text = "colours " + ", ".join(f"{rgb}->{k}" for rgb, k in self.colors)
        elif self.encoding == "labels":
            text = f"stored values {list(self.defect_labels)} are a defect, all others background"
        elif self.encoding == "auto":
            decided = self.decision()
            text = (f"auto, decided once for the folder from {self.decided_from} masks (values "
                    f"{_values_text(np.asarray(self.decided))}): {decided}" if decided else
                    "auto (0/v binary, 0/1..K class indices, black + one colour; else an error)")
        else:
            text = {"binary": "binary (non-zero is a defect)", "index": "class indices"}[self.encoding]
        return text + (f", .mat field {self.mat_key!r}" if self.mat_key else "")


def _values_text(values: np.ndarray, limit: int = 8) -> str:
    vals = [v.item() if hasattr(v, "item") else v for v in values[:limit]]
    more = f" ... ({len(values)} distinct)" if len(values) > limit else ""
    return f"{vals}{more}"


def _is_mat(path) -> bool:
    return path is not None and str(path).lower().endswith(".mat")


# ---------------------------------------------------------------- reading the stored values
def read_mat(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """The 2-D array of a MATLAB ``.mat`` file: variable ``key`` (``"a.b"`` walks struct fields),
    or the file's only 2-D numeric variable. MaskEncodingError names the variables found."""
    from scipy.io import loadmat

    try:
        data = loadmat(path, squeeze_me=True, struct_as_record=False)
    except NotImplementedError:
        raise MaskEncodingError(path, "MATLAB v7.3 (HDF5) .mat files are not read; save it with "
                                      "-v7 or convert it to PNG") from None
    except (ValueError, OSError, TypeError) as exc:
        raise CorruptImageError(path, f"cannot read .mat file ({exc})") from None
    variables = {k: v for k, v in data.items() if not k.startswith("__")}

    def shape_of(v):
        return f"{type(v).__name__}{list(np.shape(v))}" if isinstance(v, np.ndarray) else "struct"
    found = ", ".join(f"{k} ({shape_of(v)})" for k, v in variables.items()) or "none"
    if key is None:
        arrays = [k for k, v in variables.items() if isinstance(v, np.ndarray) and v.ndim == 2
                  and (v.dtype == bool or np.issubdtype(v.dtype, np.number))]
        if len(arrays) != 1:
            raise MaskEncodingError(path, f"cannot tell which variable is the mask (variables: {found}); "
                                          "pass mat_key='<name>' (or 'struct.field')")
        return variables[arrays[0]]
    node, walked = variables, []
    for part in key.split("."):
        if isinstance(node, np.ndarray) and node.dtype == object and node.size >= 1:
            node = node.flat[0]  # a cell array / struct array: its first entry (one annotator)
        fields = list(node) if isinstance(node, dict) else list(getattr(node, "_fieldnames", []) or [])
        if part not in fields:
            where = ".".join(walked) or "the file"
            raise MaskEncodingError(path, f"mat_key={key!r}: {where} has no {part!r} (has: "
                                          f"{', '.join(fields) or 'no fields'}; variables: {found})")
        node = node[part] if isinstance(node, dict) else getattr(node, part)
        walked.append(part)
    if isinstance(node, np.ndarray) and node.dtype == object and node.size >= 1:
        node = node.flat[0]
    arr = np.asarray(node)
    if arr.ndim != 2 or not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)):
        raise MaskEncodingError(path, f"mat_key={key!r} is {shape_of(arr)} of {arr.dtype}, not a 2-D "
                                      f"numeric mask (variables: {found})")
    return arr


def _grey_palette(im: Image.Image, indices: np.ndarray) -> np.ndarray | None:
    """The grey level of every palette entry when all entries ``indices`` uses are grey (black,
    white, ...), else None (a class palette: its colours are only for display)."""
    pal = np.asarray(im.getpalette() or [], np.int64)
    pal = np.resize(pal, 256 * 3).reshape(256, 3) if pal.size else np.zeros((256, 3), np.int64)
    used = pal[np.unique(indices)]
    if ((used[:, 0] == used[:, 1]) & (used[:, 1] == used[:, 2])).all():
        return pal[:, 0].astype(np.uint8)
    return None


def _alpha_mask(im: Image.Image) -> np.ndarray | None:
    """Stored values of a mask painted on a transparent layer, or None when the alpha channel is
    fully opaque (or absent): transparent is background; one drawn colour -> the alpha channel,
    several -> the colours on black."""
    if im.mode not in ("RGBA", "LA", "RGBa", "La", "PA") and not (im.mode == "P" and "transparency" in im.info):
        return None
    rgba = np.array(im.convert("RGBA"))
    alpha = rgba[..., 3]
    if (alpha == 255).all():
        return None
    drawn = alpha > 0
    colours = np.unique(rgba[..., :3][drawn].reshape(-1, 3), axis=0)
    if len(colours) <= 1:
        return alpha.copy()
    rgb = np.where(drawn[..., None], rgba[..., :3], 0).astype(np.uint8)
    return _maybe_grey(rgb)


def _maybe_grey(rgb: np.ndarray) -> np.ndarray:
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return rgb[..., 0].copy()
    return rgb


def read_mask_as(path: str | os.PathLike, rule: MaskRule = MaskRule()) -> tuple[np.ndarray, str]:
    """:func:`read_mask` and how the file was read: ``"grey"``, ``"16-bit"``, ``"float"``,
    ``"colour"``, ``"palette colours"`` (a grey palette), ``"palette indices"`` (a class palette),
    ``"alpha"`` (painted on a transparent layer), ``"jpeg grey"``, ``".mat"``."""
    if _is_mat(path):
        return read_mat(path, rule.mat_key), ".mat"
    try:
        with Image.open(path) as im:
            im.load()
            im = upright(im)
            if im.format in ("JPEG", "MPO"):
                if rule.encoding != "threshold":
                    vals = np.unique(np.asarray(im.convert("L")))
                    raise MaskEncodingError(path, f"JPEG mask (values {_values_text(vals)}): JPEG compression "
                                                  "changes the stored values, so they are no labels; pass "
                                                  "threshold=T to read grey level > T (threshold=127 for 0/255 "
                                                  "masks), or re-export the masks as PNG (a 0/1 or class-index "
                                                  "mask cannot be recovered from a JPEG)")
                return gray_levels(im, path), "jpeg grey"
            alpha = _alpha_mask(im)
            if alpha is not None:
                return alpha, "alpha"
            if im.mode == "P":
                indices = np.array(im)
                if rule.encoding == "index":
                    return indices, "palette indices"
                if rule.encoding == "color":
                    return np.array(im.convert("RGB")), "colour"
                grey = _grey_palette(im, indices)
                if grey is not None:
                    return grey[indices], "palette colours"
                if rule.encoding == "threshold":
                    pal = np.asarray(im.getpalette() or [], np.int64).reshape(-1, 3)
                    used = [tuple(int(c) for c in pal[i]) for i in np.unique(indices) if i < len(pal)]
                    raise MaskEncodingError(path, f"palette mask with class colours {used[:6]} stores class "
                                                  f"indices {_values_text(np.unique(indices))}: their grey levels "
                                                  f"mean nothing, so threshold={rule.threshold:g} cannot read it; "
                                                  "read it by its indices (encoding='auto' or 'index')")
                return indices, "palette indices"
            if rule.encoding == "threshold":
                return gray_levels(im, path), "grey"
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(im), "16-bit"
            if im.mode == "F":
                return np.asarray(im), "float"
            if im.mode in ("1", "L", "LA"):
                return np.array(im.convert("L")), "grey"
            rgb = np.array(im.convert("RGB"))
    except FileNotFoundError:
        raise
    except DatasetError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(path, f"cannot decode mask ({exc})") from None
    out = _maybe_grey(rgb)
    return out, ("colour" if out.ndim == 3 else "grey")


def read_mask(path: str | os.PathLike, rule: MaskRule = MaskRule()) -> np.ndarray:
    """The stored values of mask file ``path``: ``[H, W]`` (grey, palette indices or colours,
    alpha, .mat) or ``[H, W, 3]`` for a colour image whose channels differ. With
    ``encoding="threshold"`` every image is read as grey levels 0..255 (PIL ``convert("L")``;
    16-bit scaled by the format). The reading rules are in the module docstring."""
    return read_mask_as(path, rule)[0]


# ---------------------------------------------------------------- stored values -> class indices
def decode_mask(raw: np.ndarray, rule: MaskRule = MaskRule(), path=None) -> np.ndarray:
    """Class indices ``uint8 [H, W]`` (0 = background) from stored values, by ``rule``.

    MaskEncodingError (a ValueError) names ``path``, the values found and the option to pass
    whenever the values do not fit the rule, or, for ``auto``, fit more than one reading.
    """
    raw = np.asarray(raw)
    if raw.ndim == 3:
        return _decode_color(raw, rule, path)
    if raw.ndim != 2:
        raise MaskEncodingError(path, f"mask has shape {raw.shape}; expected [H, W] or [H, W, 3]")
    if raw.dtype == bool:
        raw = raw.astype(np.uint8)
    if np.issubdtype(raw.dtype, np.floating) and not np.isfinite(raw).all():
        raise MaskEncodingError(path, "mask holds NaN or infinite values")
    if rule.encoding == "color":
        raise MaskEncodingError(path, "colors= was given but the mask is not a colour image "
                                      f"(values {_values_text(np.unique(raw))})")
    values = np.unique(raw)
    if rule.encoding == "threshold":
        if _is_mat(path) and len(values) > 2:
            raise MaskEncodingError(path, f"label image holds {len(values)} labels {_values_text(values)}: "
                                          f"threshold={rule.threshold:g} would make every label above it a "
                                          "defect; pass defect_labels=[...] (the labels that are defects; "
                                          "--defect-labels 2,3) or encoding='index'")
        return (raw > rule.threshold).astype(np.uint8)
    if rule.encoding == "labels":
        return np.isin(raw, np.asarray(rule.defect_labels)).astype(np.uint8)
    if rule.encoding == "binary":
        return (raw != 0).astype(np.uint8)
    integral = np.issubdtype(raw.dtype, np.integer) or bool((values == np.round(values)).all())
    if rule.encoding == "index":
        top = rule.num_classes - 1 if rule.num_classes else 255
        if not integral or values[0] < 0 or values[-1] > top:
            raise MaskEncodingError(path, f"values {_values_text(values)} are not class indices 0..{top}")
        return raw.astype(np.uint8)
    # auto
    hint = ("pass threshold=T (grey level > T is a defect, e.g. threshold=127) or "
            "encoding='index' (values are class indices)")
    decided = rule.decision()
    if decided is None:
        return _auto_one_file(raw, values, integral, path, hint)
    # the folder's one rule (decide_auto)
    nonzero = [v for v in rule.decided if v != 0]
    if len(nonzero) == 1:
        fits = not ((values != 0) & (values != nonzero[0])).any()
    else:
        fits = integral and values[0] >= 0 and values[-1] <= MAX_AUTO_CLASSES
    if not fits:
        _auto_one_file(raw, values, integral, path, hint)  # a file ambiguous on its own says so
        raise MaskEncodingError(path, f"values {_values_text(values)} do not fit the folder's masks "
                                      f"(auto decided {decided}, from {rule.decided_from} masks); {hint}")
    return (raw != 0).astype(np.uint8) if len(nonzero) == 1 else raw.astype(np.uint8)


def _auto_one_file(raw, values, integral, path, hint) -> np.ndarray:
    nonzero = values[values != 0]
    if len(nonzero) == 0:
        return np.zeros(raw.shape, np.uint8)
    if len(nonzero) == 1:
        return (raw != 0).astype(np.uint8)
    if values[0] != 0:
        raise MaskEncodingError(path, f"values {_values_text(values)} hold no background value 0, so "
                                      f"which value is 'no defect' is unknown; pass defect_labels=[...] "
                                      f"(the values that are defects) or {hint}")
    if integral and nonzero[0] >= 1 and nonzero[-1] <= MAX_AUTO_CLASSES:
        return raw.astype(np.uint8)
    raise MaskEncodingError(path, f"ambiguous mask values {_values_text(values)}: not 0/255, 0/1 nor class "
                                  f"indices 0..{MAX_AUTO_CLASSES}; {hint}")


def _decode_color(rgb: np.ndarray, rule: MaskRule, path) -> np.ndarray:
    if rgb.shape[-1] != 3:
        raise MaskEncodingError(path, f"mask has shape {rgb.shape}; expected [H, W, 3] for a colour mask")
    flat = rgb.reshape(-1, 3).astype(np.int64)
    codes = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    found, inverse = np.unique(codes, return_inverse=True)
    colours = [((c >> 16) & 255, (c >> 8) & 255, c & 255) for c in found.tolist()]
    if rule.encoding == "color":
        table = dict(rule.colors)
        unknown = [c for c in colours if c not in table]
        if unknown:
            raise MaskEncodingError(path, f"colour(s) {unknown[:5]} not in colors= (known: {sorted(table)})")
        lut = np.array([table[c] for c in colours], np.uint8)
        return lut[inverse].reshape(rgb.shape[:2])
    if rule.encoding == "binary":
        return (codes != 0).astype(np.uint8).reshape(rgb.shape[:2])
    if rule.encoding == "auto" and len(colours) == 2 and colours[0] == (0, 0, 0):
        return (codes != 0).astype(np.uint8).reshape(rgb.shape[:2])
    raise MaskEncodingError(path, f"colour mask with colours {colours[:6]}"
                                  f"{' ...' if len(colours) > 6 else ''}: pass colors={{(r, g, b): class, ...}} "
                                  "(or threshold=T to read it as grey levels)")


def load_mask(path: str | os.PathLike, rule: MaskRule = MaskRule()) -> np.ndarray:
    """:func:`read_mask` then :func:`decode_mask`: the class indices of mask file ``path``."""
    return decode_mask(read_mask(path, rule), rule, Path(path))


def decide_auto(paths, rule: MaskRule = MaskRule(), sample: int = AUTO_SAMPLE) -> MaskRule:
    """``encoding="auto"`` decided once for a folder: ``rule`` with the stored values of the
    folder's masks (all of them, or ``sample`` evenly spaced ones), so that one rule -- binary
    0/v or class indices 0..K -- reads every file. Any other ``rule`` is returned unchanged.

    A file that cannot be read, or is ambiguous on its own, is left out (its own error comes when
    it is read). Masks that disagree (one 0/1, another 0/255) are a MaskEncodingError naming two
    of them. Colour masks keep their per-file rule (black + one colour)."""
    if rule.encoding != "auto":
        return rule
    paths = [p for p in paths if p is not None]
    if len(paths) > sample:
        paths = [paths[int(k)] for k in np.linspace(0, len(paths) - 1, sample).round()]
    first: dict = {}
    read = 0
    for p in paths:
        try:
            raw = read_mask(p, rule)
            if raw.ndim != 2:
                continue
            decode_mask(raw, rule, p)
        except DatasetError:
            continue
        read += 1
        for v in np.unique(raw).tolist():
            first.setdefault(v, p)
    values = np.asarray(sorted(first))
    nonzero = values[values != 0]
    integral = bool((values == np.round(values)).all()) if len(values) else True
    if len(nonzero) > 1 and not (integral and nonzero[-1] <= MAX_AUTO_CLASSES):
        a, b = first[nonzero[0].item()], first[nonzero[-1].item()]
        if a == b:
            b = next(first[v.item()] for v in nonzero if first[v.item()] != a)
        va = np.unique(read_mask(a, rule)).tolist()
        vb = np.unique(read_mask(b, rule)).tolist()
        raise MaskEncodingError(b, f"the folder's masks disagree: {Path(b).name} holds {vb[:8]}, "
                                   f"{Path(a).name} holds {va[:8]}; one rule must read every mask of a "
                                   "folder: pass threshold=T (grey level > T is a defect), "
                                   "defect_labels=[...] or encoding='binary' | 'index'")
    return replace(rule, decided=tuple(values.tolist()), decided_from=read)
