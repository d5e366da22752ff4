"""Small shared readers: decode an image or mask to numpy with clear errors, wrap as tv_tensors.

All images in this course are grayscale (NEU stores three identical channels; they are converted
with ``convert("L")``). Images become ``tv_tensors.Image`` float ``[1, H, W]`` in ``[0, 1]`` so that
``torchvision.transforms.v2`` transforms them jointly with their boxes and masks.

How a stored image becomes grey levels 0..255 (one rule per format, never from a file's content;
the table is in ``data/README.md``):

* 8-bit grey, RGB, palette, 1-bit, CMYK, YCbCr: PIL's ``convert("L")`` (ITU-R 601 weights; a
  colour image's alpha channel is dropped).
* 16-bit integer (PNG / TIFF ``I;16``, 16-bit PNG read as ``I``): ``value / 65535``, the format's
  full range, so two exposures of one scene stay apart. Cameras that store 10 or 12 bits in the low
  bits of a 16-bit file: pass ``bit_depth=12`` (``value / 4095``); a value above ``2**bit_depth - 1``
  is an :class:`~defectlib.data.errors.ImageEncodingError`. 32-bit integer TIFFs: ``value / (2**32 - 1)``.
* 32-bit float (TIFF ``F``): values must lie in ``[0, 1]`` (read as they are); anything else
  (NaN, negative, > 1) is an ImageEncodingError naming the range found.
* EXIF orientation (tag 274): applied with ``ImageOps.exif_transpose`` to images *and* masks, so
  both are read the way viewers and labelling tools show them.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision import tv_tensors

from .errors import CorruptImageError, ImageEncodingError, MaskSizeError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
#: EXIF orientation tag
ORIENTATION = 0x0112


def is_hidden(path: str | os.PathLike) -> bool:
    """Names starting with ``.`` (macOS ``._x.png`` resource forks, ``.DS_Store``): never samples."""
    return Path(path).name.startswith(".")


def upright(im: Image.Image) -> Image.Image:
    """``im`` turned as its EXIF orientation says (a copy), or ``im`` itself when it has no tag."""
    try:
        orientation = im.getexif().get(ORIENTATION, 1)
    except Exception:  # a broken EXIF block: read the pixels as stored
        return im
    return ImageOps.exif_transpose(im) if orientation in range(2, 9) else im


def container_bits(im: Image.Image) -> int | None:
    """Bits per sample of an integer image with more than 8 bits (16 for ``I;16*`` and 16-bit
    PNGs read as ``I``; TIFF's BitsPerSample), else None."""
    if im.mode.startswith("I;16"):
        return 16
    if im.mode == "I":
        if im.format == "TIFF":
            bits = getattr(im, "tag_v2", {}).get(258, (32,))
            return int(bits[0] if isinstance(bits, tuple) else bits)
        return 16 if im.format == "PNG" else 32
    return None


def gray_levels(im: Image.Image, path, bit_depth: int | None = None) -> np.ndarray:
    """uint8 ``[H, W]`` grey levels of a decoded image by the format's rule (module docstring)."""
    bits = container_bits(im)
    if bits is not None:
        arr = np.asarray(im).astype(np.float64)
        depth = bits
        if bit_depth is not None:
            if not 8 < bit_depth <= bits:
                raise ImageEncodingError(path, f"bit_depth={bit_depth} does not fit a {bits}-bit image "
                                               f"(use 9..{bits})")
            depth = bit_depth
        top = float(arr.max()) if arr.size else 0.0
        if arr.size and (arr.min() < 0 or top > 2 ** depth - 1):
            raise ImageEncodingError(path, f"{bits}-bit image holds values {int(arr.min())}..{int(top)}, outside "
                                           f"0..{2 ** depth - 1} of bit_depth={depth}: pass the camera's "
                                           "bit depth (bit_depth=16 reads the full range)")
        return np.rint(arr * (255.0 / (2 ** depth - 1))).astype(np.uint8)
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1):
            finite = arr[np.isfinite(arr)]
            rng = f"{finite.min():g}..{finite.max():g}" if finite.size else "no finite values"
            extra = ", and NaN/inf" if finite.size < arr.size else ""
            raise ImageEncodingError(path, f"float image holds {rng}{extra}: float images are read as "
                                           "[0, 1] (0 black, 1 white); rescale it to [0, 1] or save it "
                                           "as 8/16-bit")
        return np.rint(arr * 255.0).astype(np.uint8)
    return np.array(im.convert("L"))


def read_gray(path: str | os.PathLike, bit_depth: int | None = None) -> np.ndarray:
    """Decode ``path`` fully to a uint8 ``[H, W]`` array by the rules of the module docstring;
    CorruptImageError if it cannot be decoded, ImageEncodingError if its values fit no rule."""
    try:
        with Image.open(path) as im:
            im.load()  # force full decode: truncated files fail here, not later
            return gray_levels(upright(im), path, bit_depth)
    except FileNotFoundError:
        raise
    except ImageEncodingError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(path, f"cannot decode image ({exc})") from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) from the header only (fast; as read, i.e. after EXIF orientation);
    CorruptImageError if not an image."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            try:
                if im.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8):
                    w, h = h, w
            except Exception:
                pass
            return h, w
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(path, f"cannot read image header ({exc})") from None


def to_image(arr: np.ndarray) -> tv_tensors.Image:
    """uint8 ``[H, W]`` -> float ``tv_tensors.Image`` ``[1, H, W]`` in ``[0, 1]``."""
    return tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(arr)).float().div_(255.0)[None])


def to_mask(arr: np.ndarray, dtype=torch.float32) -> tv_tensors.Mask:
    """``[H, W]`` or ``[C, H, W]`` array -> ``tv_tensors.Mask`` (``[1, H, W]`` for 2-D input)."""
    t = torch.from_numpy(np.ascontiguousarray(arr)).to(dtype)
    return tv_tensors.Mask(t[None] if t.ndim == 2 else t)


def check_same_size(image_path, image: np.ndarray, mask_path, mask: np.ndarray) -> None:
    if image.shape[:2] != mask.shape[:2]:
        raise MaskSizeError(mask_path, f"mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image "
                                       f"{Path(image_path).name} is {image.shape[1]}x{image.shape[0]}")
