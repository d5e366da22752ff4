"""Commit the results of several seeds, run separately, as ``results/NN_<name>/``.

A cpu-profile seed of a notebook takes up to half an hour, so the seeds of one notebook are often
run one at a time (``defectlib run --only 03 --seed 1``, then ``--seed 2``) and each run folder
holds one seed. This gathers them into the committed layout that the README and the
reproducibility check (:mod:`defectlib.course.reproduce`) read:

- ``results/<notebook>/results.json``: the notebook's own results of seed 0 (the seed the notebooks
  default to), copied unchanged;
- ``results/<notebook>/seeds.json``: every numeric metric of every seed with its mean, sample sd
  and range (:func:`defectlib.course.report.seed_spread`), which run and commit produced each seed, and
  the verdict on each of the paper's claims over the seeds (:func:`defectlib.record.verdict.judge_runs`).

    defectlib seeds runs/20261130T144937Z-cpu runs/20261130T152258Z-cpu runs/... --into results

Runs of different profiles, or two runs of the same notebook and seed, are refused: a seed table
mixes nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import report
from .runs import load_run
from ..experiments.registry import experiment
from ..record.verdict import judge_runs


def _claims(notebook: str) -> tuple:
    """The paper's claims of ``notebook`` (its experiment's record), none for an unknown one."""
    try:
        return experiment(notebook).claims
    except KeyError:
        return ()


def gather(run_dirs: list[str | Path]) -> dict[str, dict]:
    """``{notebook: {"profile", "entries": {seed: notebook entry}, "runs": {seed: run name}}}``."""
    out: dict[str, dict] = {}
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        results = load_run(run_dir)
        for entry in results.get("notebooks", []):
            if entry.get("status") != "ok" or not entry.get("results"):
                raise ValueError(f"{run_dir}: {entry['notebook']} did not finish (status {entry.get('status')!r})")
            own = entry["results"]
            nb, seed = entry.get("source", entry["notebook"]), int(own["seed"])
            g = out.setdefault(nb, {"profile": own["profile"], "entries": {}, "runs": {}})
            if own["profile"] != g["profile"]:
                raise ValueError(f"{run_dir}: {nb} ran with profile {own['profile']!r}, another run with "
                                 f"{g['profile']!r}: one seed table holds one profile")
            if own.get("config", {}).get("dry_run"):
                raise ValueError(f"{run_dir}: {nb} is a dry run; its numbers mean nothing")
            if seed in g["entries"]:
                raise ValueError(f"{run_dir}: {nb} seed {seed} is also in {g['runs'][seed]}")
            g["entries"][seed] = dict(entry, seed=seed, source=nb)
            g["runs"][seed] = results.get("run", run_dir.name)
    return out


def commit(run_dirs: list[str | Path], into: str | Path) -> list[Path]:
    """Write ``<into>/<notebook>/results.json`` (seed 0) and ``seeds.json``; returns the files."""
    written = []
    for nb, g in gather(run_dirs).items():
        folder = Path(into) / nb
        folder.mkdir(parents=True, exist_ok=True)
        if 0 in g["entries"]:
            path = folder / "results.json"
            path.write_text(json.dumps(g["entries"][0]["results"], indent=2))
            written.append(path)
        seeds = sorted(g["entries"])
        if len(seeds) < 2:
            continue
        rows = report.seed_spread({"notebooks": [g["entries"][s] for s in seeds]})
        runs = {f"{nb}-seed{s}": {"run": g["runs"][s], "git_commit": g["entries"][s]["results"].get("git_commit"),
                                  "timings": g["entries"][s]["results"].get("timings", {})} for s in seeds}
        verdicts = judge_runs(_claims(nb), [g["entries"][s]["results"] for s in seeds])
        path = folder / "seeds.json"
        path.write_text(json.dumps({"runs": runs, "profile": g["profile"], "seeds": seeds, "rows": rows,
                                    "verdicts": [{"statement": v.statement, "status": v.status, "text": v.text}
                                                 for v in verdicts]}, indent=1) + "\n")
        for v in verdicts:
            print(v.text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="defectlib seeds", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run folders, one or more seeds each")
    p.add_argument("--into", default="results", help="the results folder (default: results)")
    args = p.parse_args(argv)
    try:
        for path in commit(args.runs, args.into):
            print("wrote", path)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
