"""Notebook 02's evaluation of paper 001's models (Sec. 5), by a protocol the paper does not state
and the course chose: thresholds chosen on the validation images, scores on the test images, and
beside them the fixed 0.5 (pixel) / 0.5 (gate), a sigmoid's midpoint and the usual default, which
the course uses as "the paper's setting" (the paper prints no threshold; tags ``paper-threshold``).

- :func:`evaluate_unet`: the U-Net alone on the segmentation task, both Dice definitions at the
  pixel threshold / minimum area chosen for Kaggle Dice, and the pooled IoU per class at its own
  threshold (chosen for mean IoU) and at the fixed 0.5;
- :func:`unet_on_clean`: the gate task's U-Net on validation and test, its own thresholds, and the
  clean test images it marks defect pixels on (what the gate is for); on the segmentation task's
  own U-Net it reuses :func:`evaluate_unet`'s passes;
- :func:`evaluate_gate`: the gate's scores, the gate threshold chosen jointly with the U-Net's,
  ROC AUCs (the gate's, and the U-Net's largest pixel probability used as a score);
- :func:`pipeline_predictions`: every prediction of the two-stage pipeline, both Dice definitions.

Memory: each split is reduced image by image as the U-Net runs over it (:func:`count`) to pixel
counts per (image, pixel threshold, class), each image's largest probability and the gate's
score; of the maps it keeps only those of the few images the notebook's figures draw (:class:`Keep`,
chosen by index or by a bounded top-k as the split streams by), so nothing kept grows with the
split (float16 maps of a split of the paper's 1,885 strips of 256x1600 were 6 GB). The scores are
those of the maps, to the last bit. :func:`pipeline_masks` runs the U-Net again, batch by batch,
for a submission file.

The notebook and ``python -m defectlib.experiments.severstal`` (:mod:`.main`) both run these.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ...metrics import gate_report, kaggle_dice
from ...metrics.classification import roc_auc
from .data import eval_loader, loading
from .pipeline import (grid_table, kept_counts, pair_dice, per_class, probabilities, count_scorers, apply_thresholds,
                       collect, collect_scores, dice_report, mean_iou, thresholded_iou)

SHOWN = 4   # the images each of notebook 02's sample figures draws
#: the pixel thresholds of the notebook's threshold curves, 0.05 ... 0.95 (every split is counted at them)
CURVE_GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))


# --- a split, counted as it is predicted -----------------------------------------------------------
@dataclass
class Counts:
    """A split's outputs, reduced image by image (:func:`count`): ``pred`` / ``inter`` int64
    ``[N, T, C]`` the pixels at or above each of the ``thresholds`` (ascending) and of those the
    true ones, ``true`` int64 ``[N, C]`` the true pixels, ``max_prob`` float32 ``[N]`` each image's
    largest pixel probability, ``scores`` ``[N]`` p(defective) or None, and ``samples``
    ``{image index: (float16 probabilities, bool target) [C, H, W]}`` of the images kept for
    figures. :func:`.pipeline.dice_report` and :func:`.pipeline.thresholded_iou` score it as they
    score :class:`.pipeline.Outputs`, to the last bit."""
    thresholds: tuple[float, ...]
    pred: np.ndarray
    inter: np.ndarray
    true: np.ndarray
    max_prob: torch.Tensor
    scores: torch.Tensor | None = None
    samples: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.true)

    @property
    def defective(self) -> torch.Tensor:
        return torch.from_numpy(self.true.sum(1) > 0)

    def raw(self, pixel_threshold) -> tuple[np.ndarray, np.ndarray]:
        """(predicted pixels, true positives) int64 ``[N, C]`` at ``pixel_threshold`` (one, or one
        per class), which must be one of the counted ``thresholds`` (compared in float32, as the
        masks compare them)."""
        c = self.true.shape[1]
        wanted = per_class(pixel_threshold, c, "cpu").view(c).tolist()
        column = {v: k for k, v in enumerate(torch.tensor(self.thresholds, dtype=torch.float32).tolist())}
        missing = [t for t in wanted if t not in column]
        if missing:
            raise ValueError(f"pixel threshold {pixel_threshold} was not counted (counted: {self.thresholds})")
        k = np.array([column[t] for t in wanted])
        return self.pred[:, k, np.arange(c)], self.inter[:, k, np.arange(c)]

    def at(self, pixel_threshold=0.5, min_area=0, scores: torch.Tensor | None = None,
           gate_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(true positives, predicted pixels, true pixels) int64 ``[N, C]`` of
        :func:`.pipeline.apply_thresholds`'s masks (a gate or a minimum area only empties whole
        class masks): what :func:`.pipeline.mask_counts` counts on the maps."""
        pred, inter = self.raw(pixel_threshold)
        return (*kept_counts(inter, pred, scores, gate_threshold, min_area), self.true)

    def table(self, metric, scores: torch.Tensor | None = None,
              gate_grid=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), pixel_grid=(0.3, 0.4, 0.5, 0.6, 0.7),
              min_area_grid=(0,)) -> tuple[dict, list[dict]]:
        """:func:`.pipeline.tune_thresholds` (``metric``: ``kaggle_dice`` or ``mean_iou``) from
        the counts: ``(best, table)``, the same to the last bit."""
        fast = count_scorers().get(metric)
        if fast is None:
            raise ValueError(f"{getattr(metric, '__name__', metric)}: counts score kaggle_dice and mean_iou only")
        gates = (None,) if scores is None else tuple(gate_grid)
        table = grid_table([self.raw(p) for p in pixel_grid], self.true, fast, scores, gates, pixel_grid,
                            min_area_grid)
        return dict(max(table, key=lambda r: r["score"])), table

    def take(self, n: int, scores: torch.Tensor | None = None) -> Counts:
        """The first ``n`` images, with ``scores`` (the gate's) when given."""
        return Counts(self.thresholds, self.pred[:n], self.inter[:n], self.true[:n], self.max_prob[:n],
                      scores if scores is not None else None if self.scores is None else self.scores[:n],
                      {i: v for i, v in self.samples.items() if i < n})

    def maps(self, indices) -> torch.Tensor:
        """The kept probabilities of images ``indices``, float16 ``[K, C, H, W]``."""
        return torch.stack([self.samples[int(i)][0] for i in indices])


class Keep:
    """Which maps :func:`count` keeps: those of the (at most) ``k`` images with the smallest
    ``key``, ``key(part)`` giving a sort key per image of a batch's :class:`Counts` (None: not a
    candidate); ties go to the first image. ``indices``: the kept images in that order."""

    def __init__(self, k: int, key):
        self.k, self.key, self.ranked = k, key, []

    def offer(self, start: int, part: Counts) -> None:
        new = [(key, start + i) for i, key in enumerate(self.key(part)) if key is not None]
        self.ranked = sorted(self.ranked + new)[: self.k]

    @property
    def indices(self) -> list[int]:
        return [i for _, i in self.ranked]


def _reduce(probs: torch.Tensor, targets: torch.Tensor, thresholds: tuple[float, ...]):
    """One batch as :class:`Counts` fields (torch, on the batch's device): per image and class, the
    pixels at or above each threshold and of those the true ones, from each pixel's rank among the
    thresholds (one pass: ``p >= t_k`` exactly when more than ``k`` thresholds are ``<= p``, the
    float32 comparison of the masks); the true pixels; each image's largest probability."""
    b, c = probs.shape[:2]
    edges = torch.tensor(thresholds, dtype=torch.float32, device=probs.device)
    t = len(edges)
    pred = torch.zeros(b, t, c, dtype=torch.int64, device=probs.device)
    inter = torch.zeros_like(pred)
    offset = (torch.arange(c, device=probs.device) * (t + 1)).view(c, 1)
    for i in range(b):                              # an image at a time: its ranks take 8 bytes a pixel
        p = probs[i].to(torch.float32, memory_format=torch.contiguous_format).view(c, -1)   # channels_last too
        rank = torch.bucketize(p, edges, right=True).masked_fill_(p.isnan(), 0) + offset
        for out, keys in ((pred, rank), (inter, rank[targets[i].reshape(c, -1)])):
            hist = torch.bincount(keys.flatten(), minlength=c * (t + 1)).view(c, t + 1)
            out[i] = hist.flip(1).cumsum(1).flip(1)[:, 1:].T      # pixels ranked above k, k = 0 .. t-1
    true = torch.count_nonzero(targets.reshape(b, c, -1), dim=2)
    return pred, inter, true, probs.reshape(b, -1).amax(1).float()


def count(segmenter: nn.Module, loader, thresholds, classifier: nn.Module | None = None, keep=(),
          device="cpu", max_batches: int | None = None, progress: bool = True, precision: str = "fp32",
          channels_last: bool = False) -> Counts:
    """:func:`.pipeline.collect`'s pass over ``loader`` (the same forward pass, the same float16
    probabilities), each batch reduced to :class:`Counts` at ``thresholds`` as it is made, keeping
    the maps of the images ``keep`` (:class:`Keep`) chooses: nothing else of the split's size."""
    from ...engine import predict
    thresholds = tuple(sorted({float(t) for t in thresholds}))
    models = nn.ModuleDict({"seg": segmenter} if classifier is None else {"seg": segmenter, "cls": classifier})
    samples, seen = {}, [0]

    def forward(m, batch, dev):
        x = batch[0].to(dev)
        return {name: net(x) for name, net in m.items()}

    def output(out, batch):
        probs = probabilities(out["seg"]).half()
        targets = batch[1].to(probs.device).bool()
        part = _reduce(probs, targets, thresholds)
        start = seen[0]
        seen[0] += len(probs)
        here = Counts(thresholds, *(a.cpu().numpy() for a in part[:3]), part[3].cpu())
        for k in keep:
            k.offer(start, here)
        wanted = {i for k in keep for i in k.indices}
        for i in set(samples) - wanted:
            del samples[i]
        for i in wanted - set(samples):               # kept images of earlier batches are already there
            samples[i] = tuple(a[i - start].cpu().clone(memory_format=torch.contiguous_format)
                               for a in (probs, targets))
        return (*part, probabilities(out["cls"].reshape(len(batch[0]))) if "cls" in out else None)
    pred, inter, true, max_prob, scores = predict(models, loader, device, max_batches, forward, output,
                                                  progress=progress, precision=precision,
                                                  channels_last=channels_last)
    return Counts(thresholds, pred.numpy(), inter.numpy(), true.numpy(), max_prob, scores, samples)


def counted_thresholds(cfg) -> tuple[float, ...]:
    """The pixel thresholds every split is counted at: the profile's ``pixel_grid`` (searched on
    validation), its fixed ``pixel_threshold`` and :data:`CURVE_GRID` (the notebook's curves)."""
    grid = [float(t) for p in cfg.pixel_grid for t in np.atleast_1d(p)]
    return tuple(sorted({*CURVE_GRID, *grid, float(cfg.pixel_threshold)}))


def _loader(ds, cfg, batch_size: int, limit: int | None = None, gate: bool = False, seed: int = 0):
    """:func:`.data.eval_loader` with the profile's loader workers and pinned memory."""
    return eval_loader(ds, batch_size, limit, gate=gate, seed=seed, **loading(cfg))


def _passes(model, task, cfg, seed: int, predict: dict):
    """The U-Net over validation (its thresholds, chosen for Kaggle Dice) then test, keeping the maps
    of the test images the notebook draws (``shown``): ``"worst"``, the lowest Kaggle Dice at the
    chosen thresholds; ``"marked"``, the first clean ones with a pixel at the fixed threshold;
    ``"clean"``, the first clean ones; ``"first"``, the first batch."""
    thresholds = counted_thresholds(cfg)
    val = count(model, _loader(task.val, cfg, cfg.seg_batch_size, cfg.tune_limit, seed=seed), thresholds, **predict)
    chosen, _ = val.table(kaggle_dice, pixel_grid=cfg.pixel_grid, min_area_grid=cfg.min_area_grid)

    def clean(part, marked=False):
        ok = part.true.sum(1) == 0
        return [0 if k else None for k in (ok & (part.at(cfg.pixel_threshold)[1].sum(1) > 0) if marked else ok)]
    keep = {"worst": Keep(SHOWN, lambda part: [float(d.mean()) for d in pair_dice(
                *part.at(chosen["pixel_threshold"], chosen["min_area"]))]),
            "marked": Keep(SHOWN, lambda part: clean(part, marked=True)), "clean": Keep(SHOWN, clean),
            "first": Keep(cfg.seg_batch_size, lambda part: [0] * len(part))}
    test = count(model, _loader(task.test, cfg, cfg.seg_batch_size), thresholds, keep=keep.values(), **predict)
    return val, chosen, test, {name: k.indices for name, k in keep.items()}


# --- the notebook's evaluations ------------------------------------------------------------------
@dataclass
class UNetEvaluation:
    """The U-Net alone on one task: ``chosen`` (pixel threshold, min area for Kaggle Dice, on
    validation), ``report`` (:func:`.pipeline.dice_report` at ``chosen``), ``val`` / ``test``
    :class:`Counts`, ``ious`` per class at ``iou_threshold`` (chosen on validation for mean IoU),
    ``ious_fixed`` at the fixed pixel threshold (``cfg.pixel_threshold``), and ``shown``: the test
    images whose maps ``test.samples`` keeps (see :func:`_passes`)."""
    chosen: dict
    report: dict
    val: Counts
    test: Counts
    ious: list
    iou_threshold: float
    ious_fixed: list
    shown: dict = field(default_factory=dict)

    @property
    def worst(self) -> list[int]:
        """The :data:`SHOWN` test images of the lowest Kaggle Dice at ``chosen``, the lowest first."""
        return self.shown["worst"]

    def image_dice(self) -> np.ndarray:
        """Kaggle Dice of each test image at ``chosen``, float64 ``[N]``."""
        return pair_dice(*self.test.at(self.chosen["pixel_threshold"], self.chosen["min_area"])).mean(1)


def evaluate_unet(model, task, cfg, *, seed: int, predict: dict) -> UNetEvaluation:
    """:class:`UNetEvaluation` of ``model`` on ``task`` (``predict``: how to run it, as trained)."""
    val, chosen, test, shown = _passes(model, task, cfg, seed, predict)
    report = dice_report(test, pixel_threshold=chosen["pixel_threshold"], min_area=chosen["min_area"])
    best_iou, _ = val.table(mean_iou, pixel_grid=cfg.pixel_grid)
    iou_threshold = best_iou["pixel_threshold"]
    ious = thresholded_iou(test, iou_threshold)
    ious_fixed = thresholded_iou(test, cfg.pixel_threshold)
    return UNetEvaluation(chosen, report, val, test, ious, iou_threshold, ious_fixed, shown)


@dataclass
class CleanImages:
    """The gate task's U-Net: ``val`` / ``test`` :class:`Counts`, ``chosen`` thresholds (on
    validation, for Kaggle Dice), which clean test images it marks defect pixels on, at the fixed
    threshold (``fp``) and at ``chosen`` (``fp_tuned``), and ``shown``: the first :data:`SHOWN`
    of the former (the first clean ones when there are none), whose masks :meth:`alone` gives."""
    val: Counts
    test: Counts
    chosen: dict
    pixel_threshold: float
    fp: torch.Tensor
    fp_tuned: torch.Tensor
    shown: list = field(default_factory=list)

    def alone(self, k: int) -> torch.Tensor:
        """The U-Net's mask of test image ``k`` (one of ``shown``) at the fixed pixel threshold,
        bool ``[C, H, W]``."""
        return apply_thresholds(self.test.maps([k]), None, 0.0, self.pixel_threshold)[0]

    @property
    def n_clean(self) -> int:
        """The clean test images (at least 1, a denominator)."""
        return max(int((~self.test.defective).sum()), 1)


def unet_on_clean(unet, task, cfg, *, seed: int, predict: dict,
                  evaluated: UNetEvaluation | None = None) -> CleanImages:
    """:class:`CleanImages` of ``unet`` on the gate task ``task``. ``evaluated``:
    :func:`evaluate_unet`'s evaluation of this same ``unet`` on this same ``task`` (Severstal: one
    task for both), whose passes it reuses instead of running the U-Net over both splits again (it
    still draws from the global generator the two loader seeds those passes drew, so what trains
    next, the gate, trains on the random stream it had with them)."""
    if evaluated is None:
        val, chosen, test, shown = _passes(unet, task, cfg, seed, predict)
    else:
        val, chosen, test, shown = evaluated.val, evaluated.chosen, evaluated.test, evaluated.shown
        for _ in range(2):   # the seed each skipped pass's DataLoader draws: the gate trains on the same stream
            torch.empty((), dtype=torch.int64).random_()
    clean = ~test.defective
    _, alone, _ = test.at(cfg.pixel_threshold)                                  # the fixed 0.5
    _, tuned, _ = test.at(chosen["pixel_threshold"], chosen["min_area"])
    marked = lambda pred: torch.from_numpy(pred.sum(1) > 0) & clean  # noqa: E731  (images with a predicted pixel)
    return CleanImages(val, test, chosen, cfg.pixel_threshold, marked(alone), marked(tuned),
                       shown["marked"] or shown["clean"])


@dataclass
class GateEvaluation:
    """The gate with the U-Net: ``val`` / ``test`` :class:`Counts` with the gate's scores, the
    thresholds ``best`` chosen on validation (gate, pixel, min area, for Kaggle Dice; ``grid``:
    every point), the ROC AUCs of the gate and of the U-Net's largest pixel probability (NaN when
    the test images are all of one kind), and the gate's confusion at each threshold (``reports``)."""
    val: Counts
    test: Counts
    best: dict
    grid: list
    gate_auc: float
    unet_auc: float
    reports: dict

    @property
    def both_kinds(self) -> bool:
        return 0 < int(self.test.defective.sum()) < len(self.test.scores)


def evaluate_gate(gate, task, clean: CleanImages, cfg, *, seed: int, predict: dict) -> GateEvaluation:
    """:class:`GateEvaluation` of ``gate`` on ``task``, beside the U-Net counts of ``clean``; the
    gate's confusion at the fixed threshold and at the chosen one."""
    val_scores = collect_scores(gate, _loader(task.val, cfg, cfg.cls_batch_size, cfg.tune_limit, gate=True,
                                              seed=seed), **predict)
    test_scores = collect_scores(gate, _loader(task.test, cfg, cfg.cls_batch_size, gate=True), **predict)
    n_val, n_test = min(len(val_scores), len(clean.val)), min(len(test_scores), len(clean.test))
    val, test = clean.val.take(n_val, val_scores[:n_val]), clean.test.take(n_test, test_scores[:n_test])
    best, grid = val.table(kaggle_dice, val.scores, gate_grid=cfg.gate_grid, pixel_grid=cfg.pixel_grid,
                           min_area_grid=cfg.min_area_grid)
    both = 0 < int(test.defective.sum()) < len(test.scores)
    gate_auc = roc_auc(test.defective, test.scores) if both else float("nan")
    # a score with no gate at all: the U-Net's largest pixel probability in the image (counted with the rest)
    unet_auc = roc_auc(test.defective, test.max_prob) if both else float("nan")
    reports = {t: gate_report(test.defective, test.scores, t)
               for t in dict.fromkeys([cfg.gate_threshold, best["gate_threshold"]])}
    return GateEvaluation(val, test, best, grid, gate_auc, unet_auc, reports)


def max_probability(probs: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Each image's largest pixel probability, float32 [N] (``probs.float().flatten(1).amax(1)``
    without a float32 copy of the whole split)."""
    return torch.cat([probs[i:i + chunk].flatten(1).amax(1) for i in range(0, len(probs), chunk)]).float()


def pipeline_masks(unet, task, scores: torch.Tensor, best: dict, cfg, predict: dict):
    """``(image id, bool mask [C, H, W])`` of each of the first ``len(scores)`` test images of
    ``task``, one at a time: the two-stage pipeline at ``best`` (gate threshold, pixel threshold,
    min area) with the gate's ``scores``, the U-Net run again batch by batch as the evaluation ran
    it; for a submission file, without the masks of the whole split in memory."""
    run = {k: v for k, v in predict.items() if k not in ("max_batches", "progress")}
    start = 0
    for batch in _loader(task.test, cfg, cfg.seg_batch_size):
        if start >= len(scores):
            return
        probs = collect(unet, [batch], progress=False, **run).probs
        k = min(len(probs), len(scores) - start)
        masks = apply_thresholds(probs[:k], scores[start:start + k].float(), best["gate_threshold"],
                                 best["pixel_threshold"], best["min_area"])
        for j, m in enumerate(masks):
            yield task.test.ids[start + j], m.numpy()
        start += k


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
