"""What every notebook's command-line entry shares (``python -m defectlib.experiments.<name>``, also
under ``torchrun``): the options, ``--set key=value`` read with the profile's own types, and the
per-process batch that keeps the profile's batch size the global batch.

Why a command line at all: ``torchrun`` starts N copies of a *program*; a notebook is not one.
Each entry runs the same training and evaluation as its notebook, with the same recorder calls
(the same ``results.json`` metric names), without drawing figures.
"""
from __future__ import annotations

import argparse
import ast
import types
import typing
from typing import Any

from .registry import PROFILE_NAMES
from .registry import profile as profile_of
from ..engine import distributed as D

_NONE = ("none", "null")
_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options every entry takes: ``--profile --seed --data-root --device --out --dry-run --set --resume
    --quiet``."""
    ap = argparse.ArgumentParser(prog=prog, description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=PROFILE_NAMES, default="smoke",
                    help="smoke (seconds, stand-ins), cpu (about 30 min on 2 cores), paper (GPUs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-root", default=None,
                    help="folder holding the datasets (default: $DEFECTLIB_DATA, else generated stand-ins)")
    ap.add_argument("--device", default="auto",
                    help="auto (under torchrun each process's GPU when CUDA is there, else the CPU), cpu, cuda")
    ap.add_argument("--out", required=True,
                    help="rank 0 writes results.json (as the notebook does) and histories.json here")
    ap.add_argument("--dry-run", action="store_true", help="2 optimizer steps and one evaluation batch per run")
    ap.add_argument("--set", dest="changes", action="append", default=[], metavar="KEY=VALUE",
                    help="change one profile setting, read with the setting's type: --set epochs=2 "
                         "--set phases=2,5 --set grad_clip=none (repeatable; an unknown key is an error)")
    ap.add_argument("--resume", action="store_true",
                    help="continue from the checkpoints in <out>/checkpoints (a killed run: each trained model "
                         "goes on from its last.pt, a finished one is loaded, not trained again)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    return ap


def parse_changes(notebook: str, profile: str, items: list[str]) -> dict[str, Any]:
    """``["epochs=2", "phases=2,5"]`` -> ``{"epochs": 2, "phases": (2, 5)}``, each value converted to
    the type its setting is declared with in its profile (:mod:`defectlib.experiments.registry`).
    An unknown key raises the profile's KeyError (it lists the settings there are); a value that
    does not fit, ValueError."""
    cfg = profile_of(notebook, profile)
    hints = typing.get_type_hints(type(cfg))
    changes: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set wants KEY=VALUE, got {item!r}")
        cfg[key]  # KeyError: "<Profile> has no setting 'key'; it has [...]"
        try:
            changes[key] = convert(raw.strip(), hints[key])
        except ValueError as exc:
            raise ValueError(f"--set {item!r}: {key} is {_name(hints[key])} ({exc})") from None
    if changes:
        cfg.replace(**changes)  # the profile checks the values (DANet's phases 1..5) before any training
    return changes


def convert(raw: str, hint: Any) -> Any:
    """``raw`` as a value of the annotation ``hint`` (int, float, bool, str, ``X | None``,
    ``tuple[X, ...]``, dict); ValueError when it is not one."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and raw.lower() in _NONE:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(raw, arg)
            except ValueError:
                pass
        raise ValueError(f"{raw!r} is none of {_name(hint)}")
    if hint is bool:
        if raw.lower() not in _BOOLS:
            raise ValueError(f"{raw!r} is not true / false")
        return _BOOLS[raw.lower()]
    if hint in (int, float):
        return hint(raw)
    if hint is str:
        return raw
    if origin is tuple:
        items = [s.strip() for s in raw.strip().strip("()[]").split(",") if s.strip()]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(s, args[0]) for s in items)
        if len(items) != len(args):
            raise ValueError(f"{len(args)} values wanted, got {len(items)}")
        return tuple(convert(s, a) for s, a in zip(items, args))
    try:                                    # dicts, nested settings: a python literal
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"{raw!r} is not a python literal") from exc
    wanted = origin or hint
    if isinstance(wanted, type) and not isinstance(value, wanted):
        raise ValueError(f"{raw!r} is not a {wanted.__name__}")
    return value


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) if not typing.get_args(hint) else str(hint).replace("typing.", "")


def per_rank_batch(batch_size: int, world_size: int, key: str = "batch_size") -> int:
    """The batch of each of ``world_size`` processes so that together they take the profile's
    ``batch_size`` per optimizer step: DDP averages the processes' gradients, so a step of N
    processes on ``batch_size / N`` images each is the step one process takes on ``batch_size``
    (the schedule, learning rate and steps per epoch stay the profile's). ``key``: the setting's
    name, for the message when it does not split (the paper's batch of 5 over 2, 4 or 8 GPUs)."""
    if batch_size % world_size:
        lower, upper = max(world_size, batch_size // world_size * world_size), -(-batch_size // world_size) * world_size
        how = f"--set {key}={lower}" + (f" or {upper}" if upper != lower else "") if "." not in key else \
            f"{key} = {lower} or {upper} in the profile"
        raise ValueError(f"{key} {batch_size} (the global batch) does not split over {world_size} processes: "
                         f"{how} (a multiple of {world_size}; scale lr if you mean to)")
    return batch_size // world_size


def main(notebook: str, run, prog: str, description: str, argv: list[str] | None = None) -> int:
    """The command of an experiment: parse the shared options, turn ``--set`` into profile
    changes (a bad key or value is a usage error naming the settings), call ``run(profile, out,
    seed=, data_root=, device=, dry_run=, progress=, **changes)`` and end torchrun's process
    group if ``run`` joined one."""
    ap = parser(prog, description)
    args = ap.parse_args(argv)
    try:
        changes = parse_changes(notebook, args.profile, args.changes)
    except (KeyError, ValueError) as exc:
        ap.error(exc.args[0] if exc.args else str(exc))
    return launch(run, args, changes)


def launch(run, args: argparse.Namespace, changes: dict[str, Any], **extra: Any) -> int:
    """``run(profile, out, seed=, data_root=, device=, dry_run=, progress=, **changes, **extra)`` from
    the shared options (``--resume``: ``resume=True``), then the end of torchrun's process group if
    ``run`` joined one."""
    if args.resume:
        changes = {**changes, "resume": True}
    try:
        run(args.profile, args.out, seed=args.seed, data_root=args.data_root, device=args.device,
            dry_run=args.dry_run, progress=not args.quiet, **changes, **extra)
    finally:
        if D.info().enabled:
            import torch.distributed
            torch.distributed.destroy_process_group()
    return 0


def join(notebook: str, profile: str, device: str, dry_run: bool, changes: dict, out=None):
    """The profile (with ``changes``; checkpoints, where the profile writes them, in
    ``<out>/checkpoints``), the device and torchrun's process group (gloo on CPU, NCCL on CUDA; a
    single process when not launched by torchrun)."""
    from ..runtime import resolve_device
    cfg = profile_of(notebook, profile, dry_run=dry_run, output_dir=out, **changes)
    dev = resolve_device(device)
    di = D.init_from_env(backend="nccl" if dev.type == "cuda" else "gloo")
    dev = D.device_for(di, dev)
    return cfg, dev, di


def write_histories(results_path, histories: dict) -> None:
    """``histories.json`` beside a command's ``results.json`` (``results_path``): each trained
    model's :class:`~defectlib.engine.History` under its name, as the notebooks' learning curves read it."""
    import json
    from pathlib import Path
    Path(results_path).with_name("histories.json").write_text(
        json.dumps({name: h.state_dict() for name, h in histories.items()}, indent=1))
