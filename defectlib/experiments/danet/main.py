"""Notebook 01 without Jupyter: train and evaluate the profile's DANet phases on NEU-DET, on one
process or under ``torchrun``, and write the notebook's ``results.json``.

    python -m defectlib.experiments.danet --profile smoke --out runs/danet-smoke
    torchrun --nproc_per_node=4 -m defectlib.experiments.danet --profile paper --out runs/danet-4gpu
    torchrun --nproc_per_node=2 -m defectlib.experiments.danet --device cpu --out runs/x   # gloo on CPUs

:func:`run` follows the notebook's cells: profile -> seed -> split -> parameter counts -> for
each phase: build, ``fit`` with the test-AP50 learning curve, then each phase's COCO evaluation on
the test split, recorded with :func:`~defectlib.experiments.danet.record_phase` (the notebook's
metric names, paper keys and units) and the notebook's notes. It draws no figure. On one process
it computes what the notebook computes, number for number.

Under torchrun the profile's ``batch_size`` stays the *global* batch: each of N processes reads
``batch_size / N`` images of its shard per step and DDP averages the gradients, so the steps,
schedule and learning rate are the profile's. Rank 0 alone evaluates and writes ``results.json``
and ``histories.json`` into ``--out``. From-scratch profiles (smoke, cpu) use plain BatchNorm,
whose batch statistics are then per process (``sync_bn`` is CUDA-only); the paper profile starts
from COCO weights with frozen BatchNorm, where this question does not arise.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ...data import NEUDET, collate_detection
from ...engine import detection_loss, fit
from ...engine import distributed as D
from ...metrics.detection import evaluate_detector
from ...models import danet
from ...record import Recorder
from ...runtime import seed_everything
from .. import command
from ..registry import train_config
from .data import datasets, train_loader
from .recipe import build_model, starting_weights
from .results import record_curves, record_params, record_phase, record_summary, training_plan

NOTEBOOK = "01_danet_neu_det"
CLASSES = NEUDET.CLASSES


def run(profile: str = "smoke", out: str | Path | None = None, seed: int = 0, data_root: str | Path | None = None,
        device: str = "auto", dry_run: bool = False, progress: bool = True, **changes: Any) -> dict | None:
    """Notebook 01's training and evaluation (``changes``: profile settings, unknown ones a
    KeyError); rank 0 writes ``<out>/results.json`` and returns the recorder's data, the other
    ranks return None. Joins torchrun's process group (gloo on CPU, NCCL on CUDA) if launched
    under it; the caller ends it (:func:`main` does)."""
    cfg, dev, di = command.join("01", profile, device, dry_run, changes, out)
    rank_cfg = cfg.replace(batch_size=command.per_rank_batch(cfg.batch_size, di.world_size, "batch_size"))
    seed_everything(seed)
    rec = Recorder(out if di.is_main else None, NOTEBOOK, profile, config=cfg, seed=seed, device=dev,
                   data_root=data_root)
    say = print if di.is_main else (lambda *a, **k: None)
    say(f"profile={profile} dry_run={dry_run} device={dev} threads={torch.get_num_threads()} "
        f"phases={cfg.phases} processes={di.world_size}")

    train_ds, test_ds, real = datasets(cfg, data_root, seed)
    dataset = "NEU-DET" if real else "NEU-DET stand-in"
    split_note = (f"{dataset} at {train_ds.root} ({'real' if real else 'generated stand-in, not real data'}); "
                  f"split '{cfg.split}' seed {seed}: {len(train_ds)} train / {len(test_ds)} test images")
    rec.note(split_note)
    say(split_note)

    weights = _weights(cfg, dry_run, di, say)
    if di.is_main:
        record_params(rec, cfg, seed)

    test_loader = DataLoader(test_ds, batch_size=cfg.eval_batch_size, collate_fn=collate_detection,
                             num_workers=D.loader_workers(cfg.num_workers, di))   # rank 0's evaluations
    plan = training_plan(cfg, steps_per_epoch=len(train_loader(train_ds, cfg, seed)))
    rec.note(f"training plan: {plan}")
    say(plan)
    if di.enabled:
        rec.note(f"torchrun: {di.world_size} processes x {rank_cfg.batch_size} images per step "
                 f"(global batch {cfg.batch_size}), rank 0 evaluates")

    def test_ap50(model):
        """The learning curve: test AP50 every cfg.eval_every epochs (rank 0)."""
        return {"test_AP50": 100 * evaluate_detector(model, test_loader, class_names=CLASSES, device=dev,
                                                     max_batches=cfg.max_eval_batches).ap50}

    models, histories = {}, {}
    for ph in cfg.phases:
        say(f"--- phase {ph}: {danet.PHASES[ph]}")
        model = build_model(cfg, ph, len(CLASSES), weights, seed)   # every phase: the same random draw
        t = time.time()
        train_cfg = train_config(cfg, seed=seed, progress=progress, name=f"phase{ph}")   # as the notebook's
        histories[ph] = fit(model, train_loader(train_ds, rank_cfg, seed), train_cfg, loss_fn=detection_loss,
                            device=dev, evaluate=test_ap50)
        rec.timing(f"phase{ph}/train_s", time.time() - t)
        models[ph] = model.eval()
    record_curves(rec, histories)

    if di.is_main:
        results = {}
        for ph, model in models.items():
            t = time.time()
            results[ph] = evaluate_detector(model, test_loader, class_names=CLASSES, device=dev,
                                            max_batches=cfg.max_eval_batches)
            rec.timing(f"phase{ph}/eval_s", time.time() - t)
            record_phase(rec, ph, results[ph], dataset, real)
        for ph, r in results.items():
            say(f"phase {ph}: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in r.as_dict().items()
                                            if k in ("AP", "AP50", "AP75", "AR1", "AR10", "AR100")))
        say("\n\n".join(record_summary(rec, results, dataset, real, profile, dry_run)))
        path = rec.save()
        if path is not None:
            command.write_histories(path, {f"phase{ph}": h for ph, h in histories.items()})
            say(f"wrote {path}")
    D.barrier(di)
    return rec.data if di.is_main else None


def _weights(cfg, dry_run: bool, di: D.DistInfo, say):
    """:func:`.recipe.starting_weights`; under torchrun the first process of each machine fetches
    the file before the others read it."""
    weights = starting_weights(cfg, dry_run, say)
    if weights is not None and di.enabled:
        if di.local_rank == 0 and not danet.pretrained_file(weights)[0].exists():
            build_model(cfg, max(cfg.phases), len(CLASSES), weights)   # torchvision downloads it here
        D.barrier(di)
    return weights


def main(argv: list[str] | None = None) -> int:
    """``python -m defectlib.experiments.danet`` (see the module docstring)."""
    return command.main("01", run, "python -m defectlib.experiments.danet", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
