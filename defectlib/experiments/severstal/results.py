"""What notebook 02 reports, and its tables beside the paper's numbers (paper 001): the U-Net alone
on the segmentation task (both Dice definitions, per-class Dice and IoU), the gate's confusion
rates beside Tables 2 / 3, and each prediction of the two-stage pipeline beside the paper's
0.48 -> 0.71 (Sec. 1, the author's Dice) and Table 1's EfficientNet-B3 U-Net (0.607)."""
from __future__ import annotations

import numpy as np

from ...record.tables import Col, Row, results
from ...record.verdict import Claim

DICE_COLS = [Col("Kaggle Dice (image x class)", "kaggle_dice", None, "{:.3f}"),
             Col("author's Dice (pooled per image)", "author_dice", "Dice", "{:.3f}")]
GATE_RATES = ("recall", "precision", "accuracy", "specificity")
#: the paper's numbers for the U-Net alone, by encoder (Table 1: only EfficientNet-B3's Dice)
UNET_PAPER = {"efficientnet_b3": "severstal/table1/efficientnet-b3"}


def record_segmentation(rec, task, encoder: str, ev, fixed_threshold: float) -> None:
    """The U-Net alone on ``task``'s test images (``ev``: :class:`.evaluation.UNetEvaluation`):
    Kaggle and the author's Dice of it and of predicting nothing at the pixel threshold / minimum
    area chosen on validation, Kaggle Dice per class, the pooled IoU per class at the threshold
    chosen on validation for IoU, its mean, and the mean at the fixed ``fixed_threshold`` (the
    usual 0.5, the course's "paper setting": the paper prints no threshold)."""
    name, real, n_test = task.dataset, task.real, len(ev.test)
    seg = f"{name}/segmentation"
    for row, tag in (("predict nothing", "predict-nothing"), ("U-Net alone", f"unet-{encoder}")):
        paper = UNET_PAPER.get(encoder) if row == "U-Net alone" else None
        rec.metrics({"kaggle_dice": ev.report[row]["kaggle"]}, prefix=f"{seg}/{tag}", dataset=name, real=real,
                    note=f"{n_test} test images; pixel threshold {ev.chosen['pixel_threshold']} (val)")
        rec.metrics({"author_dice": ev.report[row]["author"]}, prefix=f"{seg}/{tag}", dataset=name, real=real,
                    paper={"author_dice": f"{paper}/Dice" if paper else None},
                    note="channels pooled per image, smoothed (the author's code)")
    unet = f"{seg}/unet-{encoder}"
    rec.metrics(dict(zip(task.class_names, ev.report["U-Net alone"]["kaggle_per_class"])),
                prefix=f"{unet}/kaggle_dice", dataset=name, real=real)
    rec.metrics({c: 100 * v for c, v in zip(task.class_names, ev.ious)}, prefix=f"{unet}/iou", dataset=name,
                real=real, unit="%",
                note=f"pixels pooled over {n_test} test images, pixel threshold {ev.iou_threshold} (val)")
    rec.metrics({"mean_iou": 100 * float(np.mean(ev.ious))}, prefix=unet, dataset=name, real=real, unit="%",
                note=f"mean over the defect classes of the pooled IoU, pixel threshold {ev.iou_threshold} chosen "
                     "on val for IoU")
    rec.metrics({f"mean_iou@{fixed_threshold}": 100 * float(np.mean(ev.ious_fixed))}, prefix=unet, dataset=name,
                real=real, unit="%",
                note=f"the same at the fixed pixel threshold {fixed_threshold}, no minimum area")


def segmentation_table(rec, task, encoder: str):
    """Predicting nothing and the U-Net alone, both Dice definitions (Table 1's where it has one)."""
    seg = f"{task.dataset}/segmentation"
    rows = [Row("predict nothing", ours=f"{seg}/predict-nothing"),
            Row(f"U-Net-{encoder} alone", ours=f"{seg}/unet-{encoder}", paper=UNET_PAPER.get(encoder))]
    return results(rec, rows, DICE_COLS, title=f"{task.dataset} test images, U-Net-{encoder}")


def record_gate(rec, task, classifier: str, reports: dict, paper_gate_threshold: float, paper_key: str) -> None:
    """The gate's recall, precision, accuracy and specificity (%) at each threshold of ``reports``
    (threshold -> :class:`~defectlib.metrics.GateReport`): ``paper-threshold`` at the fixed one
    (the course's "paper setting"), ``tuned-threshold`` at the one chosen on validation, beside
    Table 2 / 3 (``paper_key``)."""
    for t, r in reports.items():
        kind = "paper-threshold" if t == paper_gate_threshold else "tuned-threshold"
        rates = (r.recall, r.precision, r.accuracy, r.tn / max(r.tn + r.fp, 1))
        rec.metrics({k: 100 * v for k, v in zip(GATE_RATES, rates)}, prefix=f"{task.dataset}/gate-{classifier}/{kind}",
                    paper={k: f"{paper_key}/{k}" for k in GATE_RATES}, dataset=task.dataset, real=task.real,
                    unit="%", note=f"gate threshold {t}; TP/FN/FP/TN = {r.tp}/{r.fn}/{r.fp}/{r.tn}")


def gate_table(rec, task, classifier: str, reports: dict, paper_gate_threshold: float, paper_key: str):
    """The gate's rates beside the paper's (false-negative rate = 100 - recall)."""
    rows = [Row(f"{classifier} gate, Severstal", paper=paper_key)]
    rows += [Row(f"{classifier} gate, {task.dataset}, t = {t}",
                 ours=f"{task.dataset}/gate-{classifier}/"
                      f"{'paper-threshold' if t == paper_gate_threshold else 'tuned-threshold'}") for t in reports]
    return results(rec, rows, [Col(k, k, k) for k in ("recall", "specificity", "precision", "accuracy")],
                   title="The gate's confusion rates (%), the paper's Table 2 / 3 beside ours")


#: the author's Dice the paper's introduction reports (Sec. 1) for the U-Net alone and the two-stage
#: pipeline; tags "unet-<encoder>/paper-threshold" and "unet-<encoder>/tuned" are the U-Net alone
TWO_STAGE_PAPER = {"two-stage/paper-thresholds": "severstal/intro/two-stage/Dice",
                   "two-stage/tuned": "severstal/intro/two-stage/Dice"}


def _pipeline_paper(tag: str) -> str | None:
    if tag.startswith("unet-") and tag.rsplit("/", 1)[-1] in ("paper-threshold", "tuned"):
        return "severstal/intro/unet/Dice"
    return TWO_STAGE_PAPER.get(tag)


def record_pipeline(rec, task, predictions: dict, n_test: int) -> None:
    """Each prediction of the pipeline (tag -> (label, dice_report row)) on ``task``'s test
    images: Kaggle Dice and the author's, the latter beside the paper's Sec. 1 numbers (predicting
    nothing has none: its ~0.86 on Severstal is Kaggle's metric, not paper 001's, see
    docs/papers.md#severstal-two-stage)."""
    for tag, (_, r) in predictions.items():
        rec.metrics({"kaggle_dice": r["kaggle"]}, prefix=f"{task.dataset}/pipeline/{tag}", dataset=task.dataset,
                    real=task.real, note=f"{n_test} test images, Kaggle per image x class")
        rec.metrics({"author_dice": r["author"]}, prefix=f"{task.dataset}/pipeline/{tag}",
                    paper={"author_dice": _pipeline_paper(tag)}, dataset=task.dataset, real=task.real,
                    note="the author's pooled, smoothed Dice (the paper's 0.48 -> 0.71)")


def pipeline_table(rec, task, predictions: dict):
    """Every prediction of the pipeline, then the paper's lines: Sec. 1's U-Net alone and two-stage
    (the author's Dice on Severstal) and Table 1's EfficientNet-B3 U-Net."""
    rows = [Row(label, ours=f"{task.dataset}/pipeline/{tag}") for tag, (label, _) in predictions.items()]
    rows += [Row("U-Net alone (Severstal, Sec. 1)", paper="severstal/intro/unet"),
             Row("two-stage (Severstal, Sec. 1)", paper="severstal/intro/two-stage"),
             Row("EfficientNet-B3 U-Net alone (Severstal, Table 1)", paper="severstal/table1/efficientnet-b3")]
    return results(rec, rows, DICE_COLS, title=f"{task.dataset} test images: Dice of each prediction")


def record_scores(rec, seg_task, gate_task, cfg, encoder: str, g, clean) -> None:
    """The threshold-free scores of the gate task (``g``: :class:`.evaluation.GateEvaluation`):
    the ROC AUC of the U-Net's largest pixel probability and of the gate, the share of clean test
    images the U-Net alone marks (``clean``: :class:`.evaluation.CleanImages`); the thresholds
    chosen and the datasets, as notes."""
    import torch
    name, real, n = gate_task.dataset, gate_task.real, len(g.test.scores)
    rec.metric(f"{name}/unet-{encoder}/max-probability-roc_auc", g.unet_auc, dataset=name, real=real,
               note=f"{n} test images: the U-Net's largest pixel probability as a defective score")
    rec.metric(f"{name}/gate-{cfg.classifier}/roc_auc", g.gate_auc, dataset=name, real=real,
               note=f"{n} test images, clean vs defective, threshold-free")
    rec.metric(f"{name}/pipeline/unet-alone/clean-images-with-false-positives", 100 * float(clean.fp.sum()) / clean.n_clean,
               dataset=name, real=real, unit="%", note=f"pixel threshold {cfg.pixel_threshold}")
    best, unet = g.best, clean.chosen
    rec.note(f"thresholds chosen on validation: {name} gate {best['gate_threshold']}, pixel {best['pixel_threshold']}, "
             f"min area {best['min_area']}; U-Net alone pixel {unet['pixel_threshold']}, min area {unet['min_area']}")
    rec.note(f"datasets: segmentation {seg_task.describe()}; gate {gate_task.describe()}")
    rec.note(f"torch CPU threads: {torch.get_num_threads()}")


#: the trivial arm of the MTD pipeline claims: an empty mask for every image (recorded by
#: :func:`record_pipeline` with the arms, on the same test images)
PREDICT_NOTHING = "MTD/pipeline/predict-nothing/author_dice"

#: the paper's claims, judged by :func:`defectlib.record.verdict.judge_runs` over the seeds; an arm
#: whose author's Dice is below predicting nothing's is no segmentation worth having, so both are
#: judged against it too
CLAIMS = (
    Claim("the gate + U-Net beats the U-Net alone on MTD, author's Dice at 0.5 / 0.5 (paper 001, Sec. 1)",
          "MTD/pipeline/two-stage/paper-thresholds/author_dice",
          "MTD/pipeline/unet-resnet34/paper-threshold/author_dice", ("two-stage", "U-Net alone"),
          baseline=PREDICT_NOTHING, baseline_name="predict nothing"),
    Claim("the gate + U-Net beats the U-Net alone on MTD, thresholds tuned on validation",
          "MTD/pipeline/two-stage/tuned/author_dice", "MTD/pipeline/unet-resnet34/tuned/author_dice",
          ("two-stage", "U-Net alone"), baseline=PREDICT_NOTHING, baseline_name="predict nothing"),
)
