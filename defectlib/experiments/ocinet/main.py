"""Notebook 03 without Jupyter: train and evaluate the profile's OCINet variants, on one process or
under ``torchrun``, and write the notebook's ``results.json``.

    python -m defectlib.experiments.ocinet --profile smoke --out runs/ocinet-smoke
    torchrun --nproc_per_node=4 -m defectlib.experiments.ocinet --profile paper --out runs/ocinet-4gpu

:func:`run` follows the notebook's cells: profile -> seed -> every variant's parameter count ->
the data -> for each variant of the profile: train (with the learning curve where the profile
records one) and evaluate on every test set, recorded with :func:`.results.record_runs`,
:func:`.results.record_curves` and :func:`.results.record_summary` (the notebook's metric names,
paper keys, units and notes). It draws no figure, and it leaves out what the notebook measures
about the machine rather than the models (FLOPs and images/s: ``complexity/...``). The profile's ``batch_size`` is the global batch
(:func:`defectlib.experiments.command.per_rank_batch`); rank 0 alone evaluates (the others wait)
and writes ``results.json`` and ``histories.json`` into ``--out``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ...engine import distributed as D
from ...record import Recorder
from ...runtime import seed_everything
from .. import command
from .data import build_data
from .recipe import backbone_weights, train_and_evaluate
from .results import record_curves, record_params, record_runs, record_summary

NOTEBOOK = "03_ocinet_nrsd"


def run(profile: str = "smoke", out: str | Path | None = None, seed: int = 0, data_root: str | Path | None = None,
        device: str = "auto", dry_run: bool = False, progress: bool = True, **changes: Any) -> dict | None:
    """Notebook 03's training and evaluation (``changes``: profile settings, unknown ones a
    KeyError); rank 0 writes ``<out>/results.json`` and returns the recorder's data."""
    cfg, dev, di = command.join("03", profile, device, dry_run, changes, out)
    rank_cfg = cfg.replace(batch_size=command.per_rank_batch(cfg.batch_size, di.world_size),
                           progress=cfg.progress and progress and di.is_main)
    seed_everything(seed)
    rec = Recorder(out if di.is_main else None, NOTEBOOK, profile, config=cfg, seed=seed, device=dev,
                   data_root=data_root)
    say = print if di.is_main else (lambda *a, **k: None)
    record_params(rec)
    data = build_data(data_root, size=cfg.input_size, seed=seed, augment=cfg.augment, test_limit=cfg.test_limit)
    for note in data.notes:
        rec.note(note)
        say(note)
    weights = backbone_weights(cfg.backbone_weights, dry_run)
    runs = {}
    for key in cfg.variants:
        t0 = time.perf_counter()
        # under torchrun rank 0 alone evaluates, the others go on to the next variant and wait there
        runs[key] = train_and_evaluate(key, data, rank_cfg, dev, seed=seed, weights=weights, evaluate_sets=di.is_main)
        del runs[key]["model"]
        rec.timing(f"train/{key}", runs[key]["train_s"])
        rec.timing(f"train_and_eval/{key}", time.perf_counter() - t0)
        say(f"{key}: " + ", ".join(f"{t} IoU {r['IoU']:.1f}" for t, r in runs[key]["results"].items()))
    if di.is_main:
        record_runs(rec, runs, data)
        record_curves(rec, runs)
        record_summary(rec, cfg, profile, weights)
        path = rec.save()
        if path is not None:
            command.write_histories(path, {key: r["history"] for key, r in runs.items()})
            say(f"wrote {path}")
    D.barrier(di)
    return rec.data if di.is_main else None


def main(argv: list[str] | None = None) -> int:
    """``python -m defectlib.experiments.ocinet`` (see the module docstring)."""
    return command.main("03", run, "python -m defectlib.experiments.ocinet", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
