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
- ``"not tested"``: generated stand-in data, whose numbers mean nothing.

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

STATUSES = ("holds", "does not hold", "undecided", "cannot decide", "not tested")

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


def judge(statement: str, a: Values, b: Values, *, real: bool, higher_is_better: bool = True,
          alpha: float = 0.05, names: tuple[str, str] = ("A", "B"), unit: str = "") -> Verdict:
    """Does ``statement`` ("A beats B") hold on these runs? ``a`` and ``b``: the metric of each arm,
    one value per seed (``{seed: value}`` pairs them by seed); ``real``: whether the data were real
    (on a generated stand-in the answer is always "not tested"); ``higher_is_better=False`` for
    losses and errors. See the module docstring for the rule."""
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
           "not tested": "generated stand-in data, whose numbers mean nothing"}[status]
    text = f"{statement}: {status.upper()} here; {why}. {numbers}."
    return Verdict(statement, status, n, mean_a, mean_b, mean_d * sign, sd, p, text)


# --- each paper's claim, as metrics of its notebook's results.json ---------------------------------
@dataclass(frozen=True)
class Claim:
    """The claim "``a`` beats ``b``", both metrics of a notebook's ``results.json``."""

    statement: str
    a: str
    b: str
    names: tuple[str, str]
    higher_is_better: bool = True


def judge_runs(claims: Sequence[Claim], results: Sequence[Mapping]) -> list[Verdict]:
    """The verdict on each of ``claims`` (a notebook's, from its experiment's record) from its
    ``results.json`` dicts, one per seed (``{"seed": .., "metrics": [{"name", "value", "real"}, ..]}``).
    A claim whose metrics a run does not have (another profile) is left out."""
    out = []
    for c in claims:
        a, b, real = {}, {}, True
        for r in results:
            m = {x["name"]: x for x in r.get("metrics", [])}
            if c.a in m and c.b in m:
                a[int(r["seed"])], b[int(r["seed"])] = m[c.a]["value"], m[c.b]["value"]
                real = real and bool(m[c.a].get("real")) and bool(m[c.b].get("real"))
        if a:
            out.append(judge(c.statement, a, b, real=real, higher_is_better=c.higher_is_better, names=c.names))
    return out


def report(notebook: str, run: Mapping, claims: Sequence[Claim], results_dir: str | Path | None = None) -> str:
    """Markdown for a notebook's last cell: the verdict on each of its ``claims`` from this run
    (``run``: the :class:`~defectlib.record.Recorder`'s ``data``, one seed, so at best "cannot
    decide"), then the verdicts committed in ``results/<notebook>/seeds.json`` over several seeds."""
    lines = [f"**This run** (profile `{run.get('profile')}`, seed {run.get('seed')}):", ""]
    lines += [f"- {v.text}" for v in judge_runs(claims, [run])] or ["- no claim's metrics in this run"]
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
