"""What notebook 05 reports: the folder as the data check saw it, the leaderboard (every trained
model and the two trivial rows, at the threshold chosen on the validation images, with size, cost and
speed), and the verdict: which model to pick and how sure that is.

Metric names: ``<row>/test/<IoU|Dice|F1|wFm|PA>``, ``<row>/val/IoU``, ``<row>/threshold``,
``<model>/params_M``, ``<model>/GFLOPs@<size>``, ``<model>/images_per_s@<size>``, ``data/...``;
``<row>`` is a key of :data:`.recipe.LABELS` (``otsu`` and ``nothing`` are the trivial rows).

**How sure** (:func:`pick`): the model with the highest validation IoU is picked (the test images
choose nothing). Against the runner-up, the per-image test IoUs are paired (same images) and
resampled ``bootstrap`` times (Efron's bootstrap): the interval of the mean difference says whether
another set of test images like these would likely rank the two the same way. It measures the
test images' noise, not the training's: a second training seed can move a model by a point or more
(notebook 03's seeds), so a verdict over seeds (``defectlib run --seed 0,1,2``: every metric's
spread in its report; :data:`CLAIMS` judged by :func:`defectlib.record.verdict.judge_runs`) is the
stronger statement.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ...record import verdict
from ...record.tables import Col, Row, Table, results
from ...record.verdict import Claim
from ...viz import markdown_table
from .data import NEU_SEG
from .evaluation import METRIC_NOTES, METRICS
from .recipe import LABELS, MODELS


def record_data(rec, data) -> dict:
    """The folder's numbers (images, defective, empty masks, near-duplicate pairs, the split)."""
    s = data.look.summary()
    values = {"images": s["images"], "defective": s["defective"], "empty_masks": s["empty masks"],
              "near_duplicate_pairs": s["near-duplicate pairs"] + s["identical pairs"],
              "defect_share_median": s["defect share, median (%)"],
              **{f"{p}_images": len(ix) for p, ix in data.parts.items()}}
    rec.metrics(values, prefix="data", dataset=data.name, real=data.real)
    for note in data.look.notes + data.notes:
        rec.note(note)
    return values


def record_row(rec, key: str, scores: Mapping, data, measured: Mapping | None = None, size: int | None = None,
               device=None) -> None:
    """One leaderboard row: its test scores (%), validation IoU, threshold and, for a trained model,
    ``measured`` (:func:`.recipe.complexity`: parameters, GFLOPs and images/s at ``size``)."""
    common = dict(dataset=data.name, real=data.real, unit="%")
    rec.metrics({m: scores[m] for m in METRICS}, prefix=f"{key}/test", note=METRIC_NOTES, **common)
    rec.metrics({"IoU": scores["val_IoU"]}, prefix=f"{key}/val", note="picks the threshold", **common)
    if not math.isnan(scores["threshold"]):
        rec.metric(f"{key}/threshold", scores["threshold"], dataset=data.name, real=data.real,
                   note="the highest validation IoU")
    if measured is not None:
        rec.metrics({"params_M": measured["params_M"]}, prefix=key, dataset="-", real=False, unit="M")
        rec.metrics({f"GFLOPs@{size}": measured["GFLOPs"]}, prefix=key, dataset="-", real=False, unit="G",
                    note="one forward pass, 2 FLOPs per multiply-add")
        rec.metrics({f"images_per_s@{size}": measured["images_per_s"]}, prefix=key, dataset="-", real=False,
                    unit="images/s", note=f"{device}, batch 1, fp32, shared machine")


def _cols(size: int) -> list[Col]:
    return [*(Col(m, f"test/{m}") for m in METRICS), Col("threshold", "threshold", fmt="{:.2f}"),
            Col("val IoU", "val/IoU"), Col("params (M)", "params_M", fmt="{:.1f}"),
            Col("GFLOPs", f"GFLOPs@{size}", fmt="{:.1f}"), Col("images/s", f"images_per_s@{size}", fmt="{:.1f}")]


def leaderboard(runs, keys: Sequence[str], size: int, title: str = "") -> Table:
    """The leaderboard of ``keys`` (models, then ``otsu`` and ``nothing``) from one run (a Recorder,
    its ``data`` or a ``results.json`` dict) or several (a list of them, one per seed: each cell is
    then mean +- sd over the seeds)."""
    runs = list(runs) if isinstance(runs, (list, tuple)) else [runs]
    title = title or "Leaderboard (test images, %, at each model's validation threshold)"
    if len(runs) == 1:
        return results(runs[0], [Row(LABELS[k], ours=k) for k in keys], _cols(size), title=title)
    found = [{m["name"]: m["value"] for m in getattr(r, "data", r)["metrics"]} for r in runs]
    rows = []
    for k in keys:
        cells = []
        for c in _cols(size):
            vals = [f[f"{k}/{c.ours}"] for f in found if f"{k}/{c.ours}" in f and f[f"{k}/{c.ours}"] is not None]
            vals = [v for v in vals if not (isinstance(v, float) and math.isnan(v))]
            cells.append("-" if not vals else c.fmt.format(np.mean(vals)) if len(vals) == 1 else
                         f"{c.fmt.format(np.mean(vals))} +- {c.fmt.format(np.std(vals, ddof=1))}")
        rows.append([LABELS[k], *cells])
    seeds = ", ".join(str(getattr(r, "data", r).get("seed")) for r in runs)
    return Table(f"**{title}; mean +- sd over seeds {seeds}**\n\n"
                 + markdown_table(["", *(c.label for c in _cols(size))], rows))


# --- the verdict -----------------------------------------------------------------------------------
#: a difference whose whole interval lies within this many points is a tie
TIE = 0.1


@dataclass(frozen=True)
class Pick:
    """Which model to pick (``best``), against whom (``runner_up``), and how sure (:func:`pick`)."""
    best: str
    runner_up: str | None
    diff: float            # test IoU, best - runner-up, points
    low: float             # 95 % bootstrap interval of diff
    high: float
    ahead: float           # share of resamples in which best is ahead
    margin: float          # best's test IoU above the better trivial row, points
    sure: bool
    text: str


def bootstrap_difference(a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0):
    """Mean of ``a - b`` (paired per image, in points), its 95 % percentile interval over
    ``resamples`` resamples of the images, and the share of resamples with a positive mean."""
    d = 100 * (np.asarray(a, float) - np.asarray(b, float))
    if not len(d):
        return float("nan"), float("nan"), float("nan"), float("nan")
    means = d[np.random.default_rng(seed).integers(0, len(d), (resamples, len(d)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi), float((means > 0).mean())


def pick(rows: Mapping[str, Mapping], real: bool, complexity: Mapping[str, Mapping] | None = None,
         resamples: int = 2000, seed: int = 0) -> Pick:
    """The verdict (module docstring) on ``rows`` (key -> :mod:`.evaluation` scores; the trained
    models and ``otsu`` / ``nothing``); ``complexity`` (key -> :func:`.recipe.complexity`) names the
    faster model when the two are too close to call."""
    trained = sorted((k for k in rows if k in MODELS), key=lambda k: -rows[k]["val_IoU"])
    if not trained:
        raise ValueError("no trained model to pick from")
    best, runner = trained[0], (trained[1] if len(trained) > 1 else None)
    b = rows[best]
    trivial = max(("otsu", "nothing"), key=lambda k: rows[k]["IoU"]) if "otsu" in rows else "nothing"
    margin = b["IoU"] - rows[trivial]["IoU"]
    lines = [f"**Pick {LABELS[best]}**: the highest validation IoU ({b['val_IoU']:.1f} % at threshold "
             f"{b['threshold']:.2f}); on the {b['n_images']} test images IoU {b['IoU']:.1f} %, Dice {b['Dice']:.1f} %, "
             f"pixel F1 {b['F1']:.1f} %."]
    diff = lo = hi = ahead = float("nan")
    sure = margin > 0
    if runner is not None:
        r = rows[runner]
        diff, lo, hi, ahead = bootstrap_difference(b["per_image_iou"], r["per_image_iou"], resamples, seed)
        tie = max(abs(lo), abs(hi)) < TIE
        close = tie or not lo > 0
        faster = f"; {_faster(best, runner, complexity)} is faster at inference." if complexity else "."
        lines.append(f"Against {LABELS[runner]} (validation IoU {r['val_IoU']:.1f} %): test IoU {diff:+.1f} points, "
                     f"95 % interval [{lo:+.1f}, {hi:+.1f}] over {resamples} resamples of the test images, "
                     f"ahead in {100 * ahead:.0f} % of them: "
                     + (f"**a tie**: the two score the same to {TIE} point" + faster if tie else
                        "**sure** on test images like these." if not close else
                        "**not sure**: the two are within the test images' noise" + faster))
        sure = sure and not close
    above = margin > 0
    lines.append(f"Trivial rows: {LABELS[trivial]} scores IoU {rows[trivial]['IoU']:.1f} %, so {LABELS[best]} is "
                 f"{margin:+.1f} points " + ("above it." if above else
                                             "**not above it: no model here is worth deploying yet**."))
    lines.append("One training seed: how much of a gap is training noise is not measured by one run "
                 "(`defectlib run --only 05 --seed 0,1,2` reports every metric's spread over the seeds).")
    if not real:
        lines.append("Generated stand-in data: these numbers exercise the code, they measure nothing.")
        sure = False
    return Pick(best, runner, diff, lo, hi, ahead, margin, sure, " ".join(lines))


def _faster(a: str, b: str, complexity: Mapping[str, Mapping]) -> str:
    speed = {k: complexity[k]["images_per_s"] for k in (a, b) if k in complexity}
    return LABELS[max(speed, key=speed.get)] if speed else LABELS[a]


def record_pick(rec, p: Pick, data) -> str:
    """The verdict as a note and its numbers as metrics; returns its text (Markdown)."""
    rec.metrics({"IoU_gain_over_runner_up": p.diff, "IoU_gain_low": p.low, "IoU_gain_high": p.high,
                 "IoU_above_trivial": p.margin}, prefix="pick", dataset=data.name, real=data.real, unit="points")
    rec.note(p.text)
    return p.text


def record_summary(rec, cfg, profile: str, plan, data) -> str:
    """The run's last notes: what the profile trained and the verdicts on :data:`CLAIMS` (one run
    alone decides nothing), which it returns (Markdown)."""
    rec.note(f"profile {profile}: {', '.join(LABELS[m] for m in cfg.models)} at {cfg.input_size}x{cfg.input_size}, "
             f"{plan.describe(len(data.parts['train']))}, from random weights; {data.source}")
    # the committed seeds were run on binarised NEU-Seg: quoted beside a run on that folder only
    claims = verdict.report("05_your_own_data", rec.data, CLAIMS, committed=data.name == NEU_SEG)
    rec.note(claims)
    return claims


#: the course's claims about its models on a folder: judged on each run by :func:`record_summary`,
#: over seeds by :func:`defectlib.record.verdict.judge_runs` on the seeds' ``results.json``
CLAIMS = (
    Claim("U-Net-ResNet34 beats the Otsu threshold on the test images (IoU)", "unet_resnet34/test/IoU",
          "otsu/test/IoU", ("U-Net-ResNet34", "Otsu"), baseline="nothing/test/IoU",
          baseline_name="predicting nothing"),
    Claim("OCINet beats U-Net-ResNet34 on the test images (IoU)", "ocinet/test/IoU", "unet_resnet34/test/IoU",
          ("OCINet", "U-Net-ResNet34"), baseline="nothing/test/IoU", baseline_name="predicting nothing"),
)
