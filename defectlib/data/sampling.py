"""Sampling and cropping the papers use at training time, and tiling for inference.

* :class:`ClassBalancedBatchSampler` -- every batch draws classes uniformly, the clean class
  counted as a class (paper 001: "batches balanced across classes including the clean class").
* :class:`RandomCropDataset` -- random crops whose size follows a per-epoch schedule (paper 001
  alternates 256x384 and 256x512) and that rejects dark crops (the black margins of Severstal strips).
* :func:`intensity_biased_crop` and :func:`exposure_stack` -- paper 004 (docs/papers.md#synthetic-data):
  centre a crop on a random pixel brighter than a threshold; stack ``x * 2**a`` for a in {0, 1, 2}.
* :func:`tile` / :func:`stitch` -- cut an image into padded, optionally overlapping patches and put
  per-patch predictions back together (paper 004 evaluates in 416x352 patches).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Hashable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as TF
from torch.utils.data import Dataset, Sampler
from torchvision import tv_tensors


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Batches of ``batch_size`` indices with classes drawn uniformly, then a sample of that class.

    ``labels[i]`` is one hashable class per sample (use e.g. ``0`` / ``"clean"`` for clean images;
    for multi-label images pick the rarest class present, see :func:`primary_labels`). Each epoch
    yields ``num_batches`` batches (default: ``len(labels) // batch_size``). Classes are cycled in a
    shuffled round-robin so every class appears ``batch_size / n_classes`` times per batch on average
    and within-class samples are drawn without replacement until exhausted, then reshuffled.
    """

    def __init__(self, labels: Sequence[Hashable], batch_size: int, num_batches: int | None = None, seed: int = 0):
        self.by_class: dict[Hashable, np.ndarray] = {}
        for i, lab in enumerate(labels):
            self.by_class.setdefault(lab, []).append(i)
        self.by_class = {k: np.asarray(v) for k, v in self.by_class.items()}
        self.classes = sorted(self.by_class, key=str)
        self.batch_size = batch_size
        self.num_batches = num_batches or max(1, len(labels) // batch_size)
        self.seed = seed
        self.epoch = 0
        self.rank, self.num_replicas = 0, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard(self, rank: int, num_replicas: int) -> "ClassBalancedBatchSampler":
        """This sampler for process ``rank`` of ``num_replicas`` (torchrun; see
        ``engine.distributed.distributed_loader``): each process draws its own balanced batches
        from a stream seeded with its rank, ``ceil(num_batches / num_replicas)`` of them per epoch,
        so an epoch of the global batch sees as many samples as one process's epoch did."""
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in 0..{num_replicas - 1}")
        out = copy.copy(self)
        out.rank, out.num_replicas = int(rank), int(num_replicas)
        return out

    def __len__(self) -> int:
        return math.ceil(self.num_batches / self.num_replicas)

    def __iter__(self) -> Iterator[list[int]]:
        key = (self.seed, self.epoch) if self.num_replicas == 1 else (self.seed, self.epoch, self.rank)
        rng = np.random.default_rng(key)
        self.epoch += 1
        pools = {c: list(rng.permutation(v)) for c, v in self.by_class.items()}
        cycle: list = []
        for _ in range(len(self)):
            batch = []
            for _ in range(self.batch_size):
                if not cycle:
                    cycle = list(rng.permutation(len(self.classes)))
                c = self.classes[cycle.pop()]
                if not pools[c]:
                    pools[c] = list(rng.permutation(self.by_class[c]))
                batch.append(int(pools[c].pop()))
            yield batch


def primary_labels(label_sets: Sequence[Sequence[int]], clean=0) -> list:
    """One class per image from multi-label sets: the rarest class present, ``clean`` if none."""
    counts: dict = {}
    for s in label_sets:
        for c in s:
            counts[c] = counts.get(c, 0) + 1
    return [min(s, key=lambda c: (counts[c], c)) if len(s) else clean for s in label_sets]


def crop_size_for_epoch(epoch: int, sizes: Sequence[tuple[int, int]] = ((256, 384), (256, 512))) -> tuple[int, int]:
    """Per-epoch crop size schedule: cycles through ``sizes`` (paper 001 alternates two widths)."""
    return tuple(sizes[epoch % len(sizes)])


def random_crop_box(shape, size, rng: np.random.Generator, image: torch.Tensor | None = None,
                    dark_threshold: float | None = None, max_tries: int = 10) -> tuple[int, int]:
    """Top-left corner of a random ``size`` crop inside ``shape``; with ``dark_threshold`` it redraws
    (up to ``max_tries``) crops whose mean intensity is below the threshold and keeps the brightest."""
    h, w = shape
    ch, cw = size
    best, best_mean = None, -1.0
    for _ in range(max_tries if dark_threshold is not None else 1):
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        if dark_threshold is None or image is None:
            return y, x
        m = float(image[..., y:y + ch, x:x + cw].mean())
        if m >= dark_threshold:
            return y, x
        if m > best_mean:
            best, best_mean = (y, x), m
    return best


class RandomCropDataset(Dataset):
    """Wrap a segmentation dataset (``(image, mask)`` items) with random crops.

    The crop size follows :func:`crop_size_for_epoch` (call :meth:`set_epoch` each epoch); crops
    darker than ``dark_threshold`` (mean intensity in [0, 1]) are redrawn. ``transforms`` run after
    cropping. With ``defect_p`` > 0 that share of the crops of images with a defect pixel is
    centred near one (:func:`defect_biased_crop`; not in paper 001, see there). Seeded per
    (seed, epoch, index), so runs are reproducible with any number of workers.
    """

    def __init__(self, dataset, sizes=((256, 384), (256, 512)), dark_threshold: float | None = 0.05,
                 max_tries: int = 10, transforms=None, seed: int = 0, defect_p: float = 0.0):
        if not 0.0 <= defect_p <= 1.0:
            raise ValueError(f"defect_p must be in [0, 1], got {defect_p}")
        self.dataset, self.sizes = dataset, [tuple(s) for s in sizes]
        self.dark_threshold, self.max_tries = dark_threshold, max_tries
        self.transforms, self.seed, self.epoch, self.defect_p = transforms, seed, 0, defect_p

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def crop_size(self) -> tuple[int, int]:
        return crop_size_for_epoch(self.epoch, self.sizes)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        image, mask = self.dataset[i][:2]
        rng = np.random.default_rng((self.seed, self.epoch, i))
        ch, cw = self.crop_size
        if self.defect_p and rng.random() < self.defect_p and bool(mask.any()):
            image, mask = defect_biased_crop(image, mask, (ch, cw), rng)
        else:
            y, x = random_crop_box(image.shape[-2:], (ch, cw), rng, image, self.dark_threshold, self.max_tries)
            image, mask = image[..., y:y + ch, x:x + cw], mask[..., y:y + ch, x:x + cw]
        # re-wrap: slicing returns plain tensors, and v2 transforms would then move the image only
        image = tv_tensors.Image(image.as_subclass(torch.Tensor))
        mask = tv_tensors.Mask(mask.as_subclass(torch.Tensor))
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask


def intensity_biased_crop(image: torch.Tensor, mask: torch.Tensor | None = None, size=(256, 256),
                          threshold: float = 10 / 255, rng: np.random.Generator | None = None):
    """Paper 004: threshold the image (> ``threshold``; the paper uses intensity > 10 of 255), pick
    a random pixel of that mask and centre a ``size`` crop on it (shifted to stay inside, zero-padded
    when the image is smaller). Falls back to a uniform random centre when no pixel passes."""
    rng = rng or np.random.default_rng()
    ch, cw = size
    h, w = image.shape[-2:]
    ph, pw = max(0, ch - h), max(0, cw - w)
    if ph or pw:
        image = TF.pad(image, (0, pw, 0, ph))
        mask = TF.pad(mask, (0, pw, 0, ph)) if mask is not None else None
        h, w = image.shape[-2:]
    bright = torch.nonzero(image.reshape(-1, h, w).amax(0) > threshold)
    if len(bright):
        cy, cx = bright[int(rng.integers(len(bright)))].tolist()
    else:
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y = min(max(cy - ch // 2, 0), h - ch)
    x = min(max(cx - cw // 2, 0), w - cw)
    out = image[..., y:y + ch, x:x + cw]
    return (out, mask[..., y:y + ch, x:x + cw]) if mask is not None else out


def defect_biased_crop(image: torch.Tensor, mask: torch.Tensor, size=(96, 96),
                       rng: np.random.Generator | None = None, jitter: float = 0.25):
    """A ``size`` crop around a random defect pixel of ``mask``, its centre moved by up to
    ``jitter`` x the crop size (so the defect is not always in the middle); zero-padded when the
    image is smaller. A uniform random crop when the mask is empty.

    Not in paper 004: with a few dozen real tiles whose defects cover 0.2-4 % of the pixels
    (MTD), uniform or intensity-biased crops almost never hold a defect, and a from-scratch model
    learns to predict background. Drawing a share of the crops here is the usual remedy
    (e.g. nnU-Net's foreground oversampling, Isensee et al. 2021: one third of each batch)."""
    rng = rng or np.random.default_rng()
    ch, cw = size
    h, w = image.shape[-2:]
    ph, pw = max(0, ch - h), max(0, cw - w)
    if ph or pw:
        image, mask = TF.pad(image, (0, pw, 0, ph)), TF.pad(mask, (0, pw, 0, ph))
        h, w = image.shape[-2:]
    fg = torch.nonzero(mask.reshape(-1, h, w).amax(0) > 0)
    if len(fg):
        cy, cx = fg[int(rng.integers(len(fg)))].tolist()
        cy += int(rng.integers(-int(jitter * ch), int(jitter * ch) + 1))
        cx += int(rng.integers(-int(jitter * cw), int(jitter * cw) + 1))
    else:
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y = min(max(cy - ch // 2, 0), h - ch)
    x = min(max(cx - cw // 2, 0), w - cw)
    return image[..., y:y + ch, x:x + cw], mask[..., y:y + ch, x:x + cw]


def exposure_stack(image: torch.Tensor, exponents: Sequence[float] = (0, 1, 2)) -> torch.Tensor:
    """Paper 004's exposure stacking: channels ``clip(x * 2**a, 0, 1)`` for each ``a`` -> ``[len, H, W]``
    from a grey ``[1, H, W]`` (or ``[..., 1, H, W]``) image in [0, 1]."""
    return torch.cat([(image * 2.0 ** a).clamp(0, 1) for a in exponents], dim=-3)


@dataclass
class TileInfo:
    """Geometry of a tiling, enough to stitch predictions back."""
    image_size: tuple[int, int]
    padded_size: tuple[int, int]
    tile: tuple[int, int]
    stride: tuple[int, int]
    origins: list[tuple[int, int]]


def pad_to_multiple(image: torch.Tensor, multiple: int | tuple[int, int], value: float = 0.0) -> torch.Tensor:
    """Zero-pad bottom/right so H and W are multiples of ``multiple`` (paper 004 pads to /96)."""
    mh, mw = (multiple, multiple) if isinstance(multiple, int) else multiple
    h, w = image.shape[-2:]
    return TF.pad(image, (0, (-w) % mw, 0, (-h) % mh), value=value)


def tile(image: torch.Tensor, tile_size=(352, 416), overlap: int | tuple[int, int] = 0, pad_value: float = 0.0
         ) -> tuple[torch.Tensor, TileInfo]:
    """Cut ``[C, H, W]`` into ``[N, C, th, tw]`` patches with ``overlap`` pixels, padding bottom/right
    so the patches cover the image exactly. ``tile_size`` is (height, width)."""
    th, tw = tile_size
    oy, ox = (overlap, overlap) if isinstance(overlap, int) else overlap
    sy, sx = th - oy, tw - ox
    if sy <= 0 or sx <= 0:
        raise ValueError("overlap must be smaller than the tile")
    h, w = image.shape[-2:]
    ny, nx = max(1, math.ceil((h - oy) / sy)), max(1, math.ceil((w - ox) / sx))
    ph, pw = (ny - 1) * sy + th, (nx - 1) * sx + tw
    padded = TF.pad(image, (0, pw - w, 0, ph - h), value=pad_value)
    origins = [(y * sy, x * sx) for y in range(ny) for x in range(nx)]
    patches = torch.stack([padded[..., y:y + th, x:x + tw] for y, x in origins])
    return patches, TileInfo((h, w), (ph, pw), (th, tw), (sy, sx), origins)


def stitch(patches: torch.Tensor, info: TileInfo) -> torch.Tensor:
    """Inverse of :func:`tile`: average overlapping patch predictions, crop the padding -> ``[C, H, W]``."""
    th, tw = info.tile
    c = patches.shape[1]
    out = patches.new_zeros((c, *info.padded_size))
    weight = patches.new_zeros((1, *info.padded_size))
    for p, (y, x) in zip(patches, info.origins):
        out[:, y:y + th, x:x + tw] += p
        weight[:, y:y + th, x:x + tw] += 1
    h, w = info.image_size
    return (out / weight.clamp_min(1))[:, :h, :w]
