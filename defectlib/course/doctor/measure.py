"""What ``defectlib doctor`` measures for one model (see :mod:`defectlib.course.doctor`): a :class:`Probe` in,
a :class:`Check` out."""
from __future__ import annotations

import dataclasses
import math
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from ...engine import fit
from ...engine.helpers import LossFn
from ...engine.precision import resolve_precision, to_channels_last
from ...experiments.registry import Probe
from ...runtime import seed_everything


@dataclass
class Check:
    """What the doctor measured for one probe (``error`` set when it failed)."""
    notebook: str
    name: str
    profile: str
    device: str
    precision: str = ""
    batch_size: int = 0
    workers: int = 0
    dataset: str = ""
    step_s: float = math.nan
    images_per_s: float = math.nan
    loader_s: float = math.nan                # per batch, after the first
    loader_first_s: float = math.nan
    keeps_up: bool | None = None
    peak_memory_gb: float = math.nan
    memory_kind: str = ""
    gflop_per_step: float = math.nan
    planned_steps: int = 0
    upper_bound: bool = False
    estimate_h: float = math.nan              # planned_steps x step_s, hours
    assumed_tflops: float = math.nan          # a GPU's sustained TFLOP/s, given by the user...
    flops_estimate_h: float = math.nan        # ...and planned_steps x FLOPs per step at that rate, hours
    error: str = ""
    notes: list[str] = field(default_factory=list)


class _Batches(Dataset):
    """Batches already in memory, served as they are (``DataLoader(..., batch_size=None)``)."""

    def __init__(self, batches: list):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        return self.batches[i]


class _PeakRSS:
    """Peak resident set size of this process while the block runs, sampled every ``every`` s
    (Linux ``/proc/self/statm``; elsewhere the process's lifetime peak from ``resource``)."""

    def __init__(self, every: float = 0.01):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _read(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page
        except OSError:
            import resource
            scale = 1 if sys.platform == "darwin" else 1024
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self._read())

    def __enter__(self) -> "_PeakRSS":
        self.peak = self._read()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._read())


def _release_freed_memory() -> None:
    """Hand memory freed earlier in this process back to the system (glibc ``malloc_trim``), so
    that the resident-set growth measured next is this model's and not hidden by reused pages."""
    import gc
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (list, tuple)) else batch
    return len(first) if isinstance(first, (list, tuple)) else int(first.shape[0])


def _fetch(loader: DataLoader, n: int) -> tuple[list, float, float]:
    """``n`` batches of ``loader`` (restarted when it ends): (batches, s for the first, s per later one)."""
    batches, t0 = [], time.perf_counter()
    it = iter(loader)
    first_s = 0.0
    while len(batches) < n:
        try:
            batches.append(next(it))
        except StopIteration:
            it = iter(loader)
            continue
        if len(batches) == 1:
            first_s = time.perf_counter() - t0
    later = (time.perf_counter() - t0 - first_s) / max(1, n - 1)
    return batches, first_s, later


def step_flops(model: torch.nn.Module, loss_fn: LossFn, batch: Any, device: torch.device) -> int:
    """FLOPs of one training step on ``batch``: 3 x the forward pass in training mode (see the module
    docstring for why the backward is not counted directly)."""
    model.train()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        loss_fn(model, batch, device)
    return 3 * int(counter.get_total_flops())


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def check(probe: Probe, cfg, device: torch.device, steps: int = 5, warmup: int = 2, seed: int = 0,
          flops: bool = True) -> Check:
    """Measure one probe (see the module docstring); never raises for a failing model."""
    precision, channels_last = probe.train.precision, bool(probe.train.channels_last)
    numerics = resolve_precision(precision, device)
    out = Check(probe.notebook, probe.name, cfg.profile, str(device), precision=numerics.name,
                dataset=probe.dataset, planned_steps=probe.planned_steps, upper_bound=probe.upper_bound,
                notes=list(probe.notes))
    stage = "building the loader"
    try:
        loader = probe.loader()
        out.workers = loader.num_workers
        stage = "loading batches"
        n = warmup + steps + 2 * max(1, out.workers)
        batches, out.loader_first_s, out.loader_s = _fetch(loader, n)
        batches = batches[: warmup + steps]
        out.batch_size = _batch_size(batches[0])
        stage = "building the model"
        _release_freed_memory()
        rss_before = _PeakRSS()._read()
        seed_everything(seed, deterministic=device.type == "cpu")
        model = probe.build().to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        if flops:
            stage = "counting FLOPs"
            first = to_channels_last(batches[0]) if channels_last else batches[0]
            with numerics.autocast():
                out.gflop_per_step = step_flops(model, probe.loss_fn, first, device) / 1e9
        stamps: list[float] = []

        def timed(net, batch, dev):
            _sync(dev)
            stamps.append(time.perf_counter())
            return probe.loss_fn(net, batch, dev)

        # the run's own settings, cut to the batches in memory: one epoch, no evaluation, no files
        tcfg = dataclasses.replace(probe.train, epochs=1, max_steps=len(batches), progress=False, save_last=False,
                                   checkpoint_dir=None, resume=False, seed=seed, curve_every=None,
                                   early_stopping=False, time_budget_s=None)
        stage = f"training batch {warmup + 1}"
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with _PeakRSS() as rss:
            fit(model, DataLoader(_Batches(batches), batch_size=None), tcfg, loss_fn=timed, device=device)
            _sync(device)
            stamps.append(time.perf_counter())
        if device.type == "cuda":
            out.peak_memory_gb, out.memory_kind = torch.cuda.max_memory_allocated(device) / 2**30, "CUDA allocated"
        else:
            out.peak_memory_gb, out.memory_kind = (rss.peak - rss_before) / 2**30, "RSS growth"
        times = [b - a for a, b in zip(stamps, stamps[1:])][warmup:]
        out.step_s = statistics.median(times)
        out.images_per_s = out.batch_size / out.step_s
        out.estimate_h = out.planned_steps * out.step_s / 3600
        if out.workers:
            out.keeps_up = out.loader_s <= out.step_s
        else:
            out.keeps_up = out.loader_s <= 0.1 * out.step_s
            out.notes.append(f"no loader workers: loading adds {100 * out.loader_s / out.step_s:.0f} % to each step")
    except Exception as exc:  # noqa: BLE001 - a failing model is a finding, the other checks go on
        what = "out of memory" if _is_oom(exc) else type(exc).__name__
        out.error = f"{what} while {stage}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out
