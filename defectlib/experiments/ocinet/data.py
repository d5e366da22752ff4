"""Notebook 03's data: NRSD-MN, or real NEU-Seg + MTD in its place, resized as paper 003 trains
(Sec. IV-A-2) and evaluated as the authors' test script does (docs/papers.md#ocinet).

Training: images and masks resized to 352x352, rotations and flips. The paper says "rotate and
flip" without details (the authors' data loader has its augmentations commented out); we read it as
a random multiple of 90 degrees plus horizontal and vertical flips. Evaluation resizes only the
image: the mask keeps its own size.

Data (:func:`build_data`): NRSD-MN when a real copy is under ``data_root`` (train on 2,086 man-made
images; test columns "man-made" and "natural"); otherwise, if real NEU-Seg and MTD are there,
a binary steel/tile task with two real test columns: NEU-Seg test (all defect classes merged into
one) and held-out MTD defective tiles; otherwise the NRSD-MN-format stand-in. No test image has a
near-duplicate in training: NEU-Seg's test images that near-duplicate a training image are dropped
and MTD's near-duplicate pairs stay on one side (:mod:`defectlib.data.splits`).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from ...data import MTD, NEUSeg, NRSDMN
from ...synth import locate
from ...data.splits import MTD_NEAR_DUPLICATES, grouped_split, groups_from_pairs, neu_seg_clean_test_ids
from ...paths import real_data_root
from ...runtime import pin_memory


# --- transforms ----------------------------------------------------------------------------------
class TrainTransform:
    """Resize image (bilinear) and mask (nearest) to ``size``; if ``augment``, a random rotation by a
    multiple of 90 degrees and random horizontal / vertical flips (the same for image and mask)."""

    def __init__(self, size: int, augment: bool = True):
        self.size, self.augment = int(size), augment

    def __call__(self, image: torch.Tensor, mask: torch.Tensor):
        image = F.interpolate(image[None], size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=True)[0]
        mask = F.interpolate(mask[None].float(), size=(self.size, self.size), mode="nearest")[0]
        if self.augment:
            k = random.randrange(4)
            image, mask = torch.rot90(image, k, (1, 2)), torch.rot90(mask, k, (1, 2))
            if random.random() < 0.5:
                image, mask = image.flip(2), mask.flip(2)
            if random.random() < 0.5:
                image, mask = image.flip(1), mask.flip(1)
        return image.contiguous(), mask.contiguous()


class EvalTransform:
    """Resize only the image (the mask keeps its own size, as the authors evaluate)."""

    def __init__(self, size: int):
        self.size = int(size)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor):
        image = F.interpolate(image[None], size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=True)[0]
        return image, mask


def collate_eval(batch):
    """Images stacked (same size after the transform), masks kept as a list (sizes may differ)."""
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


# --- data ----------------------------------------------------------------------------------------
@dataclass
class OCINetData:
    """The training set and the named test sets (``columns``: test name -> paper column)."""
    train: Dataset
    tests: dict[str, Dataset]
    columns: dict[str, str]
    dataset: str
    real: bool
    notes: list[str] = field(default_factory=list)


def _seeded_subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    if n is None or n >= len(ds):
        return ds
    idx = np.random.default_rng(seed).permutation(len(ds))[:n]
    return Subset(ds, sorted(idx.tolist()))


def mtd_defective_split(root, test_fraction: float = 0.25, seed: int = 0) -> tuple[list[str], list[str]]:
    """MTD defective tiles with a non-empty mask, split per class (seeded): (train ids, test ids).

    The 7 near-duplicate pairs (:data:`defectlib.data.splits.MTD_NEAR_DUPLICATES`, the same crack or
    blowhole shot twice) are kept on one side, so no test tile has its twin in the training set.
    """
    ds = MTD(root, classes=[c for c in MTD.CLASSES if c != "Free"])
    keep = [i for i in range(len(ds)) if ds.load_arrays(i)[1].max() > ds.threshold]
    ids, labels = [ds.ids[i] for i in keep], [ds.labels[i] for i in keep]
    groups = groups_from_pairs(ids, MTD_NEAR_DUPLICATES)
    train, test = grouped_split(labels, (test_fraction,), seed=seed, groups=groups)
    return sorted(ids[i] for i in train), sorted(ids[i] for i in test)


def build_data(data_root=None, size: int = 352, seed: int = 0, augment: bool = True,
               test_limit: int | None = None) -> OCINetData:
    """Datasets for notebook 03 (see the module docstring for which data is chosen).

    ``test_limit`` keeps a seeded subset of each test set (cpu / smoke profiles).
    """
    train_tf, eval_tf = TrainTransform(size, augment), EvalTransform(size)
    nrsd, nrsd_real = locate("nrsd-mn", data_root)
    notes: list[str] = []
    if not nrsd_real and real_data_root(data_root) is not None:
        neu, neu_real = locate("neu-seg", data_root)
        mtd, mtd_real = locate("mtd", data_root)
        if neu_real and mtd_real:
            mtd_train, mtd_test = mtd_defective_split(mtd, seed=seed)
            train = ConcatDataset([NEUSeg(neu, "training", binary=True, transforms=train_tf),
                                   MTD(mtd, ids=mtd_train, transforms=train_tf)])
            neu_test = neu_seg_clean_test_ids(neu)
            tests = {"NEU-Seg test": NEUSeg(neu, "test", binary=True, ids=neu_test, transforms=eval_tf),
                     "MTD defective (held out)": MTD(mtd, ids=mtd_test, transforms=eval_tf)}
            notes.append(f"NRSD-MN is not available (password-protected); trained on real NEU-Seg "
                         f"training (3 defect classes merged into one) + {len(mtd_train)} MTD defective "
                         f"tiles; tested on NEU-Seg test ({len(neu_test)} images: the test images that "
                         f"near-duplicate a training image dropped) and {len(mtd_test)} held-out MTD "
                         f"defective tiles (per-class seeded 75/25 split, near-duplicate pairs kept on one "
                         f"side, tiles with an empty mask dropped).")
            return OCINetData(train, {k: _seeded_subset(v, test_limit, seed) for k, v in tests.items()},
                              {"NEU-Seg test": "man-made", "MTD defective (held out)": "natural"},
                              "NEU-Seg + MTD (binary)", True, notes)
    train = NRSDMN(nrsd, "train", transforms=train_tf)
    tests = {"man-made": NRSDMN(nrsd, "test-man-made", transforms=eval_tf),
             "natural": NRSDMN(nrsd, "test-natural", transforms=eval_tf)}
    name = "NRSD-MN" if nrsd_real else "NRSD-MN stand-in (generated)"
    if not nrsd_real:
        notes.append("generated NRSD-MN-format stand-in: numbers exercise the code, they measure nothing")
    return OCINetData(train, {k: _seeded_subset(v, test_limit, seed) for k, v in tests.items()},
                      {"man-made": "man-made", "natural": "natural"}, name, nrsd_real, notes)



def train_loader(data: OCINetData, cfg, seed: int = 0) -> DataLoader:
    """Shuffled (seeded) batches of ``cfg.batch_size`` training images, the last partial one dropped."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(data.train, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                      num_workers=cfg.num_workers, pin_memory=pin_memory(cfg.pin_memory),
                      generator=gen)
