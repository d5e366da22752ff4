"""Device choice and seeding, shared by every notebook, the engine and the tests."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks cuda, then mps, then cpu; anything else is passed to ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


#: "1" / "0": deterministic or fast kernels for a whole run (``defectlib run --deterministic`` / ``--fast``)
DETERMINISTIC_ENV = "DEFECTLIB_DETERMINISTIC"


def deterministic_default(device: str | torch.device | None = None) -> bool:
    """Deterministic kernels or fast ones, when nobody said: ``$DEFECTLIB_DETERMINISTIC`` ("1" / "0")
    if the run set it, else deterministic on a CPU (a CPU run gives the same numbers for the same
    seed) and fast on a GPU (cuDNN autotuning, TF32). ``device`` None: the CPU unless CUDA is visible."""
    flag = os.environ.get(DETERMINISTIC_ENV, "").strip()
    if flag in ("0", "1"):
        return flag == "1"
    if device is None:
        return not torch.cuda.is_available()
    return torch.device(device).type != "cuda"


def seed_everything(seed: int, deterministic: bool | None = None) -> None:
    """Seed python, numpy and torch, and choose deterministic kernels or fast ones
    (:func:`set_deterministic`; ``deterministic=None``: :func:`deterministic_default`)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    set_deterministic(deterministic_default() if deterministic is None else deterministic)


def set_deterministic(flag: bool) -> None:
    """Deterministic kernels (``flag=True``: CPU runs, reproducible to the bit) or the fastest ones
    (``False``: GPU runs: cuDNN autotuning, TF32 matrix multiplies on Ampere and later). It sets
    both ways, so a GPU training run after a call with ``True`` in the same kernel is not left with
    deterministic cuDNN, NaN-filled ``torch.empty`` and warnings for the ops that have no
    deterministic CUDA kernel (bilinear upsampling, adaptive pooling, RoIAlign backward)."""
    flag = bool(flag)
    torch.use_deterministic_algorithms(flag, warn_only=True)
    torch.backends.cudnn.deterministic = flag
    torch.backends.cudnn.benchmark = not flag
    torch.backends.cuda.matmul.allow_tf32 = not flag
    torch.backends.cudnn.allow_tf32 = not flag


def pin_memory(wanted: bool) -> bool:
    """DataLoader ``pin_memory``: what a profile asks for, where there is a GPU to copy to (on a
    CPU-only machine torch would only warn that it cannot)."""
    return bool(wanted) and torch.cuda.is_available()
