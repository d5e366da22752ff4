"""Notebook 04's experiment: synthetic data for defect segmentation (paper 004), FCN / DeepLabV3 /
U-Net trained on real MTD tiles alone, or pre-trained on a planar set or synthetic renders and
fine-tuned on MTD.

The data, crops and training runs live in :mod:`defectlib.synth_study` (to move here)."""
from __future__ import annotations

from .. import synth_study as S
from ..models.seg_baselines import build_seg_baseline


def _source_sizes(cfg, data_root, n_target: int) -> dict:
    """Training images of each source the arms pre-train on (what one epoch is, without steps_per_epoch)."""
    sizes = {None: n_target, "synth": cfg["synth_parts"] * cfg["synth_views"]}
    sizes["synth_ex"] = sizes["synth"]
    if cfg["planar_train"]:
        sizes["planar"] = cfg["planar_train"]
    else:  # load_planar: all of NEU-Seg's training split but a fifth for validation
        from ..data import NEUSeg, locate
        n = len(NEUSeg(locate("neu-seg", data_root)[0], split="training", binary=True))
        sizes["planar"] = n - max(1, n // 5)
    return sizes


def planned_steps(cfg, sc: S.StudyConfig, n_images: dict) -> int:
    """Optimizer steps of one architecture over the profile's arms: a ceiling, since the paper's
    early stopping may end each run sooner."""
    def per_epoch(n):
        return sc.steps_per_epoch or max(sc.batch_size, n) // sc.batch_size

    def run(epochs, n):
        steps = epochs * per_epoch(n)
        return min(steps, sc.max_steps or steps)
    grid = len(sc.lr_grid) * len(sc.wd_grid)
    sources = {S.SOURCE[a] for a in cfg["arms"]}
    total = sum(grid * run(sc.max_epochs, n_images[src]) for src in sources)
    total += sum(run(sc.finetune_epochs, n_images[None]) for a in cfg["arms"] if a.endswith("_ft"))
    return total


def doctor_probes(cfg, data_root=None, seed: int = 0):
    """Every architecture of the profile on MTD crops, for ``defectlib doctor``."""
    from ..doctor import Probe
    sc = S.study_config(cfg)
    target = S.load_target(data_root, seed, cfg["target_train_defective"], cfg["target_train_clean"],
                           cfg["target_test_defective"], cfg["target_test_clean"], cfg["target_scale"])
    steps = planned_steps(cfg, sc, _source_sizes(cfg, data_root, len(target["train"])))
    train = {"optimizer": "adamw", "lr": sc.lr_grid[0], "weight_decay": sc.wd_grid[0]}
    return [Probe("04", {"fcn": "FCN-R50", "deeplabv3": "DeepLabV3-R50", "unet": "U-Net-R34"}.get(arch, arch),
                  lambda arch=arch: build_seg_baseline(arch, in_channels=1),
                  lambda: S.train_loader(target["train"], sc, False, seed), S.loss_fn(sc), train, steps,
                  dataset="MTD" if target["real"] else "MTD stand-in", upper_bound=True,
                  precision=sc.precision, channels_last=sc.channels_last)
            for arch in cfg["archs"]]
