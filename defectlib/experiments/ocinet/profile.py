"""Notebook 03's profiles: OCINet and its ablation variants (paper 003), smoke / cpu / paper."""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import CPU, GPU, NO_GPU, Profile, three


# --- 03 OCINet on NRSD-MN (paper 003) ------------------------------------------------------------
# variants: keys of defectlib.models.ocinet.VARIANTS (Table III rows + Table II's order ablation).
# Training steps = epochs x (training images // batch_size); max_steps only cuts a dry run.
# "cpu": the two ends of Table III, Base and the full OCINet, with the same steps, from random
# weights (no download): 224x224 instead of 352x352, batch 8, one pass over the ~3,900 training
# images (~490 steps), Adam with a one-cycle schedule peaking at 5e-4 (from scratch, ~5 % of the
# paper's steps: the paper's constant 1e-4 learns far too slowly here), bf16 autocast and
# channels_last on CPUs with native bf16 (OCINet's step: 2.0x faster than fp32 on 2 threads,
# benchmarks/bench_engine.py numerics). curve_every: test IoU every that many steps (the learning
# curve; it leaves the training as it is). schedule: None = the paper's ("multistep" at milestones:
# the paper names "the decay epoch" 30 but no factor; gamma 0.1 is the authors' script's decay_rate,
# which decays again at epoch 60, where this profile decays once).
_NB03_ALL = ("base", "c", "s", "cs", "p", "full", "vanilla_ca", "vanilla_sa", "swsam", "rscam", "lskm",
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

    def training(self, model=None) -> dict:
        """Every variant trains alike: Adam (paper 003, Sec. IV-A), the decay at ``milestones``
        unless the profile names another schedule."""
        return {**self.numerics(), "epochs": self.epochs, "optimizer": "adam", "lr": self.lr,
                "schedule": self.schedule or ("multistep" if self.milestones else "none"),
                "milestones": self.milestones, "gamma": self.gamma, "grad_clip": self.grad_clip,
                "curve_every": self.curve_every, "progress": self.progress}


PROFILES = three(
    OCINetProfile(**GPU),
    {**NO_GPU, **CPU, "variants": ("base", "full"), "input_size": 224, "batch_size": 8, "eval_batch_size": 8,
     "epochs": 1, "lr": 5e-4, "schedule": "onecycle", "milestones": (), "test_limit": 200, "throughput_size": 224,
     "throughput_warmup": 1, "throughput_repeats": 3, "n_qualitative": 4, "curve_every": 100,
     "backbone_weights": None},
    {**NO_GPU, "variants": ("full",), "input_size": 64, "batch_size": 2, "eval_batch_size": 4, "epochs": 1,
     "max_steps": 2, "milestones": (), "test_limit": 4, "flops_size": 64, "throughput_size": 64,
     "throughput_warmup": 1, "throughput_repeats": 2, "n_qualitative": 2, "progress": False, "curve_every": 1,
     "backbone_weights": None})
