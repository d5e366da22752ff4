"""``defectlib doctor``'s report: the checks as one Markdown table, and the FLOPs estimate."""
from __future__ import annotations

import math

from .measure import Check


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
