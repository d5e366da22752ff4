"""``defectlib doctor``: the first thing to run on a new GPU kernel, before any paper run.

    defectlib doctor                                  # every notebook: paper size on a GPU, smoke size on CPU
    defectlib doctor --only 03 --data-root ~/datasets # one notebook, its real training data
    defectlib doctor --profile paper --device cpu     # the paper sizes on this CPU (slow; memory needs)

For each notebook's model(s) it builds the model and the training loader exactly as the notebook's
profile says (the paper profile on a GPU: batch size, input size, loader workers, pinned memory,
mixed precision, channels_last, the deterministic / fast-kernel choice of the run), then

- times the loader alone: seconds per batch after the first (the first pays for starting workers);
- trains a few optimizer steps through :func:`defectlib.engine.fit` on batches already in memory,
  so the step time is the model's alone: the median step after ``warmup`` steps, steps/s, images/s;
- measures the peak memory of those steps: ``torch.cuda.max_memory_allocated`` on a GPU; on a CPU
  the growth of the process's resident set size (sampled every 10 ms) from just before the model is
  built to its peak while training: weights, gradients, optimizer state, activations, what a GPU
  would have to hold;
- estimates the FLOPs of one training step as 3 x those of its forward pass (the backward costs about
  twice the forward), the forward counted by PyTorch's ``FlopCounterMode`` (convolutions and matrix
  products; custom kernels such as RoIAlign are not counted). The backward is not counted directly:
  the counter charges a grouped convolution's backward as if it were dense (65x too much for a
  depthwise 3x3 with 64 groups), which would make PVT-v2 and EfficientNet steps look 4-10x dearer;
- says whether the loader keeps up: with workers, a batch must be ready in no more time than a step
  takes; without workers loading runs inside the step, and its share of the step is shown;
- multiplies the step time by the number of optimizer steps the profile's full run takes (an upper
  bound where early stopping may end it sooner): an estimate of the training time on this device,
  evaluation not included.

A model that does not fit is reported ("out of memory at batch N") and the other checks go on; the
exit code is 1 if any check failed. Without a GPU the doctor says so and runs the same checks at
smoke size, which proves the code paths, not the speed.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import multiprocessing
import os
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from . import profiles
from .engine import TrainConfig, fit
from .engine.helpers import LossFn
from .engine.precision import resolve_precision, to_channels_last
from .runtime import resolve_device, seed_everything

#: notebook -> the experiment module whose ``doctor_probes(cfg, data_root, seed)`` lists its models
EXPERIMENTS = {"01": "defectlib.experiments.danet", "02": "defectlib.experiments.severstal",
               "03": "defectlib.experiments.ocinet", "04": "defectlib.experiments.synthetic"}


@dataclass
class Probe:
    """One model of one notebook, as its profile trains it."""
    notebook: str
    name: str
    build: Callable[[], torch.nn.Module]      # the model, freshly initialised
    loader: Callable[[], DataLoader]          # the training loader the notebook builds
    loss_fn: LossFn
    train: dict                               # TrainConfig fields of the notebook's recipe (optimizer, lr...)
    planned_steps: int                        # optimizer steps of this model in the profile's full run
    dataset: str = ""
    upper_bound: bool = False                 # planned_steps is a ceiling (early stopping)
    precision: str | None = None              # None: the profile's "precision" / "channels_last"
    channels_last: bool | None = None
    notes: list[str] = field(default_factory=list)   # e.g. whether the run's pretrained weights are here


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
    precision = probe.precision or cfg.get("precision", "fp32")
    channels_last = bool(cfg.get("channels_last") if probe.channels_last is None else probe.channels_last)
    numerics = resolve_precision(precision, device)
    out = Check(probe.notebook, probe.name, cfg["profile"], str(device), precision=numerics.name,
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

        tcfg = TrainConfig(**{**probe.train, "epochs": 1, "max_steps": len(batches), "progress": False,
                              "save_last": False, "checkpoint_dir": None, "seed": seed,
                              "precision": precision, "channels_last": channels_last})
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


def probes(notebook: str, cfg, data_root=None, seed: int = 0) -> list[Probe]:
    """The models of ``notebook`` under profile ``cfg`` (see :data:`EXPERIMENTS`)."""
    return importlib.import_module(EXPERIMENTS[notebook]).doctor_probes(cfg, data_root, seed)


def _fmt(value: float, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _duration(hours: float) -> str:
    if math.isnan(hours):
        return "-"
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"


def assume_tflops(checks: list[Check], tflops: float) -> None:
    """Add the FLOPs estimate: the full run's training on a GPU that sustains ``tflops`` TFLOP/s."""
    for c in checks:
        c.assumed_tflops = tflops
        c.flops_estimate_h = c.planned_steps * c.gflop_per_step / (1e3 * tflops) / 3600


def table(checks: list[Check]) -> str:
    """The checks as one Markdown table."""
    head = ["notebook", "model", "batch", "precision", "step (s)", "images/s", "peak memory (GB)",
            "GFLOP/step", "loader (s/batch)", "keeps up", "full run: steps", "full run: training"]
    tflops = next((c.assumed_tflops for c in checks if not math.isnan(c.assumed_tflops)), None)
    if tflops:
        head.append(f"estimate at {tflops:g} TFLOP/s")
    rows = []
    for c in checks:
        if c.error:
            rows.append([c.notebook, c.name, str(c.batch_size or "-"), c.precision, f"**failed**: {c.error}"]
                        + ["-"] * (len(head) - 5))
            continue
        up = {True: "yes", False: "**no**", None: "-"}[c.keeps_up]
        bound = "<= " if c.upper_bound else ""
        rows.append([c.notebook, c.name, str(c.batch_size), c.precision, _fmt(c.step_s, ".3f"),
                     _fmt(c.images_per_s, ".1f"), f"{_fmt(c.peak_memory_gb, '.2f')} ({c.memory_kind})",
                     _fmt(c.gflop_per_step, ".1f"), f"{_fmt(c.loader_s, '.3f')} ({c.workers} workers)", up,
                     f"{bound}{c.planned_steps:,}", bound + _duration(c.estimate_h)]
                    + ([bound + _duration(c.flops_estimate_h)] if tflops else []))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _check_one(notebook: str, profile: str, data_root, seed: int, index: int, device: str, steps: int,
               warmup: int, flops: bool) -> tuple[int, dict]:
    """(number of probes of ``notebook``, the check of probe ``index`` as a dict): what a fresh process
    runs, so that the memory one model leaves to the allocator does not hide the next one's."""
    cfg = profiles.get(notebook, profile)
    try:
        found = probes(notebook, cfg, data_root, seed)
    except Exception as exc:  # noqa: BLE001 - e.g. a dataset that is not where data_root says
        return 1, asdict(Check(notebook, "(its data)", profile, device,
                               error=f"{type(exc).__name__} while building the data: {exc}"[:300]))
    c = check(found[index], cfg, torch.device(device), steps=steps, warmup=warmup, seed=seed, flops=flops)
    return len(found), asdict(c)


def run(notebooks=("01", "02", "03", "04"), profile: str | None = None, device="auto", data_root=None,
        steps: int = 5, warmup: int = 2, seed: int = 0, flops: bool = True, isolate: bool | None = None,
        log=print) -> list[Check]:
    """Every probe of ``notebooks``; ``profile`` None = ``paper`` on a GPU, ``smoke`` elsewhere.
    ``isolate`` (default: on a CPU) checks each model in a fresh process: freed CPU memory stays with
    the process, so the resident-set growth of a second model in the same process would read ~0."""
    device = resolve_device(device)
    if profile is None:
        profile = "paper" if device.type == "cuda" else "smoke"
        if device.type != "cuda":
            log(f"no GPU visible (device {device}): the checks run at smoke size and prove the code paths, "
                "not the speed of a paper run")
    isolate = device.type == "cpu" if isolate is None else isolate
    checks = []
    for nb in notebooks:
        index, count = 0, 1
        while index < count:
            args = (nb, profile, data_root, seed, index, str(device), steps, warmup, flops)
            if isolate:
                with multiprocessing.get_context("spawn").Pool(1) as pool:
                    count, fields = pool.apply(_check_one, args)
            else:
                count, fields = _check_one(*args)
            c = Check(**fields)
            log(f"{nb} {c.name}: {profile} profile on {device}: "
                + (f"FAILED: {c.error}" if c.error else f"{c.step_s:.3f} s/step, {c.images_per_s:.1f} images/s"))
            for note in c.notes:
                log(f"   {note}")
            checks.append(c)
            index += 1
    return checks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="defectlib doctor", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="01,02,03,04", help="notebooks, e.g. 01,03")
    ap.add_argument("--profile", choices=profiles.PROFILE_NAMES, default=None,
                    help="default: paper on a GPU, smoke elsewhere")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-root", default=None, help="folder holding the real datasets (else stand-ins)")
    ap.add_argument("--steps", type=int, default=5, help="timed optimizer steps per model")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (cuDNN autotuning, allocator)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-flops", action="store_true", help="skip counting FLOPs (one extra step per model)")
    ap.add_argument("--assume-tflops", type=float, default=None,
                    help="also estimate each full run's training time on a GPU sustaining this many TFLOP/s "
                         "(from the counted FLOPs: an estimate, not a measurement)")
    ap.add_argument("--json", default=None, help="also write the checks to this file")
    args = ap.parse_args(argv)
    wanted = [s.strip()[:2] for s in args.only.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in EXPERIMENTS]
    if unknown or args.steps < 1 or args.warmup < 0:
        ap.error(f"--only takes notebooks among {sorted(EXPERIMENTS)}; --steps >= 1, --warmup >= 0")
    checks = run(wanted, args.profile, args.device, args.data_root, args.steps, args.warmup, args.seed,
                 flops=not args.no_flops)
    if args.assume_tflops:
        assume_tflops(checks, args.assume_tflops)
    print()
    print(table(checks))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(c) for c in checks], f, indent=1)
    failed = [c for c in checks if c.error]
    slow = [c for c in checks if c.keeps_up is False]
    if slow:
        print(f"\nthe loader does not keep up for {', '.join(c.notebook + ' ' + c.name for c in slow)}: "
              "raise num_workers in the profile, or keep decoded images in memory")
    if failed:
        print(f"\n{len(failed)} check(s) failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
