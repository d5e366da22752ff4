"""Notebook 01's recipe: DANet (paper 000: Faster R-CNN + ResNet-50-FPN + DCN + CBAM + RoIAlign +
focal loss), the five phases of its Table 3 ablation, each built at the profile's size and trained
with the paper's SGD (Sec. IV-B and docs/papers.md#danet)."""
from __future__ import annotations

import torch

from ...data import NEUDET
from ...engine import detection_loss
from ...models import danet
from .data import datasets, train_loader

#: profile keys that are :func:`defectlib.models.danet.build_danet` arguments
MODEL_KEYS = ("width", "fpn_channels", "representation_size", "anchor_sizes", "focal_alpha", "focal_gamma",
              "min_size", "max_size", "box_batch_size_per_image", "rpn_pre_nms_top_n_train",
              "rpn_post_nms_top_n_train", "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_test")


def model_kwargs(cfg) -> dict:
    """The profile's model sizes as ``build_danet`` keyword arguments."""
    return {k: getattr(cfg, k) for k in MODEL_KEYS}


def build_model(cfg, phase: int, num_classes: int = len(NEUDET.CLASSES), weights=None, seed: int = 0,
                frozen_bn: bool | None = None):
    """Phase ``phase`` of Table 3 at the profile's size; every phase starts from the same random draw.
    ``frozen_bn=True``: the shape of a pretrained start (frozen BatchNorm, 3 trainable stages)
    without its weights."""
    torch.manual_seed(seed)
    return danet.build_danet(phase, num_classes=num_classes, weights=weights, frozen_bn=frozen_bn,
                             **model_kwargs(cfg))


def starting_weights(cfg, dry_run: bool = False, say=print):
    """The weights the profile's detector starts from: torchvision's COCO Faster R-CNN for the
    paper profile (downloaded once by torchvision), None (random) otherwise and in a dry run,
    which says instead where the full run will find the file: better now than on a GPU node
    without internet after the run has started."""
    if cfg.weights != "COCO_V1":
        return None
    import torchvision
    coco = torchvision.models.detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1
    file, url = danet.pretrained_file(coco)
    if dry_run:
        say(f"dry run: the full run loads the COCO weights from {file}" if file.exists() else
            f"dry run: the full run downloads {url}; a machine without internet needs that file at {file}")
        return None
    return coco


def doctor_probes(cfg, data_root=None, seed: int = 0):
    """The largest model of the profile (the last phase it trains) for ``defectlib doctor``."""
    from ..registry import Probe, train_config
    train_ds, _, real = datasets(cfg, data_root, seed)
    phase = max(cfg.phases)
    per_phase = cfg.epochs * len(train_loader(train_ds, cfg, seed))
    steps = len(cfg.phases) * min(per_phase, cfg.max_steps or per_phase)
    # the model the run trains: frozen BatchNorm and 3 trainable stages where it starts from weights
    pretrained = cfg.weights is not None
    return [Probe("01", f"DANet phase {phase}", lambda: build_model(cfg, phase, seed=seed, frozen_bn=pretrained),
                  lambda: train_loader(train_ds, cfg, seed), detection_loss, train_config(cfg, seed=seed), steps,
                  dataset="NEU-DET" if real else "NEU-DET stand-in", notes=weights_notes(cfg))]


def weights_notes(cfg) -> list[str]:
    """Whether the pretrained weights the profile starts from are on this machine (the doctor trains
    from random weights: the speed is the same)."""
    if cfg.weights != "COCO_V1":
        return []
    import torchvision
    file, url = danet.pretrained_file(torchvision.models.detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1)
    if file.exists():
        return [f"weights: the COCO Faster R-CNN the run starts from is at {file}"]
    return [f"weights: the run downloads {url}; without internet put that file at {file} first"]
