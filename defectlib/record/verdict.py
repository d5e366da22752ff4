"""Noise- and data-aware verdicts on a paper's claim.

Each paper of the course claims that one arm beats another: DANet phase 5 beats phase 2 (paper 000,
Table 3), the gate + U-Net beats the U-Net alone (paper 001), OCINet beats its Base (paper 003,
Table III), synthetic pre-training + fine-tuning beats real-only training (paper 004, Table 1).
At course budgets the seed alone moves a metric by several points, so the difference of one run
says nothing by itself. :func:`judge` turns both arms' per-seed values into one of

- ``"holds"``: a one-sided paired t-test on the per-seed differences ``d_k = a_k - b_k`` (the same
  seed gives both arms the same split) rejects "no difference" in the claimed direction at
  ``alpha`` (5 %);
- ``"does not hold"``: the same test rejects it in the opposite direction;
- ``"undecided"``: neither: the difference is inside the seed spread;
- ``"cannot decide"``: a single seed, so no spread was measured (the committed seeds may decide);
- ``"decides nothing"``: both arms score worse than the claim's **trivial baseline** (predicting
  nothing, say), so whichever of the two wins, neither is a model worth having and the comparison
  says nothing about the paper's claim, whatever the t-test says (its p is still in the text);
- ``"not tested"``: generated stand-in data, whose numbers mean nothing.

The trivial baseline (``Claim.baseline``, where a claim has one) is judged on the means over the
compared seeds: an arm is *below* it when its mean is strictly worse than the baseline's mean over
the same seeds (lower when higher is better, higher otherwise). No test is run on it: it asks
whether the arms are worth comparing at all, not whether they differ. When only one arm is below,
the status is the t-test's and the text says which arm is below. "not tested" comes first,
"decides nothing" next (one seed included: two arms that both lose to predicting nothing decide
nothing however many seeds ran), then the t-test's statuses.

The statistic (Student, 1908): ``t = mean(d) / (sd(d) / sqrt(n))`` with ``n - 1`` degrees of
freedom, ``sd`` the sample standard deviation. With three seeds a one-sided 5 % test needs
``t > 2.92``: the mean difference must be about three times its standard error.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from scipy import stats

STATUSES = ("holds", "does not hold", "undecided", "cannot decide", "decides nothing", "not tested")

Values = Mapping[int, float] | Sequence[float] | float


@dataclass(frozen=True)
class Verdict:
    """What :func:`judge` decided, with the numbers it decided on."""

    statement: str
    status: str                 # one of STATUSES
    n: int                      # seeds compared
    mean_a: float
    mean_b: float
    mean_diff: float            # mean of a - b, in the metric's unit
    sd_diff: float              # sample sd of a - b (nan for one seed)
    p: float                    # one-sided p in the claimed direction (nan when no test ran)
    text: str
    baseline: float = math.nan  # the trivial baseline's mean over the same seeds (nan: none)
    below: tuple[str, ...] = ()  # the names of the arms whose mean is worse than the baseline

    def __str__(self) -> str:
        return self.text


def _pairs(a: Values, b: Values) -> tuple[list[float], list[float], list]:
    """Per-seed values of both arms, paired by seed (mappings) or by position (sequences)."""
    if isinstance(a, Mapping) != isinstance(b, Mapping):
        raise ValueError("give both arms as {seed: value} mappings or both as sequences")
    if isinstance(a, Mapping):
        seeds = sorted(set(a) & set(b))
        if not seeds:
            raise ValueError(f"the two arms share no seed (seeds {sorted(a)} and {sorted(b)})")
        return [float(a[s]) for s in seeds], [float(b[s]) for s in seeds], seeds
    xs = [float(a)] if isinstance(a, (int, float)) else [float(v) for v in a]
    ys = [float(b)] if isinstance(b, (int, float)) else [float(v) for v in b]
    if len(xs) != len(ys) or not xs:
        raise ValueError(f"the two arms need one value per seed each, got {len(xs)} and {len(ys)}")
    return xs, ys, list(range(len(xs)))


def _baseline_mean(baseline: Values, seeds: list, n: int) -> float:
    """The trivial baseline's mean over the compared ``seeds`` (a mapping) or its ``n`` values."""
    if isinstance(baseline, Mapping):
        missing = [s for s in seeds if s not in baseline]
        if missing:
            raise ValueError(f"the trivial baseline has no value for seed(s) {missing}")
        vals = [float(baseline[s]) for s in seeds]
    else:
        vals = [float(baseline)] if isinstance(baseline, (int, float)) else [float(v) for v in baseline]
        if len(vals) == 1 and n > 1:
            vals = vals * n                                  # one value for every seed: a constant
        if len(vals) != n:
            raise ValueError(f"the trivial baseline needs one value per seed, got {len(vals)} for {n}")
    return sum(vals) / len(vals)


def judge(statement: str, a: Values, b: Values, *, real: bool, higher_is_better: bool = True,
          alpha: float = 0.05, names: tuple[str, str] = ("A", "B"), unit: str = "",
          baseline: Values | None = None, baseline_name: str = "trivial baseline") -> Verdict:
    """Does ``statement`` ("A beats B") hold on these runs? ``a`` and ``b``: the metric of each arm,
    one value per seed (``{seed: value}`` pairs them by seed); ``real``: whether the data were real
    (on a generated stand-in the answer is always "not tested"); ``higher_is_better=False`` for
    losses and errors; ``baseline``: the same metric of the trivial arm (per seed, like ``a``, or
    one constant), called ``baseline_name`` in the text. See the module docstring for the rule."""
    xs, ys, seeds = _pairs(a, b)
    n = len(xs)
    sign = 1.0 if higher_is_better else -1.0
    diffs = [sign * (x - y) for x, y in zip(xs, ys)]         # > 0: in the claimed direction
    mean_a, mean_b = sum(xs) / n, sum(ys) / n
    mean_d = sum(diffs) / n
    sd = math.sqrt(sum((d - mean_d) ** 2 for d in diffs) / (n - 1)) if n > 1 else math.nan
    p = math.nan
    if not real:
        status = "not tested"
    elif n == 1:
        status = "cannot decide"
    elif sd == 0.0:
        status = "undecided" if mean_d == 0 else ("holds" if mean_d > 0 else "does not hold")
        p = 0.0 if mean_d > 0 else 1.0
    else:
        t = mean_d / (sd / math.sqrt(n))
        p = float(stats.t.sf(t, n - 1))                      # P(T >= t): evidence for the claim
        status = "holds" if p < alpha else "does not hold" if 1.0 - p < alpha else "undecided"
    base, below = math.nan, ()
    if baseline is not None:
        base = _baseline_mean(baseline, seeds, n)
        below = tuple(nm for nm, m in zip(names, (mean_a, mean_b)) if sign * (m - base) < 0)
    if len(below) == 2 and status != "not tested":
        status = "decides nothing"
    u = f" {unit}" if unit else ""
    shown = sign * mean_d
    numbers = f"{names[0]} {mean_a:.3g} vs {names[1]} {mean_b:.3g}{u}"
    if n > 1:
        numbers += (f" (means over seeds {', '.join(map(str, seeds))}); difference {shown:+.3g} +- "
                    f"{sd:.2g} (sd over seeds)")
        if not math.isnan(p) and sd > 0:
            numbers += f", one-sided paired t-test p = {p:.3f}"
    else:
        numbers += f", difference {shown:+.3g}"
    why = {"holds": f"the difference is beyond the seed spread at alpha {alpha}",
           "does not hold": f"the difference goes the other way, beyond the seed spread at alpha {alpha}",
           "undecided": "the difference is inside the seed spread",
           "cannot decide": "one seed, so no spread was measured and no difference can be called real",
           "not tested": "generated stand-in data, whose numbers mean nothing"}.get(status, "")
    side = "below" if higher_is_better else "above"
    at = f"{baseline_name} {base:.3g}{u}"
    if status == "decides nothing":
        why = f"both arms {side} the trivial baseline ({at}): this comparison decides nothing, whichever arm wins"
    elif below and status != "not tested":
        other = names[1] if below[0] == names[0] else names[0]
        m = mean_a if below[0] == names[0] else mean_b
        why += (f"; {below[0]} ({m:.3g}) is {side} the trivial baseline ({at}), {other} is not")
    text = f"{statement}: {status.upper()} here; {why}. {numbers}."
    return Verdict(statement, status, n, mean_a, mean_b, mean_d * sign, sd, p, text, base, below)


# --- each paper's claim, as metrics of its notebook's results.json ---------------------------------
@dataclass(frozen=True)
class Claim:
    """The claim "``a`` beats ``b``", both metrics of a notebook's ``results.json``; ``baseline``:
    where a trivial arm exists (predicting nothing, say), its metric in the same ``results.json``,
    called ``baseline_name`` in the verdict (see the module docstring for the rule)."""

    statement: str
    a: str
    b: str
    names: tuple[str, str]
    higher_is_better: bool = True
    baseline: str | None = None
    baseline_name: str = "trivial baseline"


def judge_runs(claims: Sequence[Claim], results: Sequence[Mapping]) -> list[Verdict]:
    """The verdict on each of ``claims`` (a notebook's, from its experiment's record) from its
    ``results.json`` dicts, one per seed (``{"seed": .., "metrics": [{"name", "value", "real"}, ..]}``).
    A claim whose metrics a run does not have (another profile) is left out; a run that has a
    claim's two arms but not its trivial baseline is refused (ValueError): the baseline is recorded
    with the arms, so its absence is a renamed metric, which must not drop the check silently."""
    out = []
    for c in claims:
        a, b, base, real = {}, {}, {}, True
        for r in results:
            m = {x["name"]: x for x in r.get("metrics", [])}
            if c.a in m and c.b in m:
                seed = int(r["seed"])
                a[seed], b[seed] = m[c.a]["value"], m[c.b]["value"]
                real = real and bool(m[c.a].get("real")) and bool(m[c.b].get("real"))
                if c.baseline is not None:
                    if c.baseline not in m:
                        raise ValueError(f"seed {seed} has the arms of {c.statement!r} but not its trivial "
                                         f"baseline {c.baseline!r}")
                    base[seed] = m[c.baseline]["value"]
                    real = real and bool(m[c.baseline].get("real"))
        if a:
            out.append(judge(c.statement, a, b, real=real, higher_is_better=c.higher_is_better, names=c.names,
                             baseline=base if c.baseline is not None else None, baseline_name=c.baseline_name))
    return out


def report(notebook: str, run: Mapping, claims: Sequence[Claim], results_dir: str | Path | None = None,
           committed: bool = True) -> str:
    """Markdown for a notebook's last cell: the verdict on each of its ``claims`` from this run
    (``run``: the :class:`~defectlib.record.Recorder`'s ``data``, one seed, so at best "cannot
    decide"), then the verdicts committed in ``results/<notebook>/seeds.json`` over several seeds
    (``committed=False``: not those, when this run is on other data than theirs)."""
    lines = [f"**This run** (profile `{run.get('profile')}`, seed {run.get('seed')}):", ""]
    lines += [f"- {v.text}" for v in judge_runs(claims, [run])] or ["- no claim's metrics in this run"]
    if not committed:
        return "\n".join(lines)
    if results_dir is None:
        from ..paths import repo_root
        root = repo_root()
        results_dir = root / "results" if root is not None else None
    path = Path(results_dir) / notebook / "seeds.json" if results_dir is not None else None
    if path is not None and path.is_file():
        committed = json.loads(path.read_text())
        seeds = ", ".join(map(str, committed.get("seeds", [])))
        lines += ["", f"**Committed seeds** (`results/{notebook}/seeds.json`: profile `{committed.get('profile')}`, "
                      f"seeds {seeds}):", ""]
        lines += [f"- {v['text']}" for v in committed.get("verdicts", [])] or ["- no verdict recorded"]
    return "\n".join(lines)
