"""The course runner: every ``notebooks/NN_*.ipynb`` through papermill, one new run folder per call.

    python -m defectlib.course.run --profile smoke                 # what `make run` does
    defectlib run --only 01,03 --profile cpu --jobs 2       # two notebooks side by side
    defectlib run --profile paper --dry-run --kernel gpu    # 2 steps of the paper config on a GPU kernel
    defectlib run --only 03 --profile cpu --seed 0,1,2      # three seeds: report.md gives mean +- sd
    defectlib run --only 03 --profile cpu --data-root ~/datasets --check  # reproduces results/?
    defectlib run --resume latest                           # finish a run that died (defectlib.course.resume)

Each call writes ``runs/<UTC stamp>-<profile>/`` (never reusing one) holding, per notebook, the
executed ``<stem>.ipynb`` and a ``<stem>/`` folder (the notebook's ``output_dir``: its
``results.json``, figures and ``papermill.log``), then the combined ``results.json`` and
``report.md`` (see :mod:`defectlib.course.report`). Papermill injects ``profile``, ``data_root``,
``device``, ``seed``, ``output_dir`` and ``dry_run`` into the cell tagged ``parameters``. With
several seeds each notebook runs once per seed (``<stem>-seed<N>``) and the report adds each
metric's mean, sample standard deviation and range over the seeds: one seed of a reduced-scale
run says little about a difference of a point or two.

Each notebook runs in its own ``papermill`` process (its kernel inherits that process's
environment), so ``--jobs N`` runs N at once and each gets its share of the CPU threads; with GPUs
visible and ``--device auto`` or ``cuda``, each running notebook gets one GPU through
``CUDA_VISIBLE_DEVICES`` and N is capped at the number of GPUs; ``--device cpu`` leaves the GPUs
alone and ``--device cuda:K`` runs every notebook on GPU K, one at a time
(:func:`defectlib.course.execute.plan_devices`). A notebook whose kernel ran no cell (it did not start:
most often two kernels launched at once raced for a port) is relaunched, up to
``KERNEL_START_ATTEMPTS`` launches in all. A failing notebook is
reported with its failing cell and error; the others still run; the exit code is 1 if any failed.
``--check [REF]`` then compares the run with ``REF`` (default: the committed ``results/``) through
:mod:`defectlib.course.reproduce` and exits 1 also when a metric is outside REF's seed spread or missing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import sys
from pathlib import Path

from ..profiles import PROFILE_NAMES
from .preflight import (check_out_dir, missing_datasets, notebook_datasets, notebook_substitutes, require_real,
                        substituted)
from .runs import default_notebooks_dir, default_out_dir, default_results_dir
from .execute import Job, check_kernel, child_env, detect_gpus, plan_devices
from .schedule import KERNEL_START_ATTEMPTS, execute_jobs  # noqa: F401 (KERNEL_START_ATTEMPTS: the runner's)

NOTEBOOK_RE = re.compile(r"^(\d\d)_[^/]+\.ipynb$")
PROFILES = PROFILE_NAMES  # one list, in profiles.py


# --- what to run ----------------------------------------------------------------------------------
def parse_only(only: str | None) -> list[str] | None:
    """``"01,3"`` -> ``["01", "03"]``; None or ``""`` -> None (all notebooks)."""
    if not only:
        return None
    out = []
    for part in only.replace(" ", ",").split(","):
        if not part:
            continue
        if not part.isdigit() or len(part) > 2:
            raise ValueError(f"--only takes notebook numbers like 01,03; got {part!r}")
        out.append(part.zfill(2))
    return out


def discover(notebooks_dir: Path, only: list[str] | None = None) -> list[Path]:
    """The ``NN_*.ipynb`` notebooks of ``notebooks_dir`` in order, restricted to ``only``."""
    notebooks_dir = Path(notebooks_dir)
    if not notebooks_dir.is_dir():
        raise FileNotFoundError(f"no notebooks folder at {notebooks_dir}")
    found = sorted(p for p in notebooks_dir.iterdir() if NOTEBOOK_RE.match(p.name))
    if only is None:
        return found
    numbers = {p.name[:2] for p in found}
    missing = [n for n in only if n not in numbers]
    if missing:
        raise FileNotFoundError(f"no notebook numbered {', '.join(missing)} in {notebooks_dir} "
                                f"(have: {', '.join(sorted(numbers)) or 'none'})")
    return [p for p in found if p.name[:2] in only]


def parse_seeds(text: str | int) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; ``7`` or ``"7"`` -> ``[7]``. Seeds are distinct integers."""
    if isinstance(text, int):
        return [text]
    try:
        seeds = [int(part) for part in str(text).replace(" ", ",").split(",") if part]
    except ValueError:
        raise ValueError(f"--seed takes integers like 0 or 0,1,2; got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seed needs distinct integers like 0 or 0,1,2; got {text!r}")
    return seeds


def utc_stamp(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ")


def new_run_dir(out: Path, profile: str, dry_run: bool = False,
                now: dt.datetime | None = None) -> Path:
    """Create and return a fresh ``<out>/<stamp>-<profile>[-dryrun][-N]`` folder (never reused)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = f"{utc_stamp(now)}-{profile}" + ("-dryrun" if dry_run else "")
    for n in range(1, 1000):
        path = out / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()  # atomic: two runners in the same second get different folders
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"could not create a new run folder under {out}")


# --- the run --------------------------------------------------------------------------------------
def run(notebooks: list[Path], *, profile: str = "smoke", data_root: str | None = None,
        device: str = "auto", seed: int | list[int] = 0, dry_run: bool = False, kernel: str | None = None,
        jobs: int = 1, out: Path | None = None, cwd: Path | None = None,
        timeout: float | None = None, heartbeat: float = 30.0, quiet: bool = False,
        real_only: bool = False, deterministic: bool | None = None) -> Path:
    """Execute ``notebooks`` into a new run folder and return it (see the module docstring).

    ``seed`` may be a list: each notebook then runs once per seed. The run's status is in
    ``<run>/results.json`` (``"failed"`` lists failing notebooks). With ``data_root``, datasets a
    notebook reads that are not in it are named in its progress line and in ``report.md``
    (:mod:`defectlib.course.preflight`); ``real_only=True`` makes them a ValueError before anything runs,
    as is an ``out`` folder that cannot be written."""
    from . import report  # late: keeps `python -m defectlib.course.run --help` instant

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if not notebooks:
        raise ValueError("no notebooks to run")
    jobs = max(1, int(jobs))
    data_root = str(Path(data_root).expanduser().resolve()) if data_root else None
    missing = {Path(nb).stem: missing_datasets(notebook_datasets(nb), data_root, notebook_substitutes(nb))
               for nb in notebooks}
    replaced = {Path(nb).stem: substituted(notebook_datasets(nb), data_root, notebook_substitutes(nb))
                for nb in notebooks}
    if real_only:
        require_real(missing, data_root)
    gpus = detect_gpus()
    plan = plan_devices(device, jobs, gpus)          # a ValueError before any folder is made
    out = check_out_dir(out if out else default_out_dir())
    run_dir = new_run_dir(out, profile, dry_run)
    cwd = Path(cwd) if cwd else Path(notebooks[0]).parent
    for note in plan.notes:
        say(note)
    seeds = [int(s) for s in seed] if isinstance(seed, (list, tuple)) else [int(seed)]
    # never split the cores between more slots than there are notebooks to run: one notebook alone
    # (make run PROFILE=cpu ONLY=03) gets every core
    jobs = min(plan.jobs, len(notebooks) * len(seeds))
    env = child_env(jobs, deterministic=deterministic)

    jobs_list = []
    for nb in notebooks:
        for s in seeds:
            path = Path(nb).resolve()
            job = Job(path, run_dir, {}, stem=f"{path.stem}-seed{s}" if len(seeds) > 1 else "")
            job.parameters = {"profile": profile, "data_root": data_root, "device": device,
                              "seed": s, "output_dir": str(job.output_dir.resolve()),
                              "dry_run": bool(dry_run)}
            job.standins, job.substitutes = missing[path.stem], replaced[path.stem]
            jobs_list.append(job)

    meta = report.run_metadata(run_dir, profile=profile, dry_run=dry_run,
                               seed=seeds[0] if len(seeds) == 1 else seeds, device=device,
                               kernel=kernel, data_root=data_root, jobs=jobs, gpus=gpus,
                               deterministic=deterministic, command=sys.argv)
    report.write_results(run_dir, meta, jobs_list)
    data_msg = data_root or "embedded default (generated stand-ins)"
    say(f"defectlib run: {len(jobs_list)} notebook(s), profile {profile}"
        f"{' (dry run)' if dry_run else ''}, jobs {jobs}, data {data_msg}")
    say(f"run folder: {run_dir}")
    if os.environ.get("DEFECTLIB_DATA") and not data_root:
        say("note: DEFECTLIB_DATA is set but the runner uses the stand-ins unless you pass "
            "--data-root (e.g. --data-root \"$DEFECTLIB_DATA\")")

    execute_jobs(run_dir, meta, jobs_list, jobs=jobs, env=env, kernel=kernel, cwd=cwd, gpus=plan.gpus,
                 timeout=timeout, heartbeat=heartbeat, say=say)
    return run_dir


# --- command line ---------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--profile", default="smoke", choices=PROFILES,
                   help="smoke: seconds on tiny generated data; cpu: reduced real experiment "
                        "(~30 min per notebook on 2 cores); paper: the paper's settings (GPU)")
    p.add_argument("--only", metavar="NN[,NN]", help="run only these notebooks, e.g. 01,03")
    p.add_argument("--jobs", "-j", type=int, default=1,
                   help="notebooks run at once (one per GPU when GPUs are visible)")
    p.add_argument("--kernel", "-k", metavar="NAME",
                   help="Jupyter kernel to execute with (default: the notebook's, else python3)")
    p.add_argument("--data-root", metavar="DIR",
                   help="folder holding the real datasets (neu-det/, neu-seg/, mtd/, ...); "
                        "default: the embedded generated stand-ins")
    p.add_argument("--require-real", action="store_true",
                   help="with --data-root: stop before running if a notebook's dataset is not there "
                        "(instead of using its generated stand-in)")
    p.add_argument("--out", metavar="DIR", help="where run folders go (default: <repo>/runs)")
    p.add_argument("--dry-run", action="store_true",
                   help="2 optimizer steps and one evaluation batch of the chosen profile")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda:0...")
    p.add_argument("--seed", default="0", metavar="N[,N]",
                   help="random seed; several (0,1,2) run each notebook once per seed and the "
                        "report gives every metric's mean +- sd over them")
    p.add_argument("--notebooks", metavar="DIR", help="notebooks folder (default: <repo>/notebooks)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop a notebook that runs longer than this")
    p.add_argument("--check", nargs="?", const="", default=argparse.SUPPRESS, metavar="REF",
                   help="at the end, check the run against REF (without REF: the committed "
                        "results/ folder; or a run): exit 1 if a metric is outside REF's seed "
                        "spread or missing")
    kernels = p.add_mutually_exclusive_group()
    kernels.add_argument("--deterministic", dest="deterministic", action="store_const", const=True, default=None,
                         help="deterministic kernels on a GPU too (slower; the default on CPU)")
    kernels.add_argument("--fast", dest="deterministic", action="store_const", const=False,
                         help="the fastest kernels on a CPU too (the default on a GPU: cuDNN autotuning, TF32)")
    p.add_argument("--resume", metavar="RUN",
                   help="finish the run folder RUN (a path, a name under runs/, or latest): its notebooks "
                        "that did not end ok run again with its settings, each trained model going on from "
                        "its checkpoints (the paper profiles write them); --jobs, --kernel, --timeout apply")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the final summary")
    return p


# what a run fixes once and for all: --resume takes them from the run folder
RUN_SETTINGS = ("profile", "only", "data_root", "require_real", "dry_run", "device", "seed", "notebooks",
                "deterministic")


def _resume(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """``--resume RUN``: refuse the options a run fixed, then :func:`defectlib.course.resume.resume`."""
    from .resume import resume
    from .runs import resolve_run
    given = [f"--{k.replace('_', '-')}" for k in RUN_SETTINGS if getattr(args, k) != parser.get_default(k)]
    if given:
        parser.error(f"--resume continues a run with the settings it started with; drop {', '.join(given)}")
    try:
        run_dir = resolve_run(args.resume, Path(args.out) if args.out else None)
        return resume(run_dir, jobs=args.jobs if args.jobs != parser.get_default("jobs") else None,
                      kernel=args.kernel, timeout=args.timeout, quiet=args.quiet)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(
        prog="defectlib run", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter))
    args = parser.parse_args(argv)
    if args.resume:
        reference = None
        if hasattr(args, "check"):
            from . import reproduce
            reference = reproduce.load(reproduce.resolve(args.check or default_results_dir(),
                                                         args.out or default_out_dir()))
        return _finish(args, _resume(parser, args), reference)
    try:
        nb_dir = Path(args.notebooks) if args.notebooks else default_notebooks_dir()
        notebooks = discover(nb_dir, parse_only(args.only))
        if not notebooks:
            raise FileNotFoundError(f"no NN_*.ipynb notebooks in {nb_dir}")
        if args.data_root and not Path(args.data_root).expanduser().is_dir():
            raise FileNotFoundError(f"--data-root {args.data_root} is not a folder")
        if args.require_real or args.data_root:  # also a ValueError for a dataset one folder too deep
            missing = {nb.stem: missing_datasets(notebook_datasets(nb), args.data_root, notebook_substitutes(nb))
                       for nb in notebooks}
            if args.require_real:
                require_real(missing, args.data_root)
        seeds = parse_seeds(args.seed)
        if args.kernel:
            check_kernel(args.kernel)
        reference = None
        if hasattr(args, "check"):  # before the run: a typo should not cost a 30-minute run
            from . import reproduce
            reference = reproduce.load(reproduce.resolve(args.check or default_results_dir(),
                                                         args.out or default_out_dir()))
        check_out_dir(args.out or default_out_dir())  # last: it creates the folder
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    # `kill <runner>` (SIGTERM: what schedulers and `timeout` send) ends it like Ctrl-C does:
    # running notebooks are stopped and what finished is written to the run folder
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_dir = run(notebooks, profile=args.profile, data_root=args.data_root,
                      device=args.device, seed=seeds, dry_run=args.dry_run, kernel=args.kernel,
                      jobs=args.jobs, out=args.out, cwd=nb_dir, timeout=args.timeout,
                      quiet=args.quiet, real_only=args.require_real, deterministic=args.deterministic)
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return _finish(args, run_dir, reference)


def _finish(args: argparse.Namespace, run_dir: Path, reference) -> int:
    """The summary line, the exit status (1 if a notebook failed) and the ``--check``."""
    results = json.loads((run_dir / "results.json").read_text())
    if args.quiet:
        print(f"{run_dir / 'report.md'}: {results['summary']}")
    status = 1 if results["failed"] else 0
    if reference is not None:
        from . import report
        status = max(status, report.check(run_dir, reference, quiet=args.quiet))
    return status


if __name__ == "__main__":
    sys.exit(main())
