"""Notebook 02's evaluation of paper 001's models (Sec. 5), by a protocol the paper does not state
and the course chose: thresholds chosen on the validation images, scores on the test images, and
beside them the fixed 0.5 (pixel) / 0.5 (gate), a sigmoid's midpoint and the usual default, which
the course uses as "the paper's setting" (the paper prints no threshold; tags ``paper-threshold``).

- :func:`evaluate_unet`: the U-Net alone on the segmentation task, both Dice definitions at the
  pixel threshold / minimum area chosen for Kaggle Dice, and the pooled IoU per class at its own
  threshold (chosen for mean IoU) and at the fixed 0.5;
- :func:`unet_on_clean`: the gate task's U-Net on validation and test, its own thresholds, and the
  clean test images it marks defect pixels on (what the gate is for);
- :func:`evaluate_gate`: the gate's scores, the gate threshold chosen jointly with the U-Net's,
  ROC AUCs (the gate's, and the U-Net's largest pixel probability used as a score);
- :func:`pipeline_predictions`: every prediction of the two-stage pipeline, both Dice definitions.

The notebook and ``python -m defectlib.experiments.severstal`` (:mod:`.main`) both run these.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...metrics import gate_report, kaggle_dice
from ...metrics.classification import roc_auc
from .data import eval_loader
from .pipeline import (Outputs, apply_thresholds, collect, collect_scores, dice_report, mask_counts, mean_iou,
                       thresholded_iou, tune_thresholds)


@dataclass
class UNetEvaluation:
    """The U-Net alone on one task: ``chosen`` (pixel threshold, min area for Kaggle Dice, on
    validation), ``report`` (:func:`.pipeline.dice_report` at ``chosen``), ``val`` / ``test``
    outputs, ``ious`` per class at ``iou_threshold`` (chosen on validation for mean IoU) and
    ``ious_fixed`` at the fixed pixel threshold (``cfg.pixel_threshold``)."""
    chosen: dict
    report: dict
    val: Outputs
    test: Outputs
    ious: list
    iou_threshold: float
    ious_fixed: list


def evaluate_unet(model, task, cfg, *, seed: int, predict: dict) -> UNetEvaluation:
    """:class:`UNetEvaluation` of ``model`` on ``task`` (``predict``: how to run it, as trained)."""
    val = collect(model, eval_loader(task.val, cfg.seg_batch_size, cfg.tune_limit, seed=seed), **predict)
    chosen, _ = tune_thresholds(val.probs, val.targets, kaggle_dice, None, pixel_grid=cfg.pixel_grid,
                                min_area_grid=cfg.min_area_grid)
    test = collect(model, eval_loader(task.test, cfg.seg_batch_size), **predict)
    report = dice_report(test, pixel_threshold=chosen["pixel_threshold"], min_area=chosen["min_area"])
    best_iou, _ = tune_thresholds(val.probs, val.targets, mean_iou, None, pixel_grid=cfg.pixel_grid)
    iou_threshold = best_iou["pixel_threshold"]
    ious = thresholded_iou(test, iou_threshold)                 # per-(image, class) counts, chunk by chunk
    ious_fixed = thresholded_iou(test, cfg.pixel_threshold)
    return UNetEvaluation(chosen, report, val, test, ious, iou_threshold, ious_fixed)


@dataclass
class CleanImages:
    """The gate task's U-Net: ``val`` / ``test`` outputs, ``chosen`` thresholds (on validation, for
    Kaggle Dice), which clean test images it marks defect pixels on, at the fixed threshold
    (``fp``) and at ``chosen`` (``fp_tuned``), and (made when asked, not kept) its masks ``alone``
    at the fixed pixel threshold."""
    val: Outputs
    test: Outputs
    chosen: dict
    pixel_threshold: float
    fp: torch.Tensor
    fp_tuned: torch.Tensor

    @property
    def alone(self) -> torch.Tensor:
        """The U-Net's masks on the test images at the fixed pixel threshold, bool [N, C, H, W]."""
        return apply_thresholds(self.test.probs, None, 0.0, self.pixel_threshold)

    @property
    def n_clean(self) -> int:
        """The clean test images (at least 1, a denominator)."""
        return max(int((~self.test.defective).sum()), 1)


def unet_on_clean(unet, task, cfg, *, seed: int, predict: dict) -> CleanImages:
    """:class:`CleanImages` of ``unet`` on the gate task ``task``."""
    val = collect(unet, eval_loader(task.val, cfg.seg_batch_size, cfg.tune_limit, seed=seed), **predict)
    chosen, _ = tune_thresholds(val.probs, val.targets, kaggle_dice, None, pixel_grid=cfg.pixel_grid,
                                min_area_grid=cfg.min_area_grid)
    test = collect(unet, eval_loader(task.test, cfg.seg_batch_size), **predict)
    clean = ~test.defective
    _, alone, _ = mask_counts(test.probs, test.targets, None, 0.0, cfg.pixel_threshold)          # the fixed 0.5
    _, tuned, _ = mask_counts(test.probs, test.targets, None, 0.0, chosen["pixel_threshold"], chosen["min_area"])
    marked = lambda pred: torch.from_numpy(pred.sum(1) > 0) & clean  # noqa: E731  (images with a predicted pixel)
    return CleanImages(val, test, chosen, cfg.pixel_threshold, marked(alone), marked(tuned))


@dataclass
class GateEvaluation:
    """The gate with the U-Net: ``val`` / ``test`` outputs with the gate's scores, the thresholds
    ``best`` chosen on validation (gate, pixel, min area, for Kaggle Dice; ``grid``: every point),
    the ROC AUCs of the gate and of the U-Net's largest pixel probability (NaN when the test images
    are all of one kind), and the gate's confusion at each threshold (``reports``)."""
    val: Outputs
    test: Outputs
    best: dict
    grid: list
    gate_auc: float
    unet_auc: float
    reports: dict

    @property
    def both_kinds(self) -> bool:
        return 0 < int(self.test.defective.sum()) < len(self.test.scores)


def evaluate_gate(gate, task, clean: CleanImages, cfg, *, seed: int, predict: dict) -> GateEvaluation:
    """:class:`GateEvaluation` of ``gate`` on ``task``, beside the U-Net outputs of ``clean``; the
    gate's confusion at the fixed threshold and at the chosen one."""
    val_scores = collect_scores(gate, eval_loader(task.val, cfg.cls_batch_size, cfg.tune_limit, gate=True, seed=seed),
                                **predict)
    test_scores = collect_scores(gate, eval_loader(task.test, cfg.cls_batch_size, gate=True), **predict)
    n_val, n_test = min(len(val_scores), len(clean.val.probs)), min(len(test_scores), len(clean.test.probs))
    val = Outputs(clean.val.probs[:n_val], val_scores[:n_val], clean.val.targets[:n_val])
    test = Outputs(clean.test.probs[:n_test], test_scores[:n_test], clean.test.targets[:n_test])
    best, grid = tune_thresholds(val.probs, val.targets, kaggle_dice, val.scores, gate_grid=cfg.gate_grid,
                                 pixel_grid=cfg.pixel_grid, min_area_grid=cfg.min_area_grid)
    both = 0 < int(test.defective.sum()) < len(test.scores)
    gate_auc = roc_auc(test.defective, test.scores) if both else float("nan")
    # a score with no gate at all: the U-Net's largest pixel probability in the image
    # (per chunk, in float16, then float: a conversion that keeps every value and their order)
    unet_auc = roc_auc(test.defective, max_probability(test.probs)) if both else float("nan")
    reports = {t: gate_report(test.defective, test.scores, t)
               for t in dict.fromkeys([cfg.gate_threshold, best["gate_threshold"]])}
    return GateEvaluation(val, test, best, grid, gate_auc, unet_auc, reports)


def max_probability(probs: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Each image's largest pixel probability, float32 [N] (``probs.float().flatten(1).amax(1)``
    without a float32 copy of the whole split)."""
    return torch.cat([probs[i:i + chunk].flatten(1).amax(1) for i in range(0, len(probs), chunk)]).float()


def gate_paper_key(classifier: str) -> str:
    """The paper's confusion table for the gate: Table 3 (ResNet-50) or Table 2 (ResNet-34)."""
    return "severstal/confusion/" + ("resnet50" if classifier == "resnet50" else "resnet34")


def pipeline_predictions(g: GateEvaluation, clean: CleanImages, cfg, encoder: str) -> dict:
    """Every prediction of the pipeline on the gate task's test images, tag (in results.json) ->
    (label, :func:`.pipeline.dice_report` row): predicting nothing, the U-Net alone at the fixed
    and at its own thresholds, the two-stage pipeline at the fixed and at the chosen thresholds,
    and with a perfect gate."""
    best, unet = g.best, clean.chosen
    paper_rep = dice_report(g.test, cfg.gate_threshold, cfg.pixel_threshold)
    tuned_rep = dice_report(g.test, best["gate_threshold"], best["pixel_threshold"], best["min_area"])
    alone_rep = dice_report(g.test, pixel_threshold=unet["pixel_threshold"], min_area=unet["min_area"])
    return {
        "predict-nothing": ("predict nothing", paper_rep["predict nothing"]),
        f"unet-{encoder}/paper-threshold": (f"U-Net alone, fixed threshold ({cfg.pixel_threshold})",
                                            paper_rep["U-Net alone"]),
        f"unet-{encoder}/tuned": (f"U-Net alone, tuned ({unet['pixel_threshold']}, area {unet['min_area']})",
                                  alone_rep["U-Net alone"]),
        "two-stage/paper-thresholds": (f"two-stage, fixed thresholds ({cfg.gate_threshold} / {cfg.pixel_threshold})",
                                       paper_rep["two-stage"]),
        "two-stage/tuned": (f"two-stage, tuned ({best['gate_threshold']} / {best['pixel_threshold']}, "
                            f"area {best['min_area']})", tuned_rep["two-stage"]),
        "two-stage/perfect-gate": (f"two-stage, perfect gate (pixel {best['pixel_threshold']})",
                                   tuned_rep["two-stage, perfect gate"])}
