"""Notebook 01's experiment: DANet (paper 000: Faster R-CNN + ResNet-50-FPN + DCN + CBAM + RoIAlign +
focal loss) trained on NEU-DET, the five phases of its Table 3 ablation."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler
from torchvision.transforms import v2

from ..data import NEUDET, collate_detection, locate
from ..data.splits import neu_det_split
from ..engine import detection_loss
from ..models import danet
from ..runtime import pin_memory

#: profile keys that are :func:`defectlib.models.danet.build_danet` arguments
MODEL_KEYS = ("width", "fpn_channels", "representation_size", "anchor_sizes", "focal_alpha", "focal_gamma",
              "min_size", "max_size", "box_batch_size_per_image", "rpn_pre_nms_top_n_train",
              "rpn_post_nms_top_n_train", "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_test")


def model_kwargs(cfg) -> dict:
    """The profile's model sizes as ``build_danet`` keyword arguments."""
    return {k: cfg[k] for k in MODEL_KEYS}


def build_model(cfg, phase: int, num_classes: int = len(NEUDET.CLASSES), weights=None, seed: int = 0):
    """Phase ``phase`` of Table 3 at the profile's size; every phase starts from the same random draw."""
    torch.manual_seed(seed)
    return danet.build_danet(phase, num_classes=num_classes, weights=weights, **model_kwargs(cfg))


def datasets(cfg, data_root=None, seed: int = 0) -> tuple[NEUDET, NEUDET, bool]:
    """(train, test, real): NEU-DET split by ``cfg.split`` and ``seed``, the training set flipped at
    random (``cfg.hflip``); ``max_train_images`` / ``max_test_images`` keep a seeded subset."""
    root, real = locate("neu-det", data_root)
    train_ids, test_ids = neu_det_split(root, cfg["split"], seed=seed, test_fraction=cfg["test_fraction"])
    rng = np.random.default_rng(seed)
    if cfg.get("max_train_images"):
        train_ids = sorted(rng.choice(train_ids, min(cfg["max_train_images"], len(train_ids)), replace=False))
    if cfg.get("max_test_images"):
        test_ids = sorted(rng.choice(test_ids, min(cfg["max_test_images"], len(test_ids)), replace=False))
    flip = v2.RandomHorizontalFlip(cfg["hflip"]) if cfg.get("hflip") else None
    return NEUDET(root, train_ids, transforms=flip), NEUDET(root, test_ids), real


def train_loader(train_ds, cfg, seed: int = 0) -> DataLoader:
    """Shuffled batches of ``cfg.batch_size`` images (seeded), the profile's workers and pinning."""
    sampler = RandomSampler(train_ds, generator=torch.Generator().manual_seed(seed))
    return DataLoader(train_ds, batch_size=cfg["batch_size"], sampler=sampler, collate_fn=collate_detection,
                      num_workers=cfg.get("num_workers", 0), pin_memory=pin_memory(cfg.get("pin_memory", False)))


def train_settings(cfg) -> dict:
    """The recipe's :class:`~defectlib.engine.TrainConfig` fields (paper: SGD 0.02 / 0.9 / 1e-4)."""
    keys = ("optimizer", "lr", "momentum", "weight_decay", "warmup_iters", "warmup_factor", "grad_clip")
    return {k: cfg[k] for k in keys}


def doctor_probes(cfg, data_root=None, seed: int = 0):
    """The largest model of the profile (the last phase it trains) for ``defectlib doctor``."""
    from ..doctor import Probe
    train_ds, _, real = datasets(cfg, data_root, seed)
    phase = max(cfg["phases"])
    per_phase = cfg["epochs"] * len(train_loader(train_ds, cfg, seed))
    steps = len(cfg["phases"]) * min(per_phase, cfg.get("max_steps") or per_phase)
    return [Probe("01", f"DANet phase {phase}", lambda: build_model(cfg, phase, seed=seed),
                  lambda: train_loader(train_ds, cfg, seed), detection_loss, train_settings(cfg), steps,
                  dataset="NEU-DET" if real else "NEU-DET stand-in", notes=weights_notes(cfg))]


def weights_notes(cfg) -> list[str]:
    """Whether the pretrained weights the profile starts from are on this machine (the doctor trains
    from random weights: the speed is the same)."""
    if cfg.get("weights") != "COCO_V1":
        return []
    import torchvision
    file, url = danet.pretrained_file(torchvision.models.detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1)
    if file.exists():
        return [f"weights: the COCO Faster R-CNN the run starts from is at {file}"]
    return [f"weights: the run downloads {url}; without internet put that file at {file} first"]
