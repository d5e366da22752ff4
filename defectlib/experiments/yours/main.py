"""Notebook 05 without Jupyter: your folder checked, split, the profile's models trained, compared
and the best exported, on one process or under ``torchrun``.

    python -m defectlib.experiments.yours --data ~/line7 --profile cpu --out runs/line7
    python -m defectlib.experiments.yours --data ~/ksdd2/train --images . --masks . --mask-suffix _GT \\
        --profile cpu --out runs/ksdd2
    torchrun --nproc_per_node=4 -m defectlib.experiments.yours --data ~/line7 --profile paper --out runs/line7-4gpu

Without ``--data`` it reads NEU-Seg's training images as a folder (binarised), from ``--data-root``
when it is there, else its generated stand-in. :func:`run` follows the notebook's cells: look
(data check, defect shares, near-duplicates), split, train and evaluate each model, the trivial rows,
the verdict, the export; rank 0 writes ``results.json``, ``histories.json`` and the exported model
(``<out>/model``: ``defectlib predict <out>/model IMAGES --out DIR``). Figures are the notebook's.
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
from ..registry import profile as profile_of
from .data import folder_spec, look, split, with_models
from .evaluation import evaluate_nothing, evaluate_otsu
from .export import export_model
from .profile import plan_steps
from .recipe import MODELS, eval_limit, train_and_evaluate
from .results import pick, record_data, record_pick, record_row, record_summary

NOTEBOOK = "05_your_own_data"
FOLDER_ARGS = ("images", "masks", "mask_suffix", "mask_ext", "allow_missing_masks", "threshold", "encoding",
               "defect_labels", "bit_depth")


def run(profile: str = "smoke", out: str | Path | None = None, seed: int = 0, data_root: str | Path | None = None,
        device: str = "auto", dry_run: bool = False, progress: bool = True, data: str | Path | None = None,
        folder: dict | None = None, split_file: str | Path | None = None, split_seed: int = 0,
        models=None, **changes: Any) -> dict | None:
    """Notebook 05's steps (``folder``: :class:`.data.FolderSpec` options for ``data``; ``changes``:
    profile settings). Rank 0 writes ``<out>/results.json`` and ``<out>/model`` and returns the
    recorder's data."""
    cfg, dev, di = command.join("05", profile, device, dry_run, {**changes, **with_models(models)}, out)
    cfg = cfg.replace(progress=cfg.progress and progress and di.is_main)
    seed_everything(seed)
    rec = Recorder(out if di.is_main else None, NOTEBOOK, profile, config=cfg, seed=seed, device=dev,
                   data_root=data_root)
    say = print if di.is_main else (lambda *a, **k: None)
    spec = folder_spec(data, data_root, **(folder or {}))
    t0 = time.perf_counter()
    found = look(spec, cfg.duplicates, cfg.progress)
    yours = split(found, cfg.val_fraction, cfg.test_fraction, split_seed, split_file, cfg.min_images, cfg.max_images)
    rec.timing("look_and_split", time.perf_counter() - t0)
    record_data(rec, yours)
    say(f"{yours.name}: " + ", ".join(f"{p} {c}" for p, c in yours.counts().items()))
    plan = plan_steps(len(yours.parts["train"]), cfg)
    batch = command.per_rank_batch(plan.batch_size, di.world_size)
    runs, rows = {}, {}
    for name in cfg.models:
        t0 = time.perf_counter()
        runs[name] = train_and_evaluate(name, yours, cfg, dev, seed, cfg.progress, di.is_main, batch)
        rec.timing(f"train/{name}", runs[name]["train_s"])
        rec.timing(f"train_and_eval/{name}", time.perf_counter() - t0)
        if di.is_main:
            rows[name] = runs[name]["scores"]
            record_row(rec, name, rows[name], yours, runs[name]["complexity"], cfg.input_size, dev)
            say(f"{MODELS[name].label}: test IoU {rows[name]['IoU']:.1f} at threshold {rows[name]['threshold']:.2f}")
    if di.is_main:
        rows["otsu"] = evaluate_otsu(yours, eval_limit(cfg))
        rows["nothing"] = evaluate_nothing(yours, eval_limit(cfg))
        for key in ("otsu", "nothing"):
            record_row(rec, key, rows[key], yours)
        verdict = pick(rows, yours.real, {k: r["complexity"] for k, r in runs.items()}, cfg.bootstrap, seed)
        say(record_pick(rec, verdict, yours))
        record_summary(rec, cfg, profile, plan, yours)
        path = rec.save()
        if path is not None:
            best = rows[verdict.best]
            export_model(runs[verdict.best]["model"], path.parent / "model", name=verdict.best,
                         label=MODELS[verdict.best].label, input_size=cfg.input_size, threshold=best["threshold"],
                         bit_depth=spec.bit_depth, info={"trained_on": yours.name, "split": yours.source,
                                                         "test": {m: best[m] for m in ("IoU", "Dice", "F1")}})
            command.write_histories(path, {k: r["history"] for k, r in runs.items()})
            say(f"wrote {path} and the exported {MODELS[verdict.best].label} in {path.parent / 'model'}")
    D.barrier(di)
    return rec.data if di.is_main else None


def main(argv: list[str] | None = None) -> int:
    """``python -m defectlib.experiments.yours`` (see the module docstring)."""
    ap = command.parser("python -m defectlib.experiments.yours", __doc__)
    g = ap.add_argument_group("your folder (the options of defectlib.data.ImageMaskFolder)")
    g.add_argument("--data", metavar="DIR", help="the folder of images and masks (default: binarised NEU-Seg)")
    g.add_argument("--images", default="images", help="image sub-folder ('.' = the folder itself)")
    g.add_argument("--masks", default="masks", help="mask sub-folder ('.' = the folder itself)")
    g.add_argument("--mask-suffix", default="", help="masks are <stem><S>.* (KSDD2: _GT)")
    g.add_argument("--mask-ext", default=None, help="only masks with this extension (.png)")
    g.add_argument("--allow-missing-masks", action="store_true", help="an image without a mask is clean")
    g.add_argument("--threshold", type=float, default=None, help="a mask pixel is a defect when grey > T")
    g.add_argument("--encoding", default="auto", choices=("auto", "binary", "index"), help="mask encoding")
    g.add_argument("--defect-labels", default=None, help="stored values that are defects, e.g. 2 or 1,2")
    g.add_argument("--bit-depth", type=int, default=None, help="images stored with B bits in 16-bit files")
    g.add_argument("--split-file", default=None, help="your split: lines '<image>,<train|val|test>'")
    g.add_argument("--split-seed", type=int, default=0, help="the seeded split's seed (default 0)")
    g.add_argument("--models", default=None, help=f"comma-separated, from {', '.join(MODELS)} (default: the profile's)")
    args = ap.parse_args(argv)
    try:
        changes = command.parse_changes("05", args.profile, args.changes)
    except (KeyError, ValueError) as exc:
        ap.error(exc.args[0] if exc.args else str(exc))
    folder = {k: getattr(args, k) for k in FOLDER_ARGS}
    for k in ("images", "masks"):
        folder[k] = None if folder[k] in (".", "") else folder[k]
    if folder["defect_labels"] is not None:
        folder["defect_labels"] = [float(v) if "." in v else int(v) for v in folder["defect_labels"].split(",")]
    models = args.models.split(",") if args.models else None
    try:
        changes = {**changes, **with_models(models)}
        profile_of("05", args.profile, **changes)       # bad models: a usage error, before any data
    except (KeyError, ValueError) as exc:
        ap.error(exc.args[0] if exc.args else str(exc))
    return command.launch(run, args, changes, data=args.data, folder=folder if args.data else None,
                          split_file=args.split_file, split_seed=args.split_seed)


if __name__ == "__main__":
    sys.exit(main())
