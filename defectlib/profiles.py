"""Profiles: the one place that says what ``smoke``, ``cpu`` and ``paper`` mean for each notebook.

- ``smoke``: seconds. Plumbing on tiny generated data; every code path runs, no number means much.
- ``cpu``:   a real, reduced-scale experiment that ends in about 30 minutes on 2 CPU cores.
- ``paper``: the paper's own hyperparameters, for GPU users.

Each notebook has one frozen dataclass of settings (:class:`DANetProfile`, :class:`SeverstalProfile`,
:class:`OCINetProfile`, :class:`SyntheticProfile`, :class:`GettingStartedProfile`); its defaults
are the ``paper`` profile, and ``cpu`` and ``smoke`` are derived from it with :meth:`Settings.replace`,
which (like the constructor) refuses a setting the notebook does not have and lists the ones it
does: a misspelt key is an error, not a silent default. A profile reads as attributes and as a
mapping (``cfg.epochs == cfg["epochs"]``, ``cfg.get``, ``dict(cfg)``), and never changes: change a
setting with ``cfg = cfg.replace(epochs=3)``.

Every profile fixes the number of optimizer steps, the data seen and the evaluation set from the
profile and the seed alone, never from wall time: the same seed gives the same numbers on the same
machine however busy it is. No profile sets a thread count: a notebook alone uses every core, and
``defectlib run --jobs N`` gives each of N notebooks its share. ``precision="auto"`` (see
:mod:`defectlib.engine.precision`) is bf16 autocast on CPUs with native bf16 and mixed precision on
GPUs; ``num_workers`` / ``pin_memory`` feed a GPU in the ``paper`` profiles.

``get(notebook, profile, dry_run=True)`` turns any profile into a dry run: the same configuration,
stopped after 2 optimizer steps and one evaluation batch, so a GPU user learns at once whether the
full run will start. Notebooks read their sizes from here; they never hard-code their own.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROFILE_NAMES = ("smoke", "cpu", "paper")


class Settings(Mapping):
    """Frozen settings, read as attributes or as a mapping; :meth:`replace` makes a changed copy."""

    def _names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self)]

    def _unknown(self, names) -> str:
        return f"{type(self).__name__} has no setting {', '.join(map(repr, names))}; it has {sorted(self._names())}"

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(self._unknown([key]))
        return getattr(self, key)

    def __iter__(self):
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __getattr__(self, name: str) -> Any:  # only for names that are not settings
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(self._unknown([name]))

    def replace(self, **changes: Any) -> "Settings":
        """A copy with ``changes``; a name that is not a setting is a KeyError listing the settings."""
        unknown = sorted(set(changes) - set(self._names()))
        if unknown:
            raise KeyError(self._unknown(unknown))
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (nested settings as dicts), e.g. for JSON."""
        return {k: v.to_dict() if isinstance(v, Settings) else v for k, v in self.items()}


@dataclass(frozen=True)
class Profile(Settings):
    """What every profile of every notebook has."""
    profile: str = "paper"
    max_steps: int | None = None             # dry runs: optimizer steps per training run
    max_eval_batches: int | None = None      # dry runs: evaluation batches
    dry_run: bool = False
    num_workers: int = 0                     # data-loader worker processes
    pin_memory: bool = False
    precision: str = "fp32"                  # engine numerics: fp32 | bf16 | fp16 | auto
    channels_last: bool = False


# what the paper profiles add for a GPU: mixed precision, and loader workers so JPEG decoding keeps up
_GPU = {"num_workers": 4, "pin_memory": True, "precision": "auto", "channels_last": True}
# what the cpu profiles add: bf16 autocast where the CPU has it natively, channels_last
_CPU = {"precision": "auto", "channels_last": True}
# the other profiles start from the paper's GPU settings: back to one process and exact numerics
_NO_GPU = {"num_workers": 0, "pin_memory": False, "precision": "fp32", "channels_last": False}


# --- 00 getting started --------------------------------------------------------------------------
@dataclass(frozen=True)
class GettingStartedProfile(Profile):
    samples_per_dataset: int = 4


# --- 01 DANet on NEU-DET (paper 000) -------------------------------------------------------------
# Paper: Sec. IV-B and REFERENCE.md section 1. Model sizes are build_danet() arguments; training
# keys are defectlib.engine.TrainConfig fields. "paper" is exact where the paper says (SGD 0.02 /
# 0.9 / 1e-4, batch 4, 30 epochs, lr x0.1 after epochs 20 and 28, COCO-pretrained ResNet-50-FPN);
# lr 0.02 is the usual value for batch 16 (linear scaling gives 0.005 at batch 4): the paper
# states 0.02 with batch 4, so we keep it and the notebook says so. Unstated there, from the
# torchvision / mmdetection recipes: 800-1333 px resize, 512 sampled RoIs, 500-step warm-up.
# "cpu": real NEU-DET, from scratch on 2 cores; ResNet-50 layout kept (16 bottlenecks, DCN in
# c3-c5, CBAM everywhere) at 1/4 width, native 192 px, 64 RoIs; phases 2 and 5 with the same
# fixed steps (epochs x 360 steps of 4 images), SGD 0.02 with a 200-step warm-up and a cosine decay
# (from scratch, a cosine over the run learns much faster than the paper's two x0.1 drops).
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
    gamma: float = 0.1
    warmup_iters: int = 500
    warmup_factor: float = 0.001
    grad_clip: float | None = None
    max_train_images: int | None = None
    max_test_images: int | None = None
    n_show: int = 6
    eval_every: int = 5                      # epochs between test-AP50 points of the learning curve (and the end)


# --- 02 Severstal two-stage (paper 001) ----------------------------------------------------------
# Paper: Sec. 5 and REFERENCE.md section 2. Every profile trains a fixed number of steps
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
    lr: float = 1e-3
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    tversky_alpha: float = 0.3
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    dark_threshold: float = 0.05
    gate_threshold: float = 0.5              # the paper's fixed values
    pixel_threshold: float = 0.5
    gate_grid: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)   # tuned on validation
    pixel_grid: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    min_area_grid: tuple[int, ...] = (0, 16, 64)
    schedule: str = "plateau"                # the paper's: Adam lr halved after a 3-epoch plateau of the val loss
    tversky_lr: float | None = None          # None: the Tversky stage goes on from the lr the first stage ended at
    mtd_defect_p: float = 0.0                # share of MTD training crops centred near a defect (not in the paper)
    mtd_one_channel: bool = False            # MTD's 5 classes as one "defect" channel (not in the paper)
    gate_init: str = "scratch"               # "scratch" | "unet": the gate's trunk copied from the trained U-Net's encoder
    cache_images: bool = False               # keep MTD's decoded, resized tiles in memory (same values, no re-decoding)


# --- 03 OCINet on NRSD-MN (paper 003) ------------------------------------------------------------
# variants: keys of defectlib.models.ocinet.VARIANTS (Table III rows + Table II's order ablation).
# Training steps = epochs x (training images // batch_size); max_steps only cuts a dry run.
# "cpu": the two ends of Table III, Base and the full OCINet, with the same steps, from random
# weights (no download): 224x224 instead of 352x352, batch 8, one pass over the ~3,900 training
# images (~490 steps), Adam with a one-cycle schedule peaking at 5e-4 (from scratch, ~5 % of the
# paper's steps: the paper's constant 1e-4 learns far too slowly here), bf16 autocast and
# channels_last on CPUs with native bf16 (OCINet's step: 2.0x faster than fp32 on 2 threads,
# benchmarks/bench_engine.py numerics). curve_every: test IoU every that many steps (the learning
# curve; it leaves the training as it is). schedule: None = the paper's ("multistep" at milestones).
_NB03_ALL = ("base", "c", "s", "cs", "p", "full", "vanilla_ca", "vanilla_sa",
             "c_wocs", "s_wocs", "p_wocs", "csp_wocs", "ggl")


@dataclass(frozen=True)
class OCINetProfile(Profile):
    variants: tuple[str, ...] = _NB03_ALL
    input_size: int = 352
    batch_size: int = 16
    eval_batch_size: int = 16
    epochs: int = 70
    lr: float = 1e-4
    schedule: str | None = None
    milestones: tuple[int, ...] = (30,)
    gamma: float = 0.1
    grad_clip: float | None = 0.5
    augment: bool = True
    test_limit: int | None = None
    flops_size: int = 352
    throughput_size: int = 352
    throughput_warmup: int = 10
    throughput_repeats: int = 50
    n_qualitative: int = 6
    progress: bool = True
    curve_every: int | None = 500
    # the paper starts PVT-v2-b2 from ImageNet: a local file in $DEFECTLIB_WEIGHTS
    backbone_weights: str | None = "pvt_v2_b2.pth"


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
    """Notebook 04's training runs (:class:`defectlib.experiments.synthetic.StudyConfig`); the
    defaults are the paper's recipe."""
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
    precision: str = "auto"
    channels_last: bool = True


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


# --- the three profiles of every notebook ---------------------------------------------------------
def _three(paper: Profile, cpu: dict, smoke: dict) -> dict[str, Profile]:
    return {"paper": paper, "cpu": paper.replace(profile="cpu", **cpu), "smoke": paper.replace(profile="smoke", **smoke)}


NB00 = _three(GettingStartedProfile(), {}, {"samples_per_dataset": 2})

_NB01_SMALL = {"anchor_sizes": (16, 32, 64, 128, 256), "grad_clip": 10.0, "weights": None, **_NO_GPU}
NB01 = _three(
    DANetProfile(weights="COCO_V1", **_GPU),
    {**_NB01_SMALL, "phases": (2, 5), "width": 16, "fpn_channels": 64, "representation_size": 256,
     "min_size": 192, "max_size": 192, "box_batch_size_per_image": 64, "rpn_pre_nms_top_n_train": 1000,
     "rpn_post_nms_top_n_train": 500, "rpn_pre_nms_top_n_test": 500, "rpn_post_nms_top_n_test": 300,
     "epochs": 8, "schedule": "cosine", "milestones": (), "warmup_iters": 200, "eval_every": 2},
    {**_NB01_SMALL, "width": 8, "fpn_channels": 32, "representation_size": 64, "min_size": 128, "max_size": 128,
     "box_batch_size_per_image": 32, "rpn_pre_nms_top_n_train": 200, "rpn_post_nms_top_n_train": 100,
     "rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 50, "epochs": 1, "milestones": (1,),
     "max_steps": 2, "warmup_iters": 0, "max_train_images": 16, "max_test_images": 8, "n_show": 2,
     "eval_every": 1})

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
               "gate_init": "unet", "cache_images": True, **_NO_GPU}
NB02 = _three(
    SeverstalProfile(**_GPU),
    {**_NB02_SMALL, **_CPU, "severstal_scale": 0.5,
     "crops": {"severstal": ((128, 192), (128, 256)), "neu-seg": ((200, 200),), "mtd": ((96, 96), (96, 128))},
     "image_size": {"mtd": (160, 192)}, "seg_batch_size": 16, "seg_epochs": 6, "tversky_epochs": 0,
     "steps_per_epoch": 100, "schedule": "onecycle", "tversky_lr": 1e-4, "cls_batch_size": 16, "cls_epochs": 6,
     "cls_steps_per_epoch": 50, "val_limit": 48, "tune_limit": 120, "eval_limit": 240},
    {**_NB02_SMALL, "severstal_scale": 0.25,
     "crops": {"severstal": ((64, 96), (64, 128)), "neu-seg": ((64, 64), (64, 96)), "mtd": ((64, 64), (64, 96))},
     "image_size": {"mtd": (96, 96)}, "neu_seg_train_limit": 32, "seg_batch_size": 4, "seg_epochs": 1,
     "tversky_epochs": 1, "steps_per_epoch": 2, "cls_batch_size": 4, "cls_epochs": 1, "cls_steps_per_epoch": 2,
     "val_limit": 8, "tune_limit": 8, "eval_limit": 8})

NB03 = _three(
    OCINetProfile(**_GPU),
    {**_NO_GPU, **_CPU, "variants": ("base", "full"), "input_size": 224, "batch_size": 8, "eval_batch_size": 8,
     "epochs": 1, "lr": 5e-4, "schedule": "onecycle", "milestones": (), "test_limit": 200, "throughput_size": 224,
     "throughput_warmup": 1, "throughput_repeats": 3, "n_qualitative": 4, "curve_every": 100,
     "backbone_weights": None},
    {**_NO_GPU, "variants": ("full",), "input_size": 64, "batch_size": 2, "eval_batch_size": 4, "epochs": 1,
     "max_steps": 2, "milestones": (), "test_limit": 4, "flops_size": 64, "throughput_size": 64,
     "throughput_warmup": 1, "throughput_repeats": 2, "n_qualitative": 2, "progress": False, "curve_every": 1,
     "backbone_weights": None})

_STUDY_PAPER = StudyProfile()
NB04 = _three(
    SyntheticProfile(**_GPU),
    {**_NO_GPU, "archs": ("unet",), "arms": ("real", "planar", "planar_ft", "synth", "synth_ft"),
     "target_train_defective": 24, "target_train_clean": 12, "target_test_defective": 45, "target_test_clean": 15,
     "target_scale": 0.5, "planar_train": 400, "planar_val": 32, "synth_parts": 60, "synth_val_parts": 6,
     "synth_size": 160, "study": _STUDY_PAPER.replace(
         crop=96, steps_per_epoch=100, max_epochs=8, val_crops=48, lr_grid=(1e-3,), wd_grid=(1e-4,),
         finetune_epochs=4, loss="bce_dice", defect_p=0.7, schedule="onecycle", early_stopping=False,
         restore_best=False, curve=True),
     "explore_size": 160, "n_examples": 4},
    {**_NO_GPU, "archs": ("unet",), "target_train_defective": 4, "target_train_clean": 2, "target_test_defective": 3,
     "target_test_clean": 1, "target_scale": 0.5, "planar_train": 8, "planar_val": 2, "synth_parts": 2,
     "synth_val_parts": 1, "synth_size": 64, "synth_views": 2, "study": _STUDY_PAPER.replace(
         crop=64, batch_size=2, steps_per_epoch=1, max_epochs=1, val_crops=2, lr_grid=(1e-3,), wd_grid=(1e-4,),
         finetune_epochs=1, eval_patch=(64, 64), precision="fp32", channels_last=False),
     "explore_size": 64, "bench_size": 64, "n_examples": 2, "progress": False})

TABLES = {"00": NB00, "01": NB01, "02": NB02, "03": NB03, "04": NB04}


def get(notebook: str, profile: str, dry_run: bool = False, **changes: Any) -> Profile:
    """The configuration of ``notebook`` (``"01"`` or ``"01_danet_neu_det"``) under ``profile``, with
    ``changes`` (known settings only); ``dry_run``: stopped after 2 steps and one evaluation batch."""
    key = str(notebook)[:2]
    if key not in TABLES:
        raise KeyError(f"no profiles for notebook {notebook!r}; known: {sorted(TABLES)}")
    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILE_NAMES}")
    cfg = TABLES[key][profile].replace(**changes)
    if dry_run:
        cfg = cfg.replace(dry_run=True, max_steps=2, max_eval_batches=1)
    return cfg


def table(notebook: str, dry_run: bool = False) -> str:
    """The three profiles of ``notebook`` side by side, as a markdown table (for notebooks/README)."""
    cfgs = {p: get(notebook, p, dry_run=dry_run) for p in PROFILE_NAMES}
    names = [k for k in cfgs["paper"] if k != "profile"]

    def cell(value: Any) -> str:
        value = value.to_dict() if isinstance(value, Settings) else value
        text = "-" if value is None else repr(value) if isinstance(value, str) else str(value)
        return text if len(text) <= 40 else text[:37] + "..."

    lines = ["| setting | " + " | ".join(PROFILE_NAMES) + " |", "|---" * (len(PROFILE_NAMES) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(cell(cfgs[p][k]) for p in PROFILE_NAMES) + " |" for k in names]
    return "\n".join(lines)
