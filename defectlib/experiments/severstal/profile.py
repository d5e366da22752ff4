"""Notebook 02's profiles: the two-stage Severstal pipeline (paper 001), smoke / cpu / paper."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import CPU, GPU, NO_GPU, Profile, three


# --- 02 Severstal two-stage (paper 001) ----------------------------------------------------------
# Paper: Sec. 5 and docs/papers.md#severstal-two-stage. Every profile trains a fixed number of steps
# (epochs x steps_per_epoch). Per-dataset sizes: crops (h, w) alternate by epoch; MTD tiles (sizes
# vary) are resized first.
@dataclass(frozen=True)
class SeverstalProfile(Profile):
    encoders: tuple[str, ...] = ("resnet34", "resnet50", "efficientnet_b3")
    classifier: str = "resnet50"
    standin_images: int | None = None
    severstal_scale: float = 1.0
    crops: dict = field(default_factory=lambda: {
        "severstal": ((256, 384), (256, 512)), "neu-seg": ((160, 192), (192, 192)), "mtd": ((256, 256), (256, 320))})
    image_size: dict = field(default_factory=lambda: {"mtd": (320, 320)})
    neu_seg_train_limit: int | None = None
    seg_batch_size: int = 5
    seg_epochs: int = 70
    tversky_epochs: int = 40
    steps_per_epoch: int | None = None
    cls_batch_size: int = 4
    cls_epochs: int = 20
    cls_steps_per_epoch: int | None = None
    val_limit: int | None = None
    tune_limit: int | None = None
    eval_limit: int | None = None
    curve_limit: int | None = 500            # test images of the learning curves (a seeded subset; None: all)
    lr: float = 1e-3
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    tversky_alpha: float = 0.3
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    dark_threshold: float = 0.05
    gate_threshold: float = 0.5              # the usual default, the course's "paper setting" (the paper prints none)
    pixel_threshold: float = 0.5
    gate_grid: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)   # tuned on validation
    pixel_grid: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    min_area_grid: tuple[int, ...] = (0, 16, 64)
    schedule: str = "plateau"                # the paper's "plateau long three epochs" (of the val loss: our reading)
    tversky_lr: float | None = None          # None: the Tversky stage goes on from the lr the first stage ended at
    mtd_defect_p: float = 0.0                # share of MTD training crops centred near a defect (not in the paper)
    mtd_one_channel: bool = False            # MTD's 5 classes as one "defect" channel (not in the paper)
    gate_init: str = "scratch"               # "scratch" | "unet": the gate's trunk copied from the trained U-Net's encoder
    cache_images: bool = False               # keep MTD's decoded, resized tiles in memory (same values, no re-decoding)

    def training(self, model=None) -> dict:
        """Adam, the lr halved after a plateau (paper 001, Sec. 5; of the validation loss: our reading), for
        ``model`` ``"unet"`` (BCE + Dice), ``"tversky"`` (its fine-tuning; ``tversky_lr`` None: the
        caller passes the lr the first stage ended at) or ``"gate"``."""
        epochs = {"unet": self.seg_epochs, "tversky": self.tversky_epochs, "gate": self.cls_epochs}
        if model not in epochs:
            raise KeyError(f"notebook 02 trains 'unet', 'tversky' and 'gate', not {model!r}")
        lr = self.tversky_lr if model == "tversky" and self.tversky_lr is not None else self.lr
        return {**self.numerics(), "epochs": epochs[model], "optimizer": "adam", "lr": lr,
                "schedule": self.schedule, "plateau_factor": self.plateau_factor,
                "plateau_patience": self.plateau_patience}


# "cpu": U-Net-ResNet34 and a ResNet34 gate (the paper's Table 2 model) instead of ResNet-50, from
# scratch. NEU-Seg: whole 200x200 images (no crop: they are that small). MTD: tiles resized to
# 160x192 (about half size), 96 px crops, 70 % of them centred near a defect, one "defect"
# channel, the gate's trunk copied from the MTD U-Net's encoder and trained 300 steps (with
# 128 px tiles, uniform crops and 5 channels the U-Net predicted nothing and the gate was at
# chance, seed 0). Batches of 16; fixed steps (epochs x steps_per_epoch): 600 of
# BCE + Dice under a one-cycle schedule peaking at the paper's lr 1e-3 (a plateau-halved constant
# lr learns far more slowly from scratch); no Tversky stage (100 Tversky steps at 1e-4 lowered the
# test IoU of both U-Nets in seeds 0-2 and cost 4 min: notebook section 4). A NEU-Seg step, 16
# images of 200x200, takes ~1.6 s on 2 cores: 17 of the notebook's ~29 min. bf16 autocast and
# channels_last on CPUs with native bf16; MTD tiles decoded once (cache_images). Thresholds tuned
# on 120 val images, NEU-Seg tested on a random 240 of its test images.
_NB02_SMALL = {"encoders": ("resnet34",), "classifier": "resnet34", "mtd_defect_p": 0.7, "mtd_one_channel": True,
               "gate_init": "unet", "cache_images": True, **NO_GPU}
# "paper": the learning curves (drawn, never used to choose) read a seeded 500 of the ~1,885 test
# strips after each of the 330 U-Net epochs (70 + 40 per encoder), not all of them; the validation
# loss, which the plateau schedule reads, stays on the whole validation split every epoch. The cpu
# and smoke profiles draw their curves on all their test images.
PROFILES = three(
    SeverstalProfile(**GPU),
    {**_NB02_SMALL, **CPU, "severstal_scale": 0.5,
     "crops": {"severstal": ((128, 192), (128, 256)), "neu-seg": ((200, 200),), "mtd": ((96, 96), (96, 128))},
     "image_size": {"mtd": (160, 192)}, "seg_batch_size": 16, "seg_epochs": 6, "tversky_epochs": 0,
     "steps_per_epoch": 100, "schedule": "onecycle", "tversky_lr": 1e-4, "cls_batch_size": 16, "cls_epochs": 6,
     "cls_steps_per_epoch": 50, "val_limit": 48, "tune_limit": 120, "eval_limit": 240, "curve_limit": None},
    {**_NB02_SMALL, "severstal_scale": 0.25,
     "crops": {"severstal": ((64, 96), (64, 128)), "neu-seg": ((64, 64), (64, 96)), "mtd": ((64, 64), (64, 96))},
     "image_size": {"mtd": (96, 96)}, "neu_seg_train_limit": 32, "seg_batch_size": 4, "seg_epochs": 1,
     "tversky_epochs": 1, "steps_per_epoch": 2, "cls_batch_size": 4, "cls_epochs": 1, "cls_steps_per_epoch": 2,
     "val_limit": 8, "tune_limit": 8, "eval_limit": 8, "curve_limit": None})
