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
import json
import multiprocessing
import sys
from dataclasses import asdict

import torch

from ...experiments.registry import PROFILE_NAMES, Probe, experiment, experiments
from ...experiments.registry import profile as profile_of
from ...runtime import resolve_device
from .measure import Check, check, step_flops
from .table import assume_tflops, table

__all__ = ["measured", "Probe", "Check", "check", "step_flops", "probes", "run", "table", "assume_tflops", "main"]

def measured() -> dict[str, object]:
    """The experiments the doctor measures, by notebook number: those whose record names its
    ``doctor_probes(cfg, data_root, seed)`` (:mod:`defectlib.experiments.registry`)."""
    return {n: e for n, e in experiments().items() if e.doctor_probes is not None}


def probes(notebook: str, cfg, data_root=None, seed: int = 0) -> list[Probe]:
    """The models of ``notebook`` under profile ``cfg`` (its experiment's ``doctor_probes``)."""
    return experiment(notebook).doctor_probes(cfg, data_root, seed)


def _check_one(notebook: str, profile: str, data_root, seed: int, index: int, device: str, steps: int,
               warmup: int, flops: bool, changes: dict | None = None) -> tuple[int, dict]:
    """(number of probes of ``notebook``, the check of probe ``index`` as a dict): what a fresh process
    runs, so that the memory one model leaves to the allocator does not hide the next one's."""
    cfg = profile_of(notebook, profile, **(changes or {}))
    try:
        found = probes(notebook, cfg, data_root, seed)
    except Exception as exc:  # noqa: BLE001 - e.g. a dataset that is not where data_root says
        return 1, asdict(Check(notebook, "(its data)", profile, device,
                               error=f"{type(exc).__name__} while building the data: {exc}"[:300]))
    c = check(found[index], cfg, torch.device(device), steps=steps, warmup=warmup, seed=seed, flops=flops)
    return len(found), asdict(c)


def _child(conn, args) -> None:
    # a spawned process inherits "spawn" as its start method; the loader's workers should start as
    # they would in a notebook (the platform's default), not pickle the dataset
    multiprocessing.set_start_method(None, force=True)
    conn.send(_check_one(*args))
    conn.close()


def _in_fresh_process(args: tuple) -> tuple[int, dict]:
    """:func:`_check_one` in a new (spawned, not daemonic: its loader may start workers) process."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, args))
    proc.start()
    send.close()
    try:
        result = receive.recv()
    except EOFError:  # the process died without an answer: killed for memory, a crash in a kernel
        nb, profile, _, _, index, device = args[:6]
        result = (index + 1, asdict(Check(nb, f"(model {index + 1})", profile, device,
                                          error="the checking process died without a report (out of memory?)")))
    proc.join()
    return result


def run(notebooks=("01", "02", "03", "04"), profile: str | None = None, device="auto", data_root=None,
        steps: int = 5, warmup: int = 2, seed: int = 0, flops: bool = True, isolate: bool | None = None,
        changes: dict | None = None, log=print) -> list[Check]:
    """Every probe of ``notebooks``; ``profile`` None = ``paper`` on a GPU, ``smoke`` elsewhere.
    ``isolate`` (default: on a CPU) checks each model in a fresh process: freed CPU memory stays with
    the process, so the resident-set growth of a second model in the same process would read ~0.
    ``changes``: profile settings to try instead (``{"num_workers": 8}``), known settings only."""
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
            args = (nb, profile, data_root, seed, index, str(device), steps, warmup, flops, changes)
            if isolate:
                count, fields = _in_fresh_process(args)
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
    ap.add_argument("--profile", choices=PROFILE_NAMES, default=None,
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
    unknown = [w for w in wanted if w not in measured()]
    if unknown or args.steps < 1 or args.warmup < 0:
        ap.error(f"--only takes notebooks among {sorted(measured())}; --steps >= 1, --warmup >= 0")
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

