"""What notebook 01 reports: each phase's COCO evaluation on the NEU-DET test split, recorded under
``phase<N>/...`` and laid out beside the paper's Table 3 (AP at IoU 0.5 per class and their mean,
paper 000 Sec. IV-B, Eqs. 11-12), and the training plan each phase follows."""
from __future__ import annotations

import math

from ...data import NEUDET
from ...models import danet
from ...papers import lookup
from ...record import verdict
from ...record.tables import Col, Row, results
from ...record.verdict import Claim
from .figures import learning_curve

CLASSES = NEUDET.CLASSES


def record_params(rec, cfg, seed: int = 0) -> dict[int, int]:
    """Every phase's parameter count at the profile's size (``phase<N>/params_M``); returns them."""
    from .recipe import build_model
    counts = {ph: danet.count_parameters(build_model(cfg, ph, len(CLASSES), None, seed)) for ph in danet.PHASES}
    for ph, n in counts.items():
        rec.metric(f"phase{ph}/params_M", n / 1e6, dataset="-", real=False, unit="M",
                   note=f"parameters at this profile's size (width {cfg.width})")
    return counts


def record_phase(rec, phase: int, result, dataset: str, real: bool) -> None:
    """Record phase ``phase``'s :class:`~defectlib.metrics.detection.DetectionResult`: AP50 per
    class (a class with no box in the test split has no AP and is left out), mAP50 beside Table
    3's mAP, COCO's AP over IoU 0.50:0.95 and AR100 (the paper tabulates neither), all in %."""
    ap50 = result.per_class_ap50()
    table3 = f"danet/table3/phase{phase}"
    kept = [c for c in CLASSES if not math.isnan(ap50[c])]
    rec.metrics({f"AP50/{c}": 100 * ap50[c] for c in kept}, prefix=f"phase{phase}", dataset=dataset,
                real=real, unit="%", paper={f"AP50/{c}": f"{table3}/{c}" for c in kept})
    rec.metrics({"mAP50": 100 * result.ap50, "AP": 100 * result.ap, "AR100": 100 * result.ar100},
                prefix=f"phase{phase}", dataset=dataset, real=real, unit="%",
                paper={"mAP50": f"{table3}/mAP"}, note={"AP": "COCO AP over IoU 0.50:0.95"})


def record_curves(rec, histories: dict) -> None:
    """Each phase's learning curve as a note: ``(step, test AP50)`` pairs."""
    for ph, h in histories.items():
        rec.note(f"phase {ph} learning curve (step, test AP50): "
                 + ", ".join(f"({s}, {a:.1f})" for s, a in learning_curve(h)))


def table3(rec):
    """Table 3 analogue: every phase's paper line, ours below the phases this profile trained."""
    rows = [Row(f"{ph}: {name}", ours=f"phase{ph}", paper=f"danet/table3/phase{ph}")
            for ph, name in danet.PHASES.items()]
    cols = [Col(c, f"AP50/{c}", c, "{:.2f}") for c in CLASSES]
    cols += [Col("mAP@0.5", "mAP50", "mAP", "{:.2f}"), Col("AP@[.5:.95]", "AP", None, "{:.2f}")]
    return results(rec, rows, cols, title="Table 3 analogue: AP50 per class (%)")


def training_plan(cfg, steps_per_epoch: int) -> str:
    """The fixed step plan of every phase, in words (it never depends on wall time)."""
    plan = (f"{cfg.epochs} epochs x {steps_per_epoch} steps of {cfg.batch_size} images = "
            f"{cfg.epochs * steps_per_epoch} steps per phase, schedule '{cfg.schedule}'")
    if cfg.schedule == "multistep":
        plan += f" (lr x{cfg.gamma} after epochs {tuple(cfg.milestones)})"
    return plan + f", {cfg.warmup_iters} warm-up steps, precision {cfg.precision}"


def record_summary(rec, results: dict, dataset: str, real: bool, profile: str, dry_run: bool) -> tuple[str, str]:
    """The last word of notebook 01, as notes: each phase's mAP@0.5 beside the paper's, the change
    from phase to phase beside the paper's, and the verdict on the paper's claims
    (:func:`defectlib.record.verdict.report`: one run alone decides nothing). Returns both texts (the
    verdict is Markdown)."""
    ours = {ph: 100 * r.ap50 for ph, r in results.items()}
    paper = {ph: lookup(f"danet/table3/phase{ph}/mAP") for ph in ours}
    lines = [f"{dataset} ({'real' if real else 'stand-in'}), profile {profile}"
             + (" (dry run: the numbers mean nothing)" if dry_run else "") + ": mAP@0.5 "
             + ", ".join(f"phase {ph} {v:.1f} (paper {paper[ph]:.2f})" for ph, v in ours.items())]
    phs = sorted(ours)
    for a, b in zip(phs, phs[1:]):
        lines.append(f"phase {a} -> {b}: {ours[b] - ours[a]:+.1f} points (paper {paper[b] - paper[a]:+.2f})")
    rec.note("; ".join(lines))
    claims = verdict.report("01_danet_neu_det", rec.data, CLAIMS)
    rec.note(claims)
    return "\n".join(lines), claims


#: the paper's claims, judged by :func:`defectlib.record.verdict.judge_runs` over the seeds
CLAIMS = (
    Claim("DANet (phase 5) beats ResNet-50-FPN + RoIAlign (phase 2) in AP50 (paper 000, Table 3)",
          "phase5/mAP50", "phase2/mAP50", ("phase 5", "phase 2")),
)
