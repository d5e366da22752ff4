"""Small shared readers: decode an image or mask to numpy with clear errors, wrap as tv_tensors.

All images in this course are grayscale (NEU stores three identical channels; they are converted
with ``convert("L")``). Images become ``tv_tensors.Image`` float ``[1, H, W]`` in ``[0, 1]`` so that
``torchvision.transforms.v2`` transforms them jointly with their boxes and masks.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision import tv_tensors

from .errors import CorruptImageError, MaskSizeError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` fully to a uint8 ``[H, W]`` array; raise CorruptImageError if it cannot."""
    try:
        with Image.open(path) as im:
            im.load()  # force full decode: truncated files fail here, not later
            if im.mode in ("I;16", "I;16B", "I"):
                arr = np.asarray(im, dtype=np.float32)
                arr = arr / max(float(arr.max()), 1.0) * 255.0
                return arr.astype(np.uint8)
            return np.array(im.convert("L"))
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(path, f"cannot decode image ({exc})") from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) from the header only (fast); CorruptImageError if not an image."""
    try:
        with Image.open(path) as im:
            w, h = im.size
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
