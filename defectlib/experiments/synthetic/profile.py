"""Notebook 04's profiles: synthetic data for defect segmentation (paper 004), smoke / cpu / paper."""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import CPU, GPU, NO_GPU, Profile, Settings, three


# --- 04 Synthetic data (paper 004) ---------------------------------------------------------------
# archs: subset of defectlib.models.seg_baselines.ARCHITECTURES; arms: defectlib.experiments.synthetic.ARMS.
# target_*: MTD tiles (Blowhole/Break/Crack + Free) for train (4:1 train/val) and test, split by seed;
# scale 0.5 = half resolution (the paper evaluates RealClutch at half resolution). steps_per_epoch
# None = one pass over the training images. At half resolution an MTD tile fits one 224x320
# evaluation patch (smaller patches left seams of false positives along the patch borders).
# "cpu": U-Net-ResNet34 only (an FCN / DeepLabV3 step, dilated ResNet-50s at output stride 8, costs
# 3.8x / 5x a U-Net step) and five arms: real-only, NEU-Seg +/- FT, SynthTile +/- FT (the exposure-
# stacking pair needs one more pre-training; the paper profile runs all seven). Fixed steps: 800
# per training run and 400 per fine-tuning (epochs of 100 steps of 16 crops of 96x96), no early
# stop, the last weights kept; the paper's AdamW / lr 1e-3 / FT lr 1e-4 / wd 1e-4, with a one-cycle
# schedule instead of "halve every 50 epochs", BCE + Dice instead of BCE, and 70 % of the crops
# centred near a defect pixel (the paper's intensity-biased crops almost never hold one of MTD's
# 0.2-4 %-of-a-tile defects); bf16 autocast and channels_last on CPUs with native bf16.
@dataclass(frozen=True)
class StudyProfile(Settings):
    """Notebook 04's training runs; the defaults are the paper's recipe (but for the augmentation:
    flips and 90-degree turns only, :class:`.data.CropSet`). The numerics, progress bars
    and a dry run's cut are the notebook profile's own (its ``precision``, ``channels_last``...):
    :func:`defectlib.experiments.synthetic.study_config` copies them here, the tables never set them."""
    crop: int = 256
    batch_size: int = 16
    steps_per_epoch: int | None = None
    max_epochs: int = 1000
    val_crops: int = 64
    lr_grid: tuple[float, ...] = (1e-3, 1e-4)
    wd_grid: tuple[float, ...] = (1e-4, 1e-5)
    finetune_lr: float = 1e-4
    finetune_epochs: int = 1000
    halve_every: int = 50
    early_stop_patience: int = 5
    early_stop_min_delta: float = 0.01
    eval_patch: tuple[int, int] = (224, 320)
    loss: str = "bce"                        # "bce" (paper) | "bce_dice"
    defect_p: float = 0.0                    # share of training crops centred near a defect pixel
    schedule: str = "step"                   # "step" (paper: halve every halve_every epochs) | "onecycle"
    early_stopping: bool = True
    restore_best: bool = True
    curve: bool = False                      # test F1 after every epoch of the runs on the target
    # copied from the notebook profile by study_config (see above)
    precision: str = "fp32"
    channels_last: bool = False
    sync_bn: bool = False
    progress: bool = False
    max_steps: int | None = None             # dry runs: optimizer steps per training run
    max_eval_batches: int | None = None      # dry runs: validation-loss batches
    max_eval_images: int | None = None       # dry runs: test images
    checkpoint_every: int = 0                # epochs between checkpoints (0: none)
    checkpoint_dir: str | None = None        # the run's checkpoint folder (every run a named sub-folder)
    resume: bool = False

    def training(self, model=None) -> dict:
        """Every run (pre-training, real-only, fine-tuning) trains with AdamW (paper 004, Sec. 5.1),
        the lr halved every ``halve_every`` epochs (or the profile's schedule), stopped early on the
        validation loss; the caller passes the grid point (``lr``, ``weight_decay``) and, for
        fine-tuning, its ``epochs``."""
        return {"epochs": self.max_epochs, "optimizer": "adamw", "lr": self.lr_grid[0],
                "weight_decay": self.wd_grid[0], "schedule": self.schedule, "step_size": self.halve_every,
                "gamma": 0.5, "early_stopping": self.early_stopping, "early_stop_patience": self.early_stop_patience,
                "early_stop_min_delta": self.early_stop_min_delta, "max_steps": self.max_steps,
                "progress": self.progress, "precision": self.precision, "channels_last": self.channels_last,
                "sync_bn": self.sync_bn}


_NB04_ARMS = ("real", "planar", "planar_ft", "synth", "synth_ft", "synth_ex", "synth_ex_ft")


@dataclass(frozen=True)
class SyntheticProfile(Profile):
    archs: tuple[str, ...] = ("fcn", "deeplabv3", "unet")
    arms: tuple[str, ...] = _NB04_ARMS
    target_train_defective: int = 32
    target_train_clean: int = 32
    target_test_defective: int | None = None
    target_test_clean: int | None = None
    target_scale: float = 1.0
    planar_train: int | None = None
    planar_val: int | None = None
    synth_parts: int = 1000
    synth_val_parts: int = 100
    synth_size: int = 320
    synth_views: int = 4
    study: StudyProfile = StudyProfile()
    explore_size: int = 256
    bench_size: int = 256
    n_examples: int = 6
    progress: bool = True


_STUDY_PAPER = StudyProfile()
PROFILES = three(
    SyntheticProfile(**GPU),
    {**NO_GPU, **CPU, "archs": ("unet",), "arms": ("real", "planar", "planar_ft", "synth", "synth_ft"),
     "target_train_defective": 24, "target_train_clean": 12, "target_test_defective": 45, "target_test_clean": 15,
     "target_scale": 0.5, "planar_train": 400, "planar_val": 32, "synth_parts": 60, "synth_val_parts": 6,
     "synth_size": 160, "study": _STUDY_PAPER.replace(
         crop=96, steps_per_epoch=100, max_epochs=8, val_crops=48, lr_grid=(1e-3,), wd_grid=(1e-4,),
         finetune_epochs=4, loss="bce_dice", defect_p=0.7, schedule="onecycle", early_stopping=False,
         restore_best=False, curve=True),
     "explore_size": 160, "n_examples": 4},
    {**NO_GPU, "archs": ("unet",), "target_train_defective": 4, "target_train_clean": 2, "target_test_defective": 3,
     "target_test_clean": 1, "target_scale": 0.5, "planar_train": 8, "planar_val": 2, "synth_parts": 2,
     "synth_val_parts": 1, "synth_size": 64, "synth_views": 2, "study": _STUDY_PAPER.replace(
         crop=64, batch_size=2, steps_per_epoch=1, max_epochs=1, val_crops=2, lr_grid=(1e-3,), wd_grid=(1e-4,),
         finetune_epochs=1, eval_patch=(64, 64)),
     "explore_size": 64, "bench_size": 64, "n_examples": 2, "progress": False})
