"""A run's ``results.json`` and ``report.md``: every metric beside the paper's own number.

The runner (:mod:`defectlib.course.run`) calls :func:`write_results` as notebooks finish and
:func:`write_report` at the end. Rebuild or compare later from the command line:

    defectlib report runs/20261122T010203Z-cpu                  # rewrite its report.md
    defectlib report latest --against results/                  # does it reproduce the committed?
    defectlib report latest --against runs/20261101T090000Z-cpu # what changed after an upgrade?

``--against`` adds a section sorting every metric into identical, within the reference's seed
spread, or outside it (with the changes of library versions and settings) and exits 1 when a
metric is outside or missing: the reproducibility check of :mod:`defectlib.course.reproduce`, to run
after upgrading torch, editing the library or moving to another machine.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
from pathlib import Path

from .. import papers
from . import reproduce
from .execute import fmt_time
from .formats import bare, dataset_label, fmt, is_number, signed
from .runs import load_run, resolve_run
from ..record import git_commit, library_versions
from ..runtime import machine, machine_line

PROFILE_NOTES = {
    "smoke": "**smoke**: seconds of plumbing (tiny sizes, a few steps). The numbers show the code "
             "runs end to end; they say nothing about the method.",
    "cpu": "**cpu**: reduced-scale experiments (smaller inputs, fewer epochs, 2 CPU cores). Compare "
           "the direction of each effect with the paper, not the absolute number.",
    "paper": "**paper**: the papers' own settings; numbers should land near theirs.",
}
DRY_NOTE = "**dry run**: 2 optimizer steps and one evaluation batch; no number here means anything."


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run_metadata(run_dir: Path, **fields) -> dict:
    """What every run records about itself: when, where, with which code and libraries."""
    return {"run": Path(run_dir).name, "started": _now(), **fields, "git_commit": git_commit(),
            "versions": library_versions(),
            "host": {"platform": platform.platform(), "cpus": os.cpu_count(), "machine": machine()}}


def write_results(run_dir: Path, meta: dict, jobs: list, finished: bool = False) -> Path:
    """Write the combined ``<run>/results.json`` from the runner's jobs and each notebook's own
    ``<run>/<stem>/results.json`` (written by :class:`defectlib.record.Recorder`)."""
    run_dir = Path(run_dir)
    notebooks = []
    for job in jobs:
        own = job.output_dir / "results.json"
        try:
            results = json.loads(own.read_text()) if own.is_file() else None
        except ValueError:
            results = None
        notebooks.append({
            "notebook": job.stem, "source": job.path.stem, "path": str(job.path), "seed": job.parameters.get("seed"),
            "status": job.status, "elapsed_s": job.elapsed_s,
            "gpu": job.gpu, "parameters": job.parameters, "error": job.error,
            "executed": job.executed.name, "output_dir": job.stem,
            "standins": list(getattr(job, "standins", [])),
            "log": f"{job.stem}/{job.log.name}", "results": results})
    failed = [nb["notebook"] for nb in notebooks if nb["status"] not in ("ok", "pending", "running")]
    ok = sum(nb["status"] == "ok" for nb in notebooks)
    data = dict(meta, notebooks=notebooks, failed=failed,
                summary=f"{ok} of {len(notebooks)} notebooks ok"
                        + (f", failed: {', '.join(failed)}" if failed else ""))
    if finished:
        data["finished"] = _now()
    path = run_dir / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)
    return path


def run_machine(results: dict) -> dict | None:
    """The machine a run's notebooks computed on: the first notebook's own record (its kernel's
    thread count), else the runner's."""
    for nb in results.get("notebooks", []):
        if (nb.get("results") or {}).get("machine"):
            return nb["results"]["machine"]
    return (results.get("host") or {}).get("machine")


def metric_rows(results: dict) -> list[dict]:
    """Flat rows (notebook, name, value, unit, dataset, real, paper key/value/source, delta)."""
    rows = []
    for nb in results.get("notebooks", []):
        for m in (nb.get("results") or {}).get("metrics", []):
            row = dict(m, notebook=nb["notebook"], source=nb.get("source", nb["notebook"]),
                       seed=nb.get("seed"), paper_value=None, paper_source="", delta=None)
            if m.get("paper"):
                try:
                    r = papers.ref(m["paper"])
                except KeyError:
                    row["paper_source"] = f"unknown paper key {m['paper']!r}"
                else:
                    row.update(paper_value=r.value, paper_unit=r.unit,
                               paper_source=r.source + (f"; {r.note}" if r.note else ""))
                    if is_number(m.get("value")) and is_number(r.value) and (m.get("unit") or "") == r.unit:
                        row["delta"] = m["value"] - r.value
                    elif is_number(m.get("value")) and is_number(r.value):
                        row["paper_source"] += f" (units differ: ours {m.get('unit')!r}, " \
                                               f"paper {r.unit!r})"
            rows.append(row)
    return rows


def seed_spread(results: dict) -> list[dict]:
    """Every numeric metric of a notebook run with several seeds: its values, mean, sample standard
    deviation (n - 1) and range, keyed by the source notebook, metric name and dataset."""
    groups: dict[tuple, dict] = {}
    for m in metric_rows(results):
        if not is_number(m.get("value")) or m.get("seed") is None:
            continue
        key = (m["source"], m["name"], dataset_label(m))
        g = groups.setdefault(key, {"notebook": key[0], "name": key[1], "dataset": key[2],
                                    "unit": m.get("unit", ""), "paper_value": m.get("paper_value"),
                                    "paper_unit": m.get("paper_unit", ""), "values": {}})
        g["values"][m["seed"]] = m["value"]
    out = []
    for g in groups.values():
        values = list(g["values"].values())
        if len(values) < 2:
            continue
        out.append(dict(g, n=len(values), mean=statistics.fmean(values), sd=statistics.stdev(values),
                        min=min(values), max=max(values)))
    return out


def spread_section(results: dict) -> list[str]:
    rows = seed_spread(results)
    if not rows:
        return []
    seeds = sorted({s for r in rows for s in r["values"]})
    lines = ["## Seed spread", "",
             f"Notebooks run with seeds {', '.join(map(str, seeds))}: mean +- sample standard deviation "
             "over the seeds, and the range. Two rows whose difference is within their spread are "
             "not evidence that one beats the other.", "",
             "| notebook | metric | dataset | mean +- sd | min to max | seeds | paper |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        u = r["unit"]
        lines.append(f"| {r['notebook']} | {r['name']} | {r['dataset']} | "
                     f"{fmt(r['mean'], u)} +- {bare(r['sd'], u)} | {fmt(r['min'], u)} to {fmt(r['max'], u)} | {r['n']} | "
                     f"{fmt(r['paper_value'], r['paper_unit']) if r['paper_value'] is not None else '-'} |")
    return lines + [""]


# --- report.md ------------------------------------------------------------------------------------
def build_report(results: dict, against=None, tol: float = 0.0) -> str:
    """The markdown of ``report.md``; ``against`` (a run's results dict or a loaded
    :class:`defectlib.course.reproduce.Results`) adds the reproducibility section."""
    r = results
    nbs = r.get("notebooks", [])
    lines = [f"# Run {r.get('run', '?')}", ""]
    v = r.get("versions", {})
    lines += [f"- profile **{r.get('profile')}**{' (dry run)' if r.get('dry_run') else ''}, "
              f"seed {r.get('seed')}, device {r.get('device')}, kernel {r.get('kernel') or 'default'}, "
              f"jobs {r.get('jobs')}",
              f"- data: {r.get('data_root') or 'embedded default (generated stand-ins)'}",
              f"- started {r.get('started')}, finished {r.get('finished', 'not finished')}; "
              f"git {r.get('git_commit') or 'unknown'}",
              "- " + ", ".join(f"{k} {val}" for k, val in v.items()),
              f"- CPU: {machine_line(run_machine(r))}",
              f"- **{r.get('summary', '')}**", ""]
    lines += ["> " + (DRY_NOTE if r.get("dry_run") else PROFILE_NOTES.get(r.get("profile"), "")),
              "> A dataset marked *stand-in* was generated by `defectlib.synth` in the real "
              "dataset's on-disk format: its numbers test the code, not the method. *real* means "
              "the real dataset (pass `--data-root`).", ""]

    rows = metric_rows(r)
    lines += ["## Notebooks", "", "| notebook | status | time | metrics | data |", "|---|---|---|---|---|"]
    for nb in nbs:
        mine = [m for m in rows if m["notebook"] == nb["notebook"]]
        data = ", ".join(sorted({dataset_label(m) for m in mine} - {"-"})) or "-"
        if nb.get("standins"):
            data += f"; **not in data root: {', '.join(nb['standins'])}**"
        status = nb["status"] if nb["status"] == "ok" else f"**{nb['status'].upper()}**"
        lines.append(f"| [{nb['notebook']}]({nb['executed']}) | {status} | "
                     f"{fmt_time(nb.get('elapsed_s'))} | {len(mine)} | {data} |")
    lines.append("")

    lines += spread_section(r)
    failed = [nb for nb in nbs if nb["status"] not in ("ok", "pending", "running")]
    if failed:
        lines += ["## Failures", ""]
        for nb in failed:
            e = nb.get("error") or {}
            where = (f"cell {e['cell']} (In [{e.get('execution_count') or ' '}])"
                     if e.get("cell") else "outside any cell (see the log)")
            lines += [f"### {nb['notebook']}: {nb['status']}, {where}", "",
                      f"**{e.get('ename', 'Error')}: {e.get('evalue', '')}**", ""]
            if e.get("source"):
                lines += ["```python", e["source"], "```", ""]
            if e.get("traceback"):
                lines += ["<details><summary>traceback</summary>", "", "```", e["traceback"],
                          "```", "</details>", ""]
            lines += [f"Executed notebook: [{nb['executed']}]({nb['executed']}); "
                      f"log: [{nb['log']}]({nb['log']})", ""]

    for nb in nbs:
        res = nb.get("results")
        mine = [m for m in rows if m["notebook"] == nb["notebook"]]
        lines += [f"## {nb['notebook']}", ""]
        if nb.get("standins"):
            lines += [f"> **Not in the data root** ({r.get('data_root')}): {', '.join(nb['standins'])}. "
                      "This notebook used the generated stand-in for them; `--require-real` makes "
                      "this an error.", ""]
        if res is None:
            lines += ["No results.json (the notebook did not reach `rec.save()`)." if nb["status"] != "ok"
                      else "This notebook records no results.", ""]
            continue
        if mine:
            lines += ["| metric | ours | paper | ours - paper | dataset | paper source |",
                      "|---|---|---|---|---|---|"]
            for m in mine:
                paper = fmt(m["paper_value"], m.get("paper_unit", "")) if m.get("paper") else "-"
                src = m["paper_source"] + (f" `{m['paper']}`" if m.get("paper") else "")
                note = f" ({m['note']})" if m.get("note") else ""
                lines.append(f"| {m['name']}{note} | {fmt(m.get('value'), m.get('unit', ''))} | "
                             f"{paper} | {signed(m['delta'], m.get('unit', ''))} | "
                             f"{dataset_label(m)} | {src} |")
            lines.append("")
        for text in res.get("notes", []):
            lines += [f"- {text}"]
        if res.get("notes"):
            lines.append("")
        if res.get("timings"):
            lines += ["Timings: " + ", ".join(f"{k} {fmt_time(s)}" for k, s in res["timings"].items()), ""]
        if res.get("figures"):
            lines += ["Figures: " + ", ".join(f"[{Path(f).stem}]({nb['output_dir']}/{f})"
                                              for f in res["figures"]), ""]
        lines += ["<details><summary>settings (profile config, seed, device, CPU)</summary>", "",
                  "```json", json.dumps({"config": res.get("config"), "seed": res.get("seed"),
                                         "device": res.get("device"),
                                         "data_root": res.get("data_root"),
                                         "machine": res.get("machine")}, indent=1),
                  "```", "</details>", ""]
    if against is not None:
        ref = against if isinstance(against, reproduce.Results) else reproduce.from_run(against)
        lines += reproduce.section(reproduce.from_run(r), ref, tol)[0]
    return "\n".join(lines).rstrip() + "\n"


def write_report(run_dir: Path, against=None, tol: float = 0.0) -> Path:
    """``<run>/report.md``; with several seeds also ``<run>/seed_spread.json`` (per notebook).
    ``against``: a reference folder in any layout :mod:`defectlib.course.reproduce` reads, or one loaded."""
    run_dir = Path(run_dir)
    other = reproduce.load(against) if isinstance(against, (str, Path)) else against
    results = load_run(run_dir)
    path = run_dir / "report.md"
    path.write_text(build_report(results, other, tol))
    rows = seed_spread(results)
    if rows:
        spread = {nb: {"run": results.get("run"), "profile": results.get("profile"),
                       "seeds": sorted({s for r in rows if r["notebook"] == nb for s in r["values"]}),
                       "rows": [r for r in rows if r["notebook"] == nb]}
                  for nb in dict.fromkeys(r["notebook"] for r in rows)}
        (run_dir / "seed_spread.json").write_text(json.dumps(spread, indent=1))
    return path


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("run", help="run folder, its name under runs/, or 'latest'")
    p.add_argument("--against", metavar="REFERENCE",
                   help="the committed results/ folder, one notebook's folder in it, or another "
                        "run: classify every metric as identical, within the reference's seed "
                        "spread or outside it (exit 1 if outside or missing)")
    p.add_argument("--tol", type=float, default=0.0,
                   help="with --against: widens every allowed range by this absolute amount (the "
                        "whole range where the reference has a single seed)")
    p.add_argument("--runs-dir", metavar="DIR", help="where run names are looked up (default: <repo>/runs)")
    return p


def check(run_dir: Path, against, tol: float = 0.0, runs_dir: Path | None = None,
          quiet: bool = False) -> int:
    """Rewrite ``<run>/report.md`` with the section against ``against`` (a folder, a run name or a
    loaded reference), print it and return the exit status: 1 if a metric is outside the
    reference's seed spread or missing (see :mod:`defectlib.course.reproduce`)."""
    ref = against if isinstance(against, reproduce.Results) else reproduce.load(
        reproduce.resolve(against, runs_dir))
    path = write_report(run_dir, ref, tol)
    results = load_run(run_dir)
    run = reproduce.from_run(results, Path(run_dir).name)
    lines, counts = reproduce.section(run, ref, tol)
    if not quiet:
        print(f"report: {path}  ({results.get('summary')})")
        print("\n".join(lines))
    bad = reproduce.failed(counts)
    kind = ("; computed on another CPU kind than the reference: identical numbers are not "
            "expected there" if reproduce.other_kind(run, ref) else "")
    print(f"{'NOT REPRODUCED' if bad else 'REPRODUCED'}: {Path(run_dir).name} against {ref.name}: "
          f"{reproduce.summary(counts)} (tolerance {tol:g}){kind}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="defectlib report",
                                                   description=__doc__.split("\n\n")[0]))
    args = parser.parse_args(argv)
    try:
        run_dir = resolve_run(args.run, args.runs_dir)
        if args.against:
            return check(run_dir, args.against, args.tol, args.runs_dir)
        path = write_report(run_dir)
        results = load_run(run_dir)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    print(f"report: {path}  ({results.get('summary')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
