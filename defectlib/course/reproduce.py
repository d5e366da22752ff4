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
reference's distribution (``tests/test_reproduce_noise.py`` checks it by simulation, and that a shifted
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
import math

from scipy import stats

from .formats import bare, fmt, is_number
from .runs import Results, from_run, layout, resolve  # noqa: F401 - re-exported: the check reads any layout
from .runs import load_results as load  # noqa: F401 - a run or a reference, any layout
from ..runtime import machine_line

EXACT = 1e-9  # "identical" allows this absolute difference (float noise of a JSON round trip)
STATUSES = ("identical", "within", "outside", "far outside", "missing", "new", "speed")
ORDER = ("far outside", "missing", "outside", "within", "speed", "new", "identical")  # worst first
LEVEL = 0.95   # each metric's prediction interval: "within"
ALPHA = 0.05   # false alarms allowed per check, half to each rule: too many outside, one far outside
SPEED_UNITS = ("images/s", "steps/s", "it/s")
SPEED_WORDS = ("images_per_s", "throughput", "per_s@", "fps")


def machine_dependent(name: str, unit: str = "") -> bool:
    """Does this metric measure the machine (speed) rather than the method?"""
    return unit in SPEED_UNITS or any(w in name.lower() for w in SPEED_WORDS)


# --- the comparison -------------------------------------------------------------------------------
def _same(a, b) -> bool:
    if is_number(a) and is_number(b):
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
    if not is_number(value):
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
    if not is_number(base):
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
        return (this is not ... and is_number(this) and ref.spread(key) is not None
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
                  for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k) and k not in CHECKPOINT_KEYS]
    return lines


# where and how often a run keeps checkpoints, and whether it resumed: they change no number
CHECKPOINT_KEYS = ("checkpoint_dir", "checkpoint_every", "resume")


def section(run: Results, ref: Results, tol: float = 0.0) -> tuple[list[str], dict]:
    """The markdown section ``## Against <reference>`` and the counts."""
    rows, counts = compare(run, ref, tol)
    f, b = fmt, bare
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
