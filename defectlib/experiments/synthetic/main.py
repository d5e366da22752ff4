"""Notebook 04 without Jupyter: the Table 1 study (every architecture and arm: real-only, planar or
synthetic pre-training, with and without fine-tuning and exposure stacking) on one process or under
``torchrun``, writing the notebook's ``results.json``.

    python -m defectlib.experiments.synthetic --profile smoke --out runs/synthetic-smoke
    torchrun --nproc_per_node=4 -m defectlib.experiments.synthetic --profile paper --out runs/synth-4gpu

:func:`run` follows the notebook's cells: profile -> seed -> the three sources (:func:`.data.load_sources`)
-> :func:`.recipe.run_arch` for each architecture -> :func:`.results.record_rows` (the notebook's
metric names, paper keys, units and notes) and the verdict on the paper's claims. It draws no figure
and leaves out the renderer's speed (``render_*_per_image_s``), which measures the machine. The
study's ``batch_size`` is the global batch (:func:`defectlib.experiments.command.per_rank_batch`;
each process draws its own crops); rank 0 alone evaluates (the others wait for it in their next
step, and take its choice of grid point) and writes ``results.json``.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from ...record import verdict
from ...engine import distributed as D
from ...record import Recorder
from ...runtime import seed_everything
from .. import command
from .data import describe_target, load_sources
from .recipe import run_arch, study_config
from .results import CLAIMS, record_rows

NOTEBOOK = "04_synthetic_data"


def run(profile: str = "smoke", out: str | Path | None = None, seed: int = 0, data_root: str | Path | None = None,
        device: str = "auto", dry_run: bool = False, progress: bool = True, **changes: Any) -> dict | None:
    """Notebook 04's study (``changes``: profile settings, unknown ones a KeyError); rank 0 writes
    ``<out>/results.json`` and returns the recorder's data."""
    cfg, dev, di = command.join("04", profile, device, dry_run, changes, out)
    seed_everything(seed)
    rec = Recorder(out if di.is_main else None, NOTEBOOK, profile, cfg, seed, dev, data_root)
    sc = study_config(cfg)
    sc = dataclasses.replace(sc, batch_size=command.per_rank_batch(sc.batch_size, di.world_size, "study.batch_size"),
                             progress=sc.progress and progress and di.is_main)
    say = print if di.is_main else (lambda *a, **k: None)
    t0 = time.perf_counter()
    # the renders' progress bars as the training's: rank 0's, none with --quiet
    shown = cfg.replace(progress=bool(cfg.progress) and progress and di.is_main)
    target, planar, synth = load_sources(shown, data_root, seed, dry_run)
    rec.timing("data_s", time.perf_counter() - t0)
    rec.note(describe_target(target, cfg, seed))
    say(rec.data["notes"][-1])
    sources = {"planar": planar, "synth": synth, "synth_ex": synth}
    rows = []
    t0 = time.perf_counter()
    for arch in cfg.archs:
        rows += run_arch(arch, target, sources, sc, cfg.arms, seed=seed, device=dev, log=say)[0]
    rec.timing("study_s", time.perf_counter() - t0)
    if di.is_main:   # rank 0 alone evaluated (run_arch): the others' rows have no scores
        record_rows(rec, rows, target, sc)
        rec.note(verdict.report(NOTEBOOK, rec.data, CLAIMS))
        say(rec.data["notes"][-1])
        path = rec.save()
        say(f"wrote {path}" if path else "results not saved (no --out)")
    D.barrier(di)
    return rec.data if di.is_main else None


def main(argv: list[str] | None = None) -> int:
    """``python -m defectlib.experiments.synthetic`` (see the module docstring)."""
    return command.main("04", run, "python -m defectlib.experiments.synthetic", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
