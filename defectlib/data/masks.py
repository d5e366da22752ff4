"""How a stored mask file becomes a mask: one rule per common encoding, never a silent guess.

Public defect sets store their ground truth in many ways. :class:`MaskRule` names the encoding and
:func:`read_mask` + :func:`decode_mask` turn a file into class indices ``uint8 [H, W]`` (0 is
background; a binary dataset keeps ``> 0``). The rules (also in ``data/README.md``):

========================  =======================================================================
stored values             read as (``encoding="auto"``, the default)
========================  =======================================================================
{0} only                  an empty mask (no defect)
0 and one other value v   binary: v is the defect (0/255, 0/1, 0/128 ... all mean the same)
0 and values 1..K         class indices 0..K (K <= :data:`MAX_AUTO_CLASSES`; palette PNGs are
                          read as their palette *indices*, as VOC-style masks mean them)
RGB, black + one colour   binary: that colour is the defect (a red-on-black mask, say)
RGB, several colours      error: pass ``colors={(r, g, b): class, ...}``
anything else             error naming the file, the values found and the option to pass:
                          ``threshold=T`` (grey level > T is a defect: anti-aliased or JPEG-like
                          masks such as MTD's, {0, 128, 255}), or ``encoding="index"``
no value 0 (e.g. {1, 2})  error: the background value is unknown (CrackForest's 1 = background,
                          2 = crack needs ``encoding="index"`` and a shift, or ``threshold=1``)
========================  =======================================================================

Other encodings, chosen explicitly: ``threshold=T`` (grey level ``> T``; colour images are first
converted to grey as PIL's ``convert("L")`` does, which is how MTD and NRSD-MN are read),
``encoding="binary"`` (any non-zero value is a defect), ``encoding="index"`` (values are class
indices, checked against ``num_classes`` when given) and ``colors`` (RGB colour -> class index;
an unlisted colour is an error). MATLAB ``.mat`` ground truth is read with ``scipy.io.loadmat``:
``mat_key`` names the variable (``"gt"``), or a field path into a struct
(``"groundTruth.Segmentation"``); without it the file must hold exactly one 2-D array. Its values
then follow the same rules.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import CorruptImageError, MaskEncodingError
from .io import read_gray

ENCODINGS = ("auto", "binary", "threshold", "index", "color")
#: the largest class index ``encoding="auto"`` accepts without being told
MAX_AUTO_CLASSES = 32
MASK_EXTS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".gif", ".mat")


@dataclass(frozen=True)
class MaskRule:
    """Which encoding a folder's masks use (see the module docstring for every rule).

    ``threshold`` given implies ``encoding="threshold"``; ``colors`` implies ``"color"``.
    """

    encoding: str = "auto"
    threshold: float | None = None
    colors: tuple | None = None  # ((r, g, b), class) pairs; a dict is accepted and converted
    mat_key: str | None = None
    num_classes: int | None = None

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
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}; got {enc!r}")
        if self.encoding == "threshold" and self.threshold is None:
            raise ValueError("encoding='threshold' needs threshold=T (grey level > T is a defect)")
        if self.encoding == "color" and self.colors is None:
            raise ValueError("encoding='color' needs colors={(r, g, b): class, ...}")

    def describe(self) -> str:
        """One line for reports: ``auto (0/255, 0/1, class indices ...)``, ``grey > 127`` ..."""
        if self.encoding == "threshold":
            text = f"grey level > {self.threshold:g}"
        elif self.encoding == "color":
            text = "colours " + ", ".join(f"{rgb}->{k}" for rgb, k in self.colors)
        elif self.encoding == "auto":
            text = "auto (0/v binary, 0/1..K class indices, black + one colour; else an error)"
        else:
            text = {"binary": "binary (non-zero is a defect)", "index": "class indices"}[self.encoding]
        return text + (f", .mat field {self.mat_key!r}" if self.mat_key else "")


def _values_text(values: np.ndarray, limit: int = 8) -> str:
    vals = [v.item() if hasattr(v, "item") else v for v in values[:limit]]
    more = f" ... ({len(values)} distinct)" if len(values) > limit else ""
    return f"{vals}{more}"


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


def read_mask(path: str | os.PathLike, rule: MaskRule = MaskRule()) -> np.ndarray:
    """The stored values of mask file ``path``: ``[H, W]`` (grey, palette indices, .mat) or
    ``[H, W, 3]`` for a colour image whose channels differ. With ``encoding="threshold"`` every
    image is read as grey (PIL ``convert("L")``)."""
    if str(path).lower().endswith(".mat"):
        return read_mat(path, rule.mat_key)
    if rule.encoding == "threshold":
        return read_gray(path)  # grey levels, 16-bit masks scaled to 0..255
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                return np.asarray(im)
            if im.mode == "P":
                return np.array(im)  # the palette indices, not their colours
            if im.mode in ("1", "L", "LA"):
                return np.array(im.convert("L"))
            rgb = np.array(im.convert("RGB"))
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(path, f"cannot decode mask ({exc})") from None
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return rgb[..., 0].copy()
    return rgb


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
    if rule.encoding == "threshold":
        return (raw > rule.threshold).astype(np.uint8)
    if rule.encoding == "color":
        raise MaskEncodingError(path, "colors= was given but the mask is not a colour image "
                                      f"(values {_values_text(np.unique(raw))})")
    values = np.unique(raw)
    if rule.encoding == "binary":
        return (raw != 0).astype(np.uint8)
    integral = np.issubdtype(raw.dtype, np.integer) or bool((values == np.round(values)).all())
    if rule.encoding == "index":
        top = rule.num_classes - 1 if rule.num_classes else 255
        if not integral or values[0] < 0 or values[-1] > top:
            raise MaskEncodingError(path, f"values {_values_text(values)} are not class indices 0..{top}")
        return raw.astype(np.uint8)
    # auto
    nonzero = values[values != 0]
    hint = ("pass threshold=T (grey level > T is a defect, e.g. threshold=127) or "
            "encoding='index' (values are class indices)")
    if len(nonzero) == 0:
        return np.zeros(raw.shape, np.uint8)
    if len(nonzero) == 1:
        return (raw != 0).astype(np.uint8)
    if values[0] != 0:
        raise MaskEncodingError(path, f"values {_values_text(values)} hold no background value 0, so "
                                      f"which value is 'no defect' is unknown; {hint}")
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
