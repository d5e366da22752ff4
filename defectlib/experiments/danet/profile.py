"""Notebook 01's profiles: DANet on NEU-DET (paper 000), smoke / cpu / paper."""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import GPU, NO_GPU, Profile, three


# --- 01 DANet on NEU-DET (paper 000) -------------------------------------------------------------
# Paper: Sec. IV-B and docs/papers.md#danet. Model sizes are build_danet() arguments; training
# keys are defectlib.engine.TrainConfig fields. "paper" is exact where the paper says (SGD 0.02 /
# 0.9 / 1e-4, batch 4, 30 epochs, COCO-pretrained ResNet-50-FPN, and "decrease the learning rate at
# the 20th and 28th epochs"); lr 0.02 is the usual value for batch 16 (linear scaling gives 0.005 at
# batch 4): the paper states 0.02 with batch 4, so we keep it and the notebook says so. Unstated
# there, our choices from the torchvision / mmdetection recipes: the factor of those two decreases
# (gamma 0.1, the usual Faster R-CNN one), 800-1333 px resize, 512 sampled RoIs, 500-step warm-up.
# "cpu": real NEU-DET, from scratch on 2 cores; ResNet-50 layout kept (16 bottlenecks, DCN in
# c3-c5, CBAM everywhere) at 1/4 width, native 192 px, 64 RoIs; phases 2 and 5 with the same
# fixed steps (epochs x 360 steps of 4 images), SGD 0.02 with a 200-step warm-up and a cosine decay
# (from scratch, a cosine over the run learns much faster than the paper profile's two step drops).
@dataclass(frozen=True)
class DANetProfile(Profile):
    phases: tuple[int, ...] = (1, 2, 3, 4, 5)
    split: str = "stratified"
    test_fraction: float = 0.2
    weights: str | None = None               # "COCO_V1": torchvision's COCO Faster R-CNN
    width: int = 64
    fpn_channels: int = 256
    representation_size: int = 1024
    min_size: int = 800
    max_size: int = 1333
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    box_batch_size_per_image: int = 512
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    batch_size: int = 4
    eval_batch_size: int = 8
    hflip: float = 0.5
    epochs: int = 30
    optimizer: str = "sgd"
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "multistep"
    milestones: tuple[int, ...] = (20, 28)
    gamma: float = 0.1                       # our choice: the paper gives no factor
    warmup_iters: int = 500
    warmup_factor: float = 0.001
    grad_clip: float | None = None
    max_train_images: int | None = None
    max_test_images: int | None = None
    n_show: int = 6
    eval_every: int = 5                      # epochs between test-AP50 points of the learning curve (and the end)

    def __post_init__(self) -> None:
        """Settings checked when made (``--set phases=2,9`` fails here, before any training)."""
        phases = self.phases if isinstance(self.phases, (tuple, list)) else (self.phases,)
        bad = [p for p in phases if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 5]
        if not phases or bad:
            raise ValueError(f"phases={self.phases!r}: each phase is one of 1..5 (DANet's ablation phases), "
                             f"got {bad or 'none'}")

    def training(self, model=None) -> dict:
        """Every phase trains with the paper's SGD recipe (Sec. IV-B) at the profile's size."""
        return {**self.numerics(), "epochs": self.epochs, "optimizer": self.optimizer, "lr": self.lr,
                "momentum": self.momentum, "weight_decay": self.weight_decay, "schedule": self.schedule,
                "milestones": self.milestones, "gamma": self.gamma, "warmup_iters": self.warmup_iters,
                "warmup_factor": self.warmup_factor, "grad_clip": self.grad_clip, "eval_every": self.eval_every}


_NB01_SMALL = {"anchor_sizes": (16, 32, 64, 128, 256), "grad_clip": 10.0, "weights": None, **NO_GPU}
PROFILES = three(
    DANetProfile(weights="COCO_V1", **GPU),
    {**_NB01_SMALL, "phases": (2, 5), "width": 16, "fpn_channels": 64, "representation_size": 256,
     "min_size": 192, "max_size": 192, "box_batch_size_per_image": 64, "rpn_pre_nms_top_n_train": 1000,
     "rpn_post_nms_top_n_train": 500, "rpn_pre_nms_top_n_test": 500, "rpn_post_nms_top_n_test": 300,
     "epochs": 8, "schedule": "cosine", "milestones": (), "warmup_iters": 200, "eval_every": 2},
    {**_NB01_SMALL, "width": 8, "fpn_channels": 32, "representation_size": 64, "min_size": 128, "max_size": 128,
     "box_batch_size_per_image": 32, "rpn_pre_nms_top_n_train": 200, "rpn_post_nms_top_n_train": 100,
     "rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 50, "epochs": 1, "milestones": (1,),
     "max_steps": 2, "warmup_iters": 0, "max_train_images": 16, "max_test_images": 8, "n_show": 2,
     "eval_every": 1})
