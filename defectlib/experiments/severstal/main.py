"""Notebook 02 without Jupyter: the U-Net per encoder, the gate and the two-stage pipeline, on one
process or under ``torchrun``, writing the notebook's ``results.json``.

    python -m defectlib.experiments.severstal --profile smoke --out runs/severstal-smoke
    torchrun --nproc_per_node=4 -m defectlib.experiments.severstal --profile paper --out runs/sev-4gpu

:func:`run` follows the notebook's cells: profile -> seed -> every model's parameter count and the
demo batches (the notebook draws both from the global generator before it trains) -> the tasks ->
a U-Net per encoder, evaluated (:func:`.evaluation.evaluate_unet`) -> the gate task's U-Net on clean
images -> the gate (:func:`.recipe.train_gate`, :func:`.evaluation.evaluate_gate`) -> every
prediction of the pipeline, recorded with the notebook's ``record_*`` calls (the same metric names,
paper keys, units and notes). It draws no figure and writes no submission file.

Under torchrun the profile's ``seg_batch_size`` and ``cls_batch_size`` are the global batches: each
of N processes draws batches of ``1/N`` of them, N times as many per epoch, which the class-balanced
samplers then share out (``ceil(batches / N)`` each), so the steps per epoch stay the profile's.
Rank 0 alone evaluates (the others wait), in batches of the global size as one process does
(:func:`.recipe.train_unet`), and writes ``results.json`` into ``--out``.
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
from .data import build_tasks, demo_batches
from .evaluation import evaluate_gate, evaluate_unet, gate_paper_key, pipeline_predictions, unet_on_clean
from .recipe import parameter_counts, per_rank, train_gate, train_unet
from .results import record_gate, record_pipeline, record_scores, record_segmentation

NOTEBOOK = "02_severstal_two_stage"


def run(profile: str = "smoke", out: str | Path | None = None, seed: int = 0, data_root: str | Path | None = None,
        device: str = "auto", dry_run: bool = False, progress: bool = True, **changes: Any) -> dict | None:
    """Notebook 02's training and evaluation (``changes``: profile settings, unknown ones a
    KeyError); rank 0 writes ``<out>/results.json`` and returns the recorder's data."""
    cfg, dev, di = command.join("02", profile, device, dry_run, changes, out)
    per_rank(cfg, di.world_size)   # before any data is built: a batch that does not split stops here
    predict = dict(device=dev, max_batches=cfg.max_eval_batches, precision=cfg.precision,
                   channels_last=cfg.channels_last)
    seed_everything(seed)
    rec = Recorder(out if di.is_main else None, NOTEBOOK, profile, config=cfg, seed=seed, device=dev,
                   data_root=data_root)
    t0 = time.time()
    say = print if di.is_main else (lambda *a, **k: None)
    parameter_counts()
    seg_task, gate_task = build_tasks(cfg, data_root, seed)
    demo_batches(seg_task, cfg, seed)
    # the profile's batches are the global ones: each process trains on its share (.recipe.per_rank)
    unets = {enc: train_unet(seg_task, enc, cfg, seed=seed, device=dev, rec=rec, predict=predict,
                             processes=di.world_size)[0]
             for enc in cfg.encoders}
    # under torchrun rank 0 alone evaluates (the others wait in their next step) and tells them the
    # encoder it chose; one process computes exactly what the notebook computes. An evaluation is
    # counts and a few maps (.evaluation.count); on one task for both stages the chosen encoder's
    # is the gate task's U-Net's too (unet_on_clean reuses it: no second pass over the splits)
    seg, evaluated = {}, {}
    for enc, model in unets.items() if di.is_main else ():
        ev = evaluate_unet(model, seg_task, cfg, seed=seed, predict=predict)
        record_segmentation(rec, seg_task, enc, ev, cfg.pixel_threshold)
        seg[enc] = ev.report["U-Net alone"]["kaggle"]
        evaluated[enc] = ev if seg_task is gate_task else None
    best_enc = D.broadcast(max(seg, key=lambda e: seg[e]) if di.is_main else None, di)
    gate_unet = (unets[best_enc] if seg_task is gate_task else
                 train_unet(gate_task, best_enc, cfg, seed=seed, device=dev, rec=rec, predict=predict,
                            processes=di.world_size)[0])
    on_clean = unet_on_clean(gate_unet, gate_task, cfg, seed=seed, predict=predict,
                             evaluated=evaluated.get(best_enc)) if di.is_main else None
    gate, _ = train_gate(gate_task, cfg, seed=seed, device=dev, predict=predict, unet=gate_unet,
                         encoder=best_enc, rec=rec, say=say, processes=di.world_size)
    if di.is_main:
        g = evaluate_gate(gate, gate_task, on_clean, cfg, seed=seed, predict=predict)
        record_gate(rec, gate_task, cfg.classifier, g.reports, cfg.gate_threshold, gate_paper_key(cfg.classifier))
        preds = pipeline_predictions(g, on_clean, cfg, best_enc)
        record_pipeline(rec, gate_task, preds, n_test=len(g.test))
        record_scores(rec, seg_task, gate_task, cfg, best_enc, g, on_clean)
    rec.timing("notebook_body_s", time.time() - t0)
    if di.is_main:
        path = rec.save()
        say(f"wrote {path}" if path else "results not saved (no --out)")
    D.barrier(di)
    return rec.data if di.is_main else None


def main(argv: list[str] | None = None) -> int:
    """``python -m defectlib.experiments.severstal`` (see the module docstring)."""
    return command.main("02", run, "python -m defectlib.experiments.severstal", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
