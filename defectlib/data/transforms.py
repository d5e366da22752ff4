"""Joint image + boxes / masks augmentation, built from ``torchvision.transforms.v2``.

v2 transforms take ``(image, target)`` with ``tv_tensors`` (``Image``, ``BoundingBoxes``, ``Mask``)
and move boxes and masks with the pixels, which is all the papers need: flips, 90-degree
rotations, shifts, small rotations (geometry) and brightness / contrast (photometry, image only).
The one missing piece is an exact 90-degree rotation that also works on non-square strips
(:class:`RandomRot90`, via ``v2.functional.rotate(..., expand=True)``).
"""
from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F


class RandomRot90(v2.Transform):
    """Rotate by a random multiple of 90 degrees (k in ``ks``), jointly for images, boxes and masks.

    Non-square images change shape (H <-> W) when k is odd; boxes are re-expressed exactly.
    """

    def __init__(self, ks=(0, 1, 2, 3)):
        super().__init__()
        self.ks = tuple(ks)

    def make_params(self, flat_inputs):
        return {"k": self.ks[int(torch.randint(len(self.ks), ()))]}

    def transform(self, inpt, params):
        k = params["k"] % 4
        if k == 0:
            return inpt
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            return F.rotate(inpt, 90.0 * k, expand=True)
        if isinstance(inpt, torch.Tensor) and inpt.ndim >= 2:
            out = torch.rot90(inpt, k, dims=(-2, -1))  # counter-clockwise, like F.rotate(+90)
            return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out
        return inpt


def detection_train(hflip: float = 0.5, vflip: float = 0.0, rot90: bool = False) -> v2.Compose:
    """Detection augmentation (paper 000 uses horizontal flips): keeps boxes in sync, drops empty ones."""
    ts = [v2.RandomHorizontalFlip(hflip)]
    if vflip:
        ts.append(v2.RandomVerticalFlip(vflip))
    if rot90:
        ts.append(RandomRot90())
    ts += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(labels_getter=lambda x: x[1]["labels"])]
    return v2.Compose(ts)


def segmentation_train(hflip: float = 0.5, vflip: float = 0.5, rot90: bool = False, degrees: float = 0.0,
                       shift: float = 0.0, brightness: float = 0.0, contrast: float = 0.0) -> v2.Compose:
    """Segmentation augmentation.

    ``degrees`` / ``shift`` (fraction of size) -> ``v2.RandomAffine`` (masks use nearest
    interpolation, out-of-image fill 0); ``brightness`` / ``contrast`` -> ``v2.ColorJitter`` (image
    only). Paper 001: flips, rotation, shift, brightness, contrast; paper 003: rotations and flips.
    """
    ts = []
    if hflip:
        ts.append(v2.RandomHorizontalFlip(hflip))
    if vflip:
        ts.append(v2.RandomVerticalFlip(vflip))
    if rot90:
        ts.append(RandomRot90())
    if degrees or shift:
        ts.append(v2.RandomAffine(degrees=degrees, translate=(shift, shift) if shift else None,
                                  interpolation=v2.InterpolationMode.BILINEAR))
    if brightness or contrast:
        ts.append(v2.ColorJitter(brightness=brightness, contrast=contrast))
    return v2.Compose(ts) if ts else v2.Identity()


def resize(size) -> v2.Resize:
    """Resize image and mask jointly (bilinear for images, nearest for masks; OCINet uses 352x352)."""
    return v2.Resize(size, antialias=True)


def normalize_minus1_1() -> v2.Normalize:
    """Scale [0, 1] inputs to [-1, 1] (paper 004)."""
    return v2.Normalize(mean=[0.5], std=[0.5])
