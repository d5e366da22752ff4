"""Notebook 01's data: NEU-DET (1,800 grey 200x200 images, six defect classes, Pascal VOC boxes) split
per class with a seed (:func:`defectlib.data.splits.neu_det_split`), random horizontal flips for
training (paper 000, Sec. IV-B)."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler
from torchvision.transforms import v2

from ...data import NEUDET, collate_detection
from ...synth import locate
from ...data.splits import neu_det_split
from ...runtime import pin_memory


def datasets(cfg, data_root=None, seed: int = 0) -> tuple[NEUDET, NEUDET, bool]:
    """(train, test, real): NEU-DET split by ``cfg.split`` and ``seed``, the training set flipped at
    random (``cfg.hflip``); ``max_train_images`` / ``max_test_images`` keep a seeded subset."""
    root, real = locate("neu-det", data_root)
    train_ids, test_ids = neu_det_split(root, cfg.split, seed=seed, test_fraction=cfg.test_fraction)
    rng = np.random.default_rng(seed)
    if cfg.max_train_images:
        train_ids = sorted(rng.choice(train_ids, min(cfg.max_train_images, len(train_ids)), replace=False))
    if cfg.max_test_images:
        test_ids = sorted(rng.choice(test_ids, min(cfg.max_test_images, len(test_ids)), replace=False))
    flip = v2.RandomHorizontalFlip(cfg.hflip) if cfg.hflip else None
    return NEUDET(root, train_ids, transforms=flip), NEUDET(root, test_ids), real


def train_loader(train_ds, cfg, seed: int = 0) -> DataLoader:
    """Shuffled batches of ``cfg.batch_size`` images (seeded), the profile's workers and pinning."""
    sampler = RandomSampler(train_ds, generator=torch.Generator().manual_seed(seed))
    return DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate_detection,
                      num_workers=cfg.num_workers, pin_memory=pin_memory(cfg.pin_memory))
