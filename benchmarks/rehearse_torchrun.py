"""Rehearse the paper profiles' multi-GPU runs on the CPU (issue 27, item 4).

Each experiment command (notebooks 01-04) runs its ``paper`` profile with ``--dry-run --device
cpu`` (the paper's model and image sizes, 2 optimizer steps per training run, one evaluation batch)
twice, one run at a time: as one process, then under ``torchrun --standalone --nproc_per_node=4``
(gloo, one thread per process). It prints each wall time and whether the two ``results.json``
record the same things (:func:`structure`: every key, every metric's name / paper key / unit /
dataset, the number of notes and figures; values differ, the training differs). Exit status 1 if a
run failed or the two differ. ``tests/test_rehearsal.py`` runs the same (``DEFECTLIB_REHEARSAL=1``).

    .venv/bin/python benchmarks/rehearse_torchrun.py                        # all four, stand-ins
    .venv/bin/python benchmarks/rehearse_torchrun.py severstal ocinet --out /tmp/rehearsal
    .venv/bin/python benchmarks/rehearse_torchrun.py danet --data-root /work/shared/datasets

Without ``--data-root`` (and with ``DEFECTLIB_DATA`` unset for the runs) the commands read the
generated stand-ins, in the real datasets' on-disk formats. The pretrained weights of the paper
profiles are not needed: a dry run says where the full run finds them and goes on from random
weights. Notebook 02's ``seg_batch_size`` of 5 does not split over 4 processes (the command stops
and says so): both runs take ``--set seg_batch_size=4``, the multiple of 4 the message proposes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("danet", "severstal", "ocinet", "synthetic")
#: a note only a run under torchrun writes (notebook 01's "torchrun: 4 processes x 1 images per step
#: (global batch 4), rank 0 evaluates"): one note more than one process writes, rightly
TORCHRUN_NOTE = "torchrun: "


def settings(command: str, nproc: int) -> list[str]:
    """The ``--set`` both runs of ``command`` take: the paper profile's batches where they do not
    split over ``nproc`` processes (notebook 02's ``seg_batch_size`` 5: the largest multiple of
    ``nproc`` below it, at least ``nproc``, as the command's message proposes)."""
    if command == "severstal" and 5 % nproc:
        return [f"seg_batch_size={max(nproc, 5 // nproc * nproc)}"]
    return []


def environment(threads: int = 1) -> dict[str, str]:
    """The runs' environment: ``threads`` per process, no GPU, figures off-screen, the generated
    stand-ins unless ``--data-root`` is given (never ``$DEFECTLIB_DATA``), gloo on the loopback."""
    drop = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "DEFECTLIB_DATA")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(OMP_NUM_THREADS=str(threads), CUDA_VISIBLE_DEVICES="", MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])]))
    if sys.platform.startswith("linux") and Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only: works offline, whatever the hostname
    return env


def command_line(command: str, out: Path, nproc: int, sets: list[str], data_root: str | None = None) -> list[str]:
    """The dry run of ``command``'s paper profile on the CPU, as one process (``nproc`` 1) or under
    ``torchrun --standalone --nproc_per_node=<nproc>``."""
    launch = [sys.executable] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    args = ["-m", f"defectlib.experiments.{command}", "--profile", "paper", "--dry-run", "--device", "cpu",
            "--quiet", "--out", str(out), *[a for s in sets for a in ("--set", s)]]
    return launch + args + (["--data-root", data_root] if data_root else [])


def run(command: str, out: Path, nproc: int, sets: list[str], data_root: str | None = None,
        timeout: float | None = None) -> tuple[int, float, str]:
    """One dry run; returns (exit status, wall seconds, its output). Its log goes to ``<out>.log``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(command_line(command, out, nproc, sets, data_root), env=environment(), cwd=out.parent,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        code, log = p.returncode, p.stdout
    except subprocess.TimeoutExpired as exc:
        code = -1
        log = (exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or "") + \
            f"\n[rehearsal] timed out after {timeout} s"
    seconds = time.perf_counter() - t0
    out.with_suffix(".log").write_text(log)
    return code, seconds, log


def structure(results: dict) -> dict[str, Any]:
    """What a ``results.json`` records, without its values: every key, recursively (``config``,
    ``timings``, ``versions``, ``machine``...); each metric's name, paper key, unit, dataset and
    real flag, in order; the figures; the number of notes (a note's text holds numbers and seconds),
    torchrun's own note (:data:`TORCHRUN_NOTE`) left out."""
    def keys(value):
        return {k: keys(v) for k, v in value.items()} if isinstance(value, dict) else None
    out: dict[str, Any] = {}
    for key, value in results.items():
        if key == "metrics":
            out[key] = [(m["name"], m.get("paper"), m.get("unit"), m.get("dataset"), m.get("real")) for m in value]
        elif key == "notes":
            out[key] = len([n for n in value if not n.startswith(TORCHRUN_NOTE)])
        elif key == "figures":
            out[key] = list(value)
        else:
            out[key] = keys(value)
    return out


def differences(one: dict, many: dict, where: str = "") -> list[str]:
    """Where two :func:`structure` s differ, in words (empty: they are the same)."""
    if isinstance(one, dict) and isinstance(many, dict):
        found = [f"{where}{k}: only in one process" for k in one if k not in many]
        found += [f"{where}{k}: only under torchrun" for k in many if k not in one]
        for k in one:
            if k in many:
                found += differences(one[k], many[k], f"{where}{k}.")
        return found
    if one != many:
        if isinstance(one, list) and isinstance(many, list):
            return [f"{where.rstrip('.')}: only in one process {[x for x in one if x not in many]}, "
                    f"only under torchrun {[x for x in many if x not in one]}, order or count "
                    f"{len(one)} vs {len(many)}"]
        return [f"{where.rstrip('.')}: {one!r} in one process, {many!r} under torchrun"]
    return []


def rehearse(command: str, root: Path, nproc: int = 4, data_root: str | None = None,
             timeout: float | None = None, say=print) -> dict[str, Any]:
    """Both runs of ``command`` under ``root``; returns their exit codes, times, logs and differences."""
    sets = settings(command, nproc)
    report: dict[str, Any] = {"command": command, "sets": sets}
    for label, n in (("single", 1), ("torchrun", nproc)):
        out = root / f"{command}-{n}"
        code, seconds, log = run(command, out, n, sets, data_root, timeout)
        report[label] = {"code": code, "seconds": seconds, "log": log, "out": out}
        say(f"{command:10s} {n} process{'es' if n > 1 else '  '}: {seconds:7.0f} s, exit {code}"
            + (f" (--set {' '.join(sets)})" if sets else ""))
    if all(report[r]["code"] == 0 for r in ("single", "torchrun")):
        one, many = (structure(json.loads((report[r]["out"] / "results.json").read_text()))
                     for r in ("single", "torchrun"))
        report["differences"] = differences(one, many)
    else:
        report["differences"] = None
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("commands", nargs="*", metavar="COMMAND",
                    help=f"some of {', '.join(COMMANDS)} (default: all four)")
    ap.add_argument("--out", default="/tmp/rehearsal", help="each run's --out is <out>/<command>-<processes>")
    ap.add_argument("--nproc", type=int, default=4)
    ap.add_argument("--data-root", default=None, help="the real datasets (default: the generated stand-ins)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per run (default: none)")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.commands) - set(COMMANDS))
    if unknown:
        ap.error(f"unknown command(s) {unknown}; the commands are {list(COMMANDS)}")
    failed = False
    total = time.perf_counter()
    for command in args.commands or COMMANDS:
        r = rehearse(command, Path(args.out), args.nproc, args.data_root, args.timeout)
        if r["differences"] is None:
            failed = True
            for label in ("single", "torchrun"):
                if r[label]["code"]:
                    print(f"  {label} failed, the end of {r[label]['out']}.log:\n" + r[label]["log"][-2000:])
        elif r["differences"]:
            failed = True
            print(f"  results.json differ:\n    " + "\n    ".join(r["differences"]))
        else:
            print("  results.json: the same keys, metrics and number of notes")
    print(f"all: {time.perf_counter() - total:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
