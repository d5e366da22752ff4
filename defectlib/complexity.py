"""Model complexity: parameters, FLOPs and throughput, reported like OCINet's Table I (paper 003).

- Parameters: the number of scalars in ``model.parameters()`` (OCINet: 29.95 M).
- FLOPs: counted by PyTorch's own ``torch.utils.flop_counter.FlopCounterMode`` during one forward
  pass at the given input size; it counts a multiply-add as 2 FLOPs. Papers' "FLOPs" are very
  often multiply-accumulates (MACs, what thop/ptflops print): OCINet's 18.82 G at 352x352 is such
  a number, so the table shows GMACs = FLOPs / 2 beside GFLOPs.
- Throughput: ``images/s = batch_size / t``, ``t`` the *median* over ``repeats`` timed forward
  passes, after ``warmup`` untimed ones, in eval mode without autograd, with the device
  synchronised before reading the clock (CUDA kernels run asynchronously). The paper's 108 FPS
  is an RTX 3090 at batch 1; a CPU number is not comparable and the table says on what it ran.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_flops", "measure_throughput", "median_times", "ComplexityRow", "complexity_report",
           "format_table"]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once)."""
    seen, n = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        n += p.numel()
    return n


def _example(input_size, device):
    """A zero batch of shape ``input_size``, or the given example moved to ``device``: a tensor, or a
    list of tensors (torchvision detection models take a list of images)."""
    if isinstance(input_size, torch.Tensor):
        return input_size.to(device)
    if isinstance(input_size, (list, tuple)) and input_size and isinstance(input_size[0], torch.Tensor):
        return [t.to(device) for t in input_size]
    return torch.zeros(tuple(input_size), device=device)


def _batch_size(x) -> int:
    return len(x) if isinstance(x, list) else x.shape[0]


@torch.no_grad()
def count_flops(model: nn.Module, input_size=(1, 3, 352, 352), device="cpu") -> int:
    """FLOPs of one forward pass at ``input_size`` (a shape, an example tensor or a list of image
    tensors), 2 per multiply-add."""
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(_example(input_size, device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def _sync(device):
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@torch.inference_mode()
def measure_throughput(model: nn.Module, input_size=(1, 3, 352, 352), device="cpu", warmup: int = 3,
                       repeats: int = 10) -> dict:
    """Median forward time and images/s at ``input_size`` (batch = first dimension or list length).

    Returns ``{"seconds": median s per batch, "images_per_s": ..., "times": all timings}``.
    """
    was_training = model.training
    model.eval()
    x = _example(input_size, device)
    try:
        for _ in range(warmup):
            model(x)
        _sync(device)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            _sync(device)
            times.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    med = statistics.median(times)
    return {"seconds": med, "images_per_s": _batch_size(x) / med, "times": times}


@dataclass
class ComplexityRow:
    name: str
    params_m: float
    gflops: float
    gmacs: float
    images_per_s: float | None
    device: str
    input_size: tuple

    def as_dict(self):
        return asdict(self)



def median_times(fns: dict, repeats: int = 5) -> dict[str, float]:
    """Median wall time (s) of each zero-argument callable in ``fns``, timed in turn within each of
    ``repeats`` rounds, so every tool sees the same machine load: what a benchmark's ratio needs.
    Warm the callables up before calling this."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}

def complexity_report(models: dict, input_size=(1, 3, 352, 352), device="cpu", throughput: bool = True,
                      warmup: int = 3, repeats: int = 10, paper: dict | None = None,
                      print_table: bool = True) -> list:
    """Params (M), GFLOPs, GMACs and images/s of several models, printed as a table like paper 003's
    Table I. ``models``: ``{name: nn.Module}`` (moved to ``device``). ``paper``: optional
    ``{name: (params_m, flops_g, fps)}`` printed beside ours. Returns a list of :class:`ComplexityRow`.
    """
    rows = []
    x = _example(input_size, "cpu")
    size = (len(x),) + tuple(x[0].shape) if isinstance(x, list) else tuple(x.shape)
    for name, model in models.items():
        model = model.to(device)
        flops = count_flops(model, input_size, device)
        ips = (measure_throughput(model, input_size, device, warmup, repeats)["images_per_s"]
               if throughput else None)
        rows.append(ComplexityRow(name, count_parameters(model) / 1e6, flops / 1e9, flops / 2e9, ips,
                                  str(device), size))
    if print_table:
        print(format_table(rows, paper))
    return rows


def format_table(rows, paper: dict | None = None) -> str:
    """Markdown table of :class:`ComplexityRow` (and the paper's numbers when given)."""
    size = "x".join(str(s) for s in rows[0].input_size) if rows else ""
    head = f"| model | Params (M) | GFLOPs | GMACs | images/s ({rows[0].device if rows else ''}) |"
    sep = "|---|---:|---:|---:|---:|"
    if paper:
        head += " paper Params (M) | paper FLOPs (G) | paper FPS |"
        sep += "---:|---:|---:|"
    lines = [f"input {size}", head, sep]
    for r in rows:
        ips = f"{r.images_per_s:.1f}" if r.images_per_s is not None else "-"
        line = f"| {r.name} | {r.params_m:.2f} | {r.gflops:.2f} | {r.gmacs:.2f} | {ips} |"
        if paper:
            p = paper.get(r.name)
            line += (" " + " | ".join(str(v) for v in p) + " |") if p else " - | - | - |"
        lines.append(line)
    return "\n".join(lines)
