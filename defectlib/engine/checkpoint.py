"""Checkpoints that let a run continue exactly where it stopped.

A checkpoint holds everything the next epoch depends on: the model, the optimizer (momentum /
Adam moments), the learning-rate schedule, the AMP grad scaler, the early-stopping state, the
random-number generators of python, numpy and torch (CPU and CUDA), the epoch and step counters
and the history so far. Everything is stored as tensors and plain python values, so the file
loads with ``torch.load(weights_only=True)`` (no arbitrary code runs when a checkpoint is opened).
Files are written to a temporary name and renamed, so an interrupted save never leaves a
half-written ``last.pt``.

:func:`fault_point` is the kill-and-resume tests' way to die like a lost GPU node: with
``DEFECTLIB_KILL_AFTER_CHECKPOINTS=N`` in its environment, a process sends itself SIGKILL (no
clean-up, no ``finally``) right after writing its N-th ``last.pt``.
"""
from __future__ import annotations

import os
import random
import signal
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """The state of python's, numpy's and torch's global random generators."""
    version, internal, gauss = random.getstate()
    key, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"key": key, "state": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured. The generators' states are CPU byte tensors
    whatever device a checkpoint was loaded to (``torch.load(map_location="cuda")`` moves them to
    the GPU, where ``torch.set_rng_state`` refuses them). A checkpoint written where more GPUs were
    visible than now (rank 0 of a 4-GPU torchrun, resumed on one GPU) restores the generators of the
    GPUs there are: GPU k gets the state GPU k had."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state((nps["key"], nps["state"].cpu().numpy().astype(np.uint32), nps["pos"], nps["has_gauss"],
                         nps["cached"]))
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        for k, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu().to(torch.uint8), k)


KILL_AFTER_CHECKPOINTS = "DEFECTLIB_KILL_AFTER_CHECKPOINTS"
_written = 0


def fault_point() -> None:
    """Called by the engine after each ``last.pt``: with ``$DEFECTLIB_KILL_AFTER_CHECKPOINTS`` = N,
    the N-th call kills this process with SIGKILL (for the kill-and-resume tests)."""
    global _written
    _written += 1
    limit = os.environ.get(KILL_AFTER_CHECKPOINTS)
    if limit and _written == int(limit):
        os.kill(os.getpid(), signal.SIGKILL)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, with a clear error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt, truncated, or not written by this engine
        raise RuntimeError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); "
                           "delete it or point checkpoint_dir elsewhere") from exc


def load_weights(model: torch.nn.Module, path: str | Path, strict: bool = True) -> dict[str, Any]:
    """Load only the model weights of a checkpoint (``last.pt`` or ``best.pt``) into ``model``."""
    state = load_checkpoint(path)
    model.load_state_dict(state["model"], strict=strict)
    return state
