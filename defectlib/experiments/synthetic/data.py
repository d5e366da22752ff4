"""Notebook 04's data (paper 004 rebuilt on a real target): MTD tiles as the scarce real target, NEU-Seg
(binarised) as the unrelated planar set, synthetic renders of the ``"tile"`` preset of
:mod:`defectlib.synth.scene`, and the random training crops: intensity-biased as in the paper, or
centred near a defect (:func:`defectlib.data.sampling.defect_biased_crop`, not in the paper), with
optional exposure stacking; inputs scaled to [-1, 1].
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ...data import MTD, NEUSeg
from ...synth import locate
from ...data.sampling import defect_biased_crop, exposure_stack, intensity_biased_crop
from ...data.splits import MTD_NEAR_DUPLICATES, grouped_split, grouped_units, groups_from_pairs
from ...engine.distributed import launched
from ...synth.scene import SynthSurfaces, get_config

MTD_DEFECT_CLASSES = ("Blowhole", "Break", "Crack")

Pair = tuple[torch.Tensor, torch.Tensor]          # image [1, H, W] in [0, 1], mask [1, H, W] {0, 1}


# ----------------------------------------------------------------------------------------- data
def _rescale(img: torch.Tensor, mask: torch.Tensor, scale: float) -> Pair:
    if scale == 1.0:
        return img, mask
    size = [max(8, round(s * scale)) for s in img.shape[-2:]]
    img = F.interpolate(img[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    mask = (F.interpolate(mask[None].float(), size=size, mode="area")[0] >= 0.5).float()
    return img, mask


def load_target(data_root=None, seed: int = 0, n_train_defective: int = 24, n_train_clean: int = 12,
                n_test_defective: int | None = None, n_test_clean: int | None = None, scale: float = 1.0,
                classes=MTD_DEFECT_CLASSES) -> dict:
    """MTD split by ``seed``: a few defective + clean tiles for training (4:1 train / val, the
    defective:clean ratio kept) and test tiles from the rest (all, or the first ``n_test_*``)."""
    root, real = locate("mtd", data_root)
    ds = MTD(root, classes=("Free",) + tuple(classes))
    # MTD's near-duplicate pairs (defectlib.data.splits) move as one unit, never across splits
    groups = groups_from_pairs(ds.ids, MTD_NEAR_DUPLICATES)
    units = grouped_units(ds.defective, groups)
    n_d = min(n_train_defective, len(units.get(True, [])) - 1)
    n_c = min(n_train_clean, len(units.get(False, [])) - 1)
    v_d, v_c = max(1, round(n_d / 5)), max(1, round(n_c / 5)) if n_c else 0
    counts = [{True: v_d, False: v_c}, {True: max(0, n_d - v_d), False: max(0, n_c - v_c)}]  # val, train
    rest, val, train = grouped_split(ds.defective, counts=counts, seed=seed, groups=groups)
    test_d, test_c = [i for i in rest if ds.defective[i]], [i for i in rest if not ds.defective[i]]
    split = {"train": train, "val": val, "test": test_d[:n_test_defective] + test_c[:n_test_clean]}
    out = {k: [_rescale(*ds[i], scale) for i in ids] for k, ids in split.items()}
    out["ids"] = {k: [ds.ids[i] if hasattr(ds, "ids") else i for i in ids] for k, ids in split.items()}
    out["real"], out["root"] = real, str(root)
    return out


def load_planar(data_root=None, seed: int = 0, n_train: int = 400, n_val: int = 100) -> dict:
    """NEU-Seg training split, binarised (any defect class = 1), split 4:1 into train / val."""
    root, real = locate("neu-seg", data_root)
    ds = NEUSeg(root, split="training", binary=True)
    idx = np.random.default_rng(seed).permutation(len(ds))
    n_val = min(n_val or len(ds) // 5, max(1, len(ds) // 5))
    n_train = min(n_train or len(ds), len(ds) - n_val)
    return {"train": [ds[int(i)] for i in idx[n_val:n_val + n_train]],
            "val": [ds[int(i)] for i in idx[:n_val]], "real": real, "root": str(root)}


def make_synthetic(n_parts: int, n_val_parts: int, size: int = 192, views_per_part: int = 4,
                   seed: int = 0, preset: str = "tile", px_mm: float | None = None, progress: bool = False) -> dict:
    """Synthetic train / val images (parts split object-wise, as the paper splits SynthClutch)."""
    kw = {"size": size, "views_per_part": views_per_part}
    if px_mm is not None:
        kw["px_mm"] = px_mm
    cfg = get_config(preset, **kw)
    out = {}
    for name, n, s in (("train", n_parts, seed), ("val", n_val_parts, seed + 7919)):
        ds = SynthSurfaces(n, cfg, seed=s)
        it = range(len(ds))
        if progress:
            from ...progress import tqdm
            it = tqdm(it, desc=f"render {name}", leave=False)
        out[name] = [ds[i] for i in it]
    out["real"] = False
    return out


class CropSet(Dataset):
    """``length`` random crops from full images: intensity-biased (paper 004), or with probability
    ``defect_p`` centred near a defect pixel (:func:`defect_biased_crop`, not in the paper), flips /
    90-degree turns (only: the paper, Sec. 5.2, also uses rotations in [-90, 90], Gaussian noise,
    exposure and Gaussian blur), optional exposure stacking; inputs scaled to [-1, 1]. ``fixed=True`` draws the
    crops once (a deterministic validation set)."""

    def __init__(self, pairs: list[Pair], crop: int, length: int, exposure: bool = False,
                 threshold: float = 10 / 255, augment: bool = True, seed: int = 0, fixed: bool = False,
                 defect_p: float = 0.0):
        if not pairs:
            raise ValueError("CropSet needs at least one (image, mask) pair")
        self.pairs, self.crop, self.length = pairs, int(crop), int(length)
        self.exposure, self.threshold, self.augment, self.defect_p = exposure, threshold, augment, defect_p
        # under torchrun each process draws its own crops (the draw ignores the sample index, so
        # a shared stream would give every rank the same batch); one process keeps seed's stream
        rank = launched()
        self.rng = np.random.default_rng(seed if not rank.enabled else [seed, rank.rank])
        self.cache = [self._draw(i) for i in range(self.length)] if fixed else None

    def __len__(self) -> int:
        return self.length

    def _draw(self, i: int) -> Pair:
        img, mask = self.pairs[int(self.rng.integers(len(self.pairs)))]
        if self.defect_p and self.rng.random() < self.defect_p:
            img, mask = defect_biased_crop(img, mask, (self.crop, self.crop), self.rng)
        else:
            img, mask = intensity_biased_crop(img, mask, (self.crop, self.crop), self.threshold, self.rng)
        if self.augment:
            k = int(self.rng.integers(4))
            img, mask = torch.rot90(img, k, (1, 2)), torch.rot90(mask, k, (1, 2))
            if self.rng.random() < 0.5:
                img, mask = img.flip(-1), mask.flip(-1)
        return to_input(img, self.exposure), mask.float()

    def __getitem__(self, i: int) -> Pair:
        return self.cache[i] if self.cache is not None else self._draw(i)


def to_input(img: torch.Tensor, exposure: bool) -> torch.Tensor:
    """[1, H, W] in [0, 1] -> model input: exposure stack (3 channels) if asked, scaled to [-1, 1]."""
    x = exposure_stack(img) if exposure else img
    return x * 2.0 - 1.0


def load_sources(cfg, data_root=None, seed: int = 0, dry_run: bool = False) -> tuple[dict, dict, dict]:
    """Notebook 04's three sources at the profile's sizes: the MTD target, the planar set and the
    SynthTile renders (a dry run loads a few images of each: it only checks that every run starts)."""
    n_test = (4, 2) if dry_run else (cfg.target_test_defective, cfg.target_test_clean)
    n_planar = (16, 4) if dry_run else (cfg.planar_train, cfg.planar_val)
    n_parts, n_val_parts = (2, 1) if dry_run else (cfg.synth_parts, cfg.synth_val_parts)
    target = load_target(data_root, seed, cfg.target_train_defective, cfg.target_train_clean, *n_test,
                         scale=cfg.target_scale)
    planar = load_planar(data_root, seed, *n_planar)
    synth = make_synthetic(n_parts, n_val_parts, cfg.synth_size, cfg.synth_views, seed, "tile",
                           progress=cfg.progress)
    return target, planar, synth


def describe_target(target: dict, cfg, seed: int) -> str:
    """The note saying what the target is: real or stand-in, classes, split sizes, scale, seed."""
    return (f"target MTD ({'real' if target['real'] else 'stand-in'}): classes {MTD_DEFECT_CLASSES} + Free, "
            f"{len(target['train'])} train / {len(target['val'])} val / {len(target['test'])} test tiles, "
            f"scale {cfg.target_scale}, split seed {seed}")
