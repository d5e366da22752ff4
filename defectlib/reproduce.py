"""The reproducibility check: does a run reproduce a reference, within the reference's seed noise?

The reference is the committed ``results/`` folder (one ``NN_<name>/`` per notebook holding that
notebook's own ``results.json`` and a ``seeds.json`` with every metric of every seed), one such
notebook folder, or another run folder (``runs/<stamp>-<profile>/`` with a combined
``results.json``). Every metric of the run, for each seed the run used, falls in one class:

- **identical**: equal (within 1e-9) to the reference's value for the same seed;
- **within**: inside the 95 % *prediction interval* for one new seed given the reference's ``n``
  seeds, ``mean +- t(0.975, n - 1) * sd * sqrt(1 + 1/n)`` (Student's t, sample sd; about
  ``mean +- 5 sd`` for three seeds), or, where the reference has that metric for one seed only,
  within ``tol`` of it (``tol`` also widens every interval);
- **outside**: beyond the 95 % interval. One metric in twenty lands there by chance, so these are
  counted, not failed one by one: the run fails when more of them land outside than chance
  explains (more than the 97.5th percentile of a binomial count over the metrics checked);
- **far outside**: beyond the interval at level ``1 - 0.025 / m`` for ``m`` metrics checked
  (Bonferroni), or outside a bound that leaves nothing to chance (a tolerance, a spread of zero
  width, a value that is not a number): one is a failure;
- **speed**: a measurement of the machine, not of the method (images/s, throughput ratios): listed
  with its reference, never a failure, since it changes with the CPU, the GPU and the load.

The two rules split a 5 % budget of false alarms: a run of the same method on another machine (or
with a new seed) fails at most 5 % of the time when its metrics are independent draws from the
reference's distribution (``tests/test_report.py`` checks it by simulation, and that a shifted
model fails). Correlated metrics (IoU and Dice of one model) tend to leave the interval together,
so read a count just over the budget with that in mind.

A metric the reference has for a notebook the run ran, but the run lacks, is **missing**; one only
the run has is **new** (listed, not checked). The check fails on a metric far outside or missing,
on too many outside, or when no metric could be checked at all. Metrics match on (notebook, metric
name, dataset), the notebook being the source notebook (``03_ocinet_nrsd`` for
``03_ocinet_nrsd-seed1``). When the run and the reference were computed on different CPU kinds
(:func:`defectlib.runtime.cpu_kind`) or thread counts, the section says so: bit-identical numbers
are then not expected, moves of about the seed spread are.

    defectlib report runs/20261122T010203Z-cpu --against results/
    defectlib run --profile cpu --only 03 --seed 0 --data-root ~/datasets --check
"""
from __future__ import annotations

import functools
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy import stats

from . import report
from .runtime import machine_line

EXACT = 1e-9  # "identical" allows this absolute difference (float noise of a JSON round trip)
Key = tuple  # (notebook, metric name, dataset label)
STATUSES = ("identical", "within", "outside", "far outside", "missing", "new", "speed")
ORDER = ("far outside", "missing", "outside", "within", "speed", "new", "identical")  # worst first
LEVEL = 0.95   # each metric's prediction interval: "within"
ALPHA = 0.05   # false alarms allowed per check, half to each rule: too many outside, one far outside
SPEED_UNITS = ("images/s", "steps/s", "it/s")
SPEED_WORDS = ("images_per_s", "throughput", "per_s@", "fps")


def machine_dependent(name: str, unit: str = "") -> bool:
    """Does this metric measure the machine (speed) rather than the method?"""
    return unit in SPEED_UNITS or any(w in name.lower() for w in SPEED_WORDS)


@dataclass
class Results:
    """The metrics of a run or of a results folder, per seed, with what each notebook ran with."""
    name: str
    layout: str                                                  # "run", "committed" or "notebook"
    values: dict[Key, dict[Any, Any]] = field(default_factory=dict)  # key -> {seed: value}
    units: dict[Key, str] = field(default_factory=dict)
    seeds: dict[str, list] = field(default_factory=dict)         # notebook -> seeds it was run with
    ran: dict[str, set] = field(default_factory=dict)            # notebook -> seeds that recorded
    settings: dict[str, dict] = field(default_factory=dict)      # notebook -> its own results.json
    meta: dict = field(default_factory=dict)                     # a run's combined results.json

    def spread(self, key: Key) -> dict | None:
        """mean, min, max, sample sd and n of a numeric metric over the seeds; None for fewer
        than 2."""
        vals = [v for v in self.values.get(key, {}).values() if report._num(v)]
        if len(vals) < 2:
            return None
        return {"mean": statistics.fmean(vals), "min": min(vals), "max": max(vals),
                "sd": statistics.stdev(vals), "n": len(vals)}

    def all_seeds(self) -> list:
        return sorted({s for seeds in self.seeds.values() for s in seeds if s is not None})


# --- loading either layout ------------------------------------------------------------------------
def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _seed(value, path: Path):
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: seed {value!r} is not an integer") from None


def _add_metrics(res: Results, nb: str, seed, metrics, path: Path) -> None:
    if not isinstance(metrics, list):
        raise ValueError(f"{path}: 'metrics' must be a list, found {type(metrics).__name__}")
    for i, m in enumerate(metrics):
        if not isinstance(m, dict) or "name" not in m or "value" not in m:
            raise ValueError(f"{path}: metric #{i} needs a 'name' and a 'value', found {m!r}")
        key = (nb, m["name"], report.dataset_label(m))
        res.values.setdefault(key, {})[seed] = m["value"]
        res.units.setdefault(key, m.get("unit") or "")
    res.ran.setdefault(nb, set()).add(seed)


def _add_notebook_dir(res: Results, folder: Path) -> None:
    """One notebook's folder: its ``results.json`` (one seed) and/or ``seeds.json`` (every seed)."""
    own_path, seeds_path = folder / "results.json", folder / "seeds.json"
    if not own_path.is_file() and not seeds_path.is_file():
        raise FileNotFoundError(f"{folder}: neither results.json nor seeds.json")
    nb, own = folder.name, None
    if own_path.is_file():
        own = _read(own_path)
        if "metrics" not in own:
            raise ValueError(f"{own_path}: not a notebook's results.json (no 'metrics')")
        nb = own.get("notebook") or nb
        res.settings[nb] = own
    seeds: list = []
    if seeds_path.is_file():
        spread = _read(seeds_path)
        if not isinstance(spread.get("rows"), list):
            raise ValueError(f"{seeds_path}: not a seeds.json (no list of 'rows')")
        seeds = [_seed(s, seeds_path) for s in spread.get("seeds", [])]
        for i, row in enumerate(spread["rows"]):
            if not isinstance(row, dict) or "name" not in row or not isinstance(row.get("values"),
                                                                                   dict):
                raise ValueError(f"{seeds_path}: row #{i} needs a 'name' and a 'values' dict")
            key = (row.get("notebook") or nb, row["name"], row.get("dataset") or "-")
            for s, v in row["values"].items():
                res.values.setdefault(key, {})[_seed(s, seeds_path)] = v
                res.ran.setdefault(key[0], set()).add(_seed(s, seeds_path))
            res.units.setdefault(key, row.get("unit") or "")
    if own is not None:  # the notebook's own results.json wins for its seed
        seed = _seed(own.get("seed"), own_path)
        _add_metrics(res, nb, seed, own["metrics"], own_path)
        seeds.append(seed)
    res.seeds[nb] = sorted(set(seeds), key=lambda s: (s is None, s or 0))


def from_run(results: dict, name: str | None = None, path: Path | None = None) -> Results:
    """A run's combined ``results.json`` (already loaded)."""
    where = path or "results.json"
    if not isinstance(results.get("notebooks"), list):
        raise ValueError(f"{where}: not a run's results.json (no list of 'notebooks')")
    res = Results(name or results.get("run") or "?", "run", meta=results)
    for i, nb in enumerate(results["notebooks"]):
        if not isinstance(nb, dict) or "notebook" not in nb:
            raise ValueError(f"{where}: notebooks[{i}] has no 'notebook' name")
        source = nb.get("source") or re.sub(r"-seed\d+$", "", nb["notebook"])
        own = nb.get("results")
        seed = nb.get("seed")
        if seed is None:  # runs written before the runner stored each notebook's seed
            seed = (own or {}).get("seed")
        if seed is None and not isinstance(results.get("seed"), list):
            seed = results.get("seed")
        seed = _seed(seed, Path(str(where)))
        res.seeds.setdefault(source, []).append(seed)
        if isinstance(own, dict):
            res.settings.setdefault(source, own)
            _add_metrics(res, source, seed, own.get("metrics", []), Path(str(where)))
    return res


def layout(path: Path) -> str | None:
    """``run``, ``notebook`` or ``committed`` for a folder holding results; None otherwise."""
    path = Path(path)
    if (path / "results.json").is_file():
        return "notebook" if not _is_run(path / "results.json") else "run"
    if (path / "seeds.json").is_file():
        return "notebook"
    if path.is_dir() and any((p / "results.json").is_file() or (p / "seeds.json").is_file()
                             for p in path.iterdir() if p.is_dir()):
        return "committed"
    return None


def _is_run(path: Path) -> bool:
    data = _read(path)
    if "notebooks" not in data and "metrics" not in data:
        raise ValueError(f"{path}: neither a run's combined results.json (no 'notebooks') nor a "
                         "notebook's own (no 'metrics')")
    return "notebooks" in data


def resolve(ref: str | Path, runs_dir: Path | None = None) -> Path:
    """A reference folder from a path (results folder, notebook folder or run), a run name under
    ``runs/``, or ``latest``."""
    if str(ref) != "latest" and layout(Path(ref)):
        return Path(ref)
    try:
        return report.resolve_run(ref, runs_dir)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{ref}: not a results folder (no results.json or seeds.json in it, nor in a "
            f"subfolder) and not a run's name under the runs folder") from None


def load(path: str | Path) -> Results:
    """Load a reference or a run folder in whichever layout it has (see the module docstring)."""
    path = Path(path)
    kind = layout(path)
    if kind is None:
        raise FileNotFoundError(f"{path}: no results.json or seeds.json in it or in its subfolders")
    if kind == "run":
        return from_run(_read(path / "results.json"), path.name, path / "results.json")
    res = Results(path.resolve().name, kind)
    folders = [path] if kind == "notebook" else sorted(
        p for p in path.iterdir() if p.is_dir() and layout(p) == "notebook")
    if not folders:
        raise FileNotFoundError(f"{path}: its subfolders hold runs, not notebook results; "
                                "pass one run folder")
    for folder in folders:
        _add_notebook_dir(res, folder)
    return res


# --- the comparison -------------------------------------------------------------------------------
def _same(a, b) -> bool:
    if report._num(a) and report._num(b):
        return abs(a - b) <= EXACT
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@functools.lru_cache(maxsize=None)
def _t(level: float, df: int) -> float:
    return float(stats.t.ppf(0.5 + level / 2, df))


def prediction_interval(spread: dict, level: float = LEVEL) -> tuple[float, float]:
    """Where one new seed lands with probability ``level``, given ``n`` seeds with this mean and
    sample sd (normal metric): ``mean +- t((1 + level) / 2, n - 1) * sd * sqrt(1 + 1/n)``."""
    half = _t(level, spread["n"] - 1) * spread["sd"] * math.sqrt(1 + 1 / spread["n"])
    return spread["mean"] - half, spread["mean"] + half


def allowed_outside(m: int, level: float = LEVEL, alpha: float = ALPHA / 2) -> int:
    """How many of ``m`` metrics may land outside their ``level`` intervals by chance: the
    smallest ``k`` with P(Binomial(m, 1 - level) > k) <= ``alpha``."""
    k = 0
    while m and stats.binom.sf(k, m, 1 - level) > alpha:
        k += 1
    return k


def classify(value, ref_values: dict, seed, tol: float = 0.0, spread: dict | None = None,
             m: int = 1) -> tuple:
    """``(status, rule, low, high)`` of one value against the reference's ``{seed: value}``;
    ``m``: how many metrics the check compares with a seed spread (it sets "far")."""
    same = ref_values.get(seed, ...)
    if same is not ... and _same(value, same):
        return "identical", "same seed", None, None
    if not report._num(value):
        others = list(ref_values.values())
        ok = same is ... and others and all(_same(value, v) for v in others)
        return ("within" if ok else "far outside"), "equal", None, None
    if spread:
        low, high = prediction_interval(spread)
        low, high, rule = low - tol, high + tol, "prediction interval"
        if low - EXACT <= value <= high + EXACT:
            return "within", rule, low, high
        far_low, far_high = prediction_interval(spread, 1 - ALPHA / 2 / max(m, 1))
        far = not (far_low - tol - EXACT <= value <= far_high + tol + EXACT)
        return ("far outside" if far else "outside"), rule, low, high
    base = same if same is not ... else next(iter(ref_values.values()), None)
    if not report._num(base):
        return "far outside", "tol", None, None
    low, high = base - tol, base + tol
    inside = low - EXACT <= value <= high + EXACT
    return ("within" if inside else "far outside"), "tol", low, high


def compare(run: Results, ref: Results, tol: float = 0.0) -> tuple[list[dict], dict]:
    """One row per (metric, seed of the run), classified against ``ref``; and the counts, with
    ``allowed``: how many may land outside by chance."""
    wanted: dict[tuple, None] = {}
    for nb, seeds in run.seeds.items():
        ref_keys = [k for k in ref.values if k[0] == nb]
        for seed in seeds:
            for key in ref_keys:  # what the reference recorded for this seed (all, if it never ran it)
                if seed not in ref.ran.get(nb, ()) or seed in ref.values[key]:
                    wanted[(key, seed)] = None
            for key, by_seed in run.values.items():
                if key[0] == nb and seed in by_seed:
                    wanted[(key, seed)] = None

    def unit(key):
        return run.units.get(key) or ref.units.get(key, "")

    def statistical(key, seed):  # compared with a seed spread, by chance allowed to land outside
        this = run.values.get(key, {}).get(seed, ...)
        return (this is not ... and report._num(this) and ref.spread(key) is not None
                and not machine_dependent(key[1], unit(key)))
    m = sum(statistical(key, seed) for key, seed in wanted)
    rows, counts = [], dict.fromkeys(STATUSES, 0)
    for key, seed in wanted:
        this = run.values.get(key, {}).get(seed, ...)
        refs = ref.values.get(key, {})
        spread = ref.spread(key)
        if this is ...:
            status, rule, low, high = "missing", "", None, None
        elif not refs:
            status, rule, low, high = "new", "", None, None
        else:
            status, rule, low, high = classify(this, refs, seed, tol, spread, m)
            if status != "identical" and machine_dependent(key[1], unit(key)):
                status = "speed"
        counts[status] += 1
        rows.append({"notebook": key[0], "name": key[1], "dataset": key[2], "seed": seed,
                     "this": None if this is ... else this, "reference": refs.get(seed),
                     "spread": spread, "low": low, "high": high, "rule": rule, "status": status,
                     "unit": unit(key)})
    counts["allowed"] = allowed_outside(m)
    return rows, counts


def failed(counts: dict) -> bool:
    """A metric far outside or missing, more outside than chance explains, or nothing that could
    be checked at all."""
    checked = counts["identical"] + counts["within"] + counts["outside"] + counts["far outside"]
    return bool(counts["far outside"] or counts["missing"] or not checked
                or counts["outside"] > counts.get("allowed", 0))


def summary(counts: dict) -> str:
    return (f"{counts['identical']} identical, {counts['within']} within the seed spread, "
            f"{counts['outside']} outside (up to {counts.get('allowed', 0)} by chance), "
            f"{counts['far outside']} far outside, {counts['missing']} missing from this run, "
            f"{counts['new']} not in the reference, {counts['speed']} speed measurements (not checked)")


# --- the report section ---------------------------------------------------------------------------
def machine_of(res: Results, nb: str) -> dict | None:
    """The machine a notebook's numbers came from (its own results.json, else the run's)."""
    own = (res.settings.get(nb) or {}).get("machine")
    return own or (res.meta.get("host") or {}).get("machine")


def other_kind(run: Results, ref: Results) -> bool:
    """Did any notebook of the run compute on another CPU kind than the reference?"""
    kinds = [(machine_of(run, nb) or {}).get("kind") != (machine_of(ref, nb) or {}).get("kind")
             for nb in run.seeds if nb in ref.ran and machine_of(run, nb) and machine_of(ref, nb)]
    return any(kinds)


def machine_changes(run: Results, ref: Results) -> list[str]:
    """One line per notebook whose run and reference computed on different CPU kinds, kernels or
    thread counts (or where either did not record it): the reason identical numbers are not
    expected there."""
    lines = []
    for nb in run.seeds:
        if nb not in ref.ran:
            continue
        a, b = machine_of(run, nb), machine_of(ref, nb)
        if not a or not b:
            which = "the reference" if not b else "this run"
            lines.append(f"- {nb}: {which} did not record its CPU, so whether both ran the same "
                         "kernels is unknown")
            continue
        changed = [f"{label} {b.get(k)} -> {a.get(k)}" for k, label in
                   (("kind", "CPU kind"), ("aten_capability", "ATen kernels"), ("onednn", "oneDNN"),
                    ("mkl", "MKL"), ("threads", "threads"), ("kernel_env", "kernel settings"))
                   if a.get(k) != b.get(k)]
        if changed:
            lines.append(f"- {nb}: **another machine** ({'; '.join(changed)}): other kernels round "
                         "differently, so identical numbers are not expected and moves of about "
                         "the seed spread are")
    return lines


def _settings_changes(run: Results, ref: Results) -> list[str]:
    lines = []
    for nb in run.seeds:
        a, b = run.settings.get(nb), ref.settings.get(nb)
        if a is None or b is None:
            continue
        for f in ("profile", "device", "data_root", "git_commit"):
            va, vb = a.get(f, run.meta.get(f)), b.get(f, ref.meta.get(f))
            if va != vb:
                lines.append(f"- {nb} {f}: {vb} -> {va}")
        va = a.get("versions") or run.meta.get("versions", {})
        vb = b.get("versions") or ref.meta.get("versions", {})
        lines += [f"- {nb} {lib}: {vb.get(lib)} -> {va.get(lib)}"
                  for lib in sorted(set(va) | set(vb)) if va.get(lib) != vb.get(lib)]
        ca, cb = a.get("config") or {}, b.get("config") or {}
        lines += [f"- {nb} config {k}: {cb.get(k)} -> {ca.get(k)}"
                  for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)]
    return lines


def section(run: Results, ref: Results, tol: float = 0.0) -> tuple[list[str], dict]:
    """The markdown section ``## Against <reference>`` and the counts."""
    rows, counts = compare(run, ref, tol)
    f, b = report.fmt, report._bare
    where = {"committed": "results folder", "notebook": "notebook results folder",
             "run": "run"}[ref.layout]
    lines = [f"## Against {ref.name}", "",
             f"Reference: {where} `{ref.name}`, seeds {', '.join(map(str, ref.all_seeds())) or '?'}; "
             f"this run's seeds: {', '.join(map(str, run.all_seeds())) or '?'}.", "",
             f"{len(rows)} metric values (each metric once per seed): **{summary(counts)}** "
             f"(tolerance {tol:g}).", "",
             "*identical*: equal to the reference for the same seed (within 1e-9). *within*: "
             "inside the 95 % prediction interval for one new seed given the reference's seeds "
             "(mean +- t * sd * sqrt(1 + 1/n)), or within the tolerance of its value where it has "
             "one seed. *outside*: beyond it, as one metric in twenty is by chance; the run fails "
             "only when more land outside than chance explains. *far outside*: beyond the interval "
             "at the Bonferroni level for all the metrics checked, or outside a bound with no room "
             "for chance (a tolerance, a spread of zero width): one fails the run. Same machine "
             "and seed give identical numbers; another CPU kind or a GPU moves them by about the "
             "seed spread.", "",
             f"CPU of this run: {machine_line(machine_of(run, next(iter(run.seeds), '')))}; "
             f"of the reference: {machine_line(machine_of(ref, next(iter(run.seeds), '')))}.", ""]
    lines += machine_changes(run, ref)
    lines += _settings_changes(run, ref)
    shown = sorted((r for r in rows if r["status"] != "identical"),
                   key=lambda r: ORDER.index(r["status"]))
    if shown:
        lines += ["", "| notebook | metric | dataset | seed | this run | reference, same seed | "
                  "reference seeds: min to max (sd) | allowed | status |",
                  "|---|---|---|---|---|---|---|---|---|"]
    for r in shown:
        u, sp = r["unit"], r["spread"]
        seeds = f"{f(sp['min'], u)} to {f(sp['max'], u)} ({b(sp['sd'], u)})" if sp else "-"
        allowed = f"{b(r['low'], u)} to {b(r['high'], u)}" if r["low"] is not None else "-"
        status = r["status"] + (f" ({r['rule']})" if r["status"] == "within" else "")
        by_chance = r["status"] == "outside" and counts["outside"] <= counts["allowed"]
        status = status if r["status"] in ("within", "new", "speed") or by_chance else f"**{status}**"
        lines.append(f"| {r['notebook']} | {r['name']} | {r['dataset']} | {r['seed']} | "
                     f"{f(r['this'], u)} | {f(r['reference'], u)} | {seeds} | {allowed} | {status} |")
    return lines + [""], counts
