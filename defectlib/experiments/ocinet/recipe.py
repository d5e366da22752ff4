"""Notebook 03's recipe: OCINet's training and evaluation protocol (paper 003, Sec. III-E, IV-A).

Training (Sec. IV-A-2): Adam lr 1e-4, batch 16, 70 epochs, "the decay epoch ... 30" (the paper
gives no factor: the paper profile's 0.1 after epoch 30 is the ``decay_rate`` of the authors'
training script, which decays again at epoch 60); loss Eq. (1) = deep supervision over S^1..S^4 with
weights (1, 1, 1/2, 1/4) of BCE + IoU (:class:`defectlib.losses.DeepSupervisionLoss`).

Evaluation, as the authors' test script and metric code do it (docs/papers.md#ocinet):
only the image is resized; S^1 goes through a sigmoid, is resized back to the ground truth's own
size, min-max normalised per image, binarised with Otsu's threshold, and every metric is computed
per image and then averaged over images. "PA" in their code is the foreground recall TP/|GT|,
not the pixel accuracy of their Eq. (5): both are reported, labelled. wFm (Margolin) is computed
on the min-max normalised map.
"""
from __future__ import annotations

import os
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ...engine import fit, predict, supervised_loss
from ...engine import distributed as D
from ...losses import DeepSupervisionLoss
from ...metrics import ocinet_evaluation, otsu_binarize, otsu_threshold, segmentation_scores
from ...metrics.segmentation import minmax_normalize
from ...models.ocinet import build_ocinet
from ...runtime import seed_everything
from ..registry import Probe, train_config
from .data import OCINetData, build_data, collate_eval, train_loader

METRICS = ("PA", "pixel_accuracy", "wFm", "IoU", "Dice")
METRIC_NOTES = {
    "PA": "foreground recall TP/|GT| (the authors' code's 'PA')",
    "pixel_accuracy": "(TP+TN)/N, the paper's Eq. (5)",
    "wFm": "Margolin's weighted F-measure, beta^2 = 1",
    "IoU": "Eq. (7)", "Dice": "Eq. (8)",
}



# --- loss ----------------------------------------------------------------------------------------
def ocinet_loss_fn(weights=(1.0, 1.0, 0.5, 0.25)):
    """``loss_fn`` for :func:`defectlib.engine.fit`: Eq. (1) on the model's four logit maps."""
    return supervised_loss(DeepSupervisionLoss(weights))


# --- evaluation ----------------------------------------------------------------------------------
#: our result key -> :func:`defectlib.metrics.ocinet_evaluation` key ("PA" is the authors' code's)
_PROTOCOL_KEYS = {"PA": "foreground_recall", "pixel_accuracy": "PA", "wFm": "wFm", "IoU": "IoU", "Dice": "Dice"}


def score_maps(probs: list[np.ndarray], masks: list[np.ndarray], chunk: int = 32,
               iou_only: bool = False) -> dict[str, np.ndarray]:
    """Per-image scores (fractions) of probability maps against binary masks of the same size:
    :func:`~defectlib.metrics.ocinet_evaluation` on batches of up to ``chunk`` same-size maps.
    ``iou_only``: the IoU alone, by the same steps (min-max, Otsu, IoU) without the costly wFm: what
    a learning-curve point needs."""
    out = {k: np.empty(len(probs), np.float64) for k in (("IoU",) if iou_only else METRICS)}
    by_shape: dict[tuple, list[int]] = defaultdict(list)
    for i, p in enumerate(probs):
        by_shape[p.shape].append(i)
    for same in by_shape.values():
        for start in range(0, len(same), chunk):
            idx = same[start:start + chunk]
            prob = np.stack([probs[i] for i in idx]).astype(np.float32)
            target = np.stack([masks[i] for i in idx]) > 0.5
            if iou_only:
                mask = otsu_binarize(minmax_normalize(prob), normalize=False)
                out["IoU"][idx] = segmentation_scores(mask, target, reduction="none")["iou"]
                continue
            s = ocinet_evaluation(prob, target, reduction="none")
            for ours, theirs in _PROTOCOL_KEYS.items():
                out[ours][idx] = s[theirs]
    return out


#: the fixed thresholds of :func:`threshold_curve` (notebook 03's threshold curve)
CURVE_THRESHOLDS = tuple(round(t, 2) for t in np.linspace(0.05, 0.95, 19).tolist())
#: the scores of :func:`threshold_curve`, named as :data:`METRICS` names them
CURVE_METRICS = {"pixel_accuracy": "pixel_accuracy", "PA": "foreground_recall", "IoU": "iou"}


def threshold_curve(probs: list[np.ndarray], masks: list[np.ndarray], thresholds=CURVE_THRESHOLDS) -> dict:
    """Fixed thresholds against the authors' per-image Otsu, on the same probability maps.

    ``probs``: sigmoid maps (any sizes), ``masks``: their binary ground truths. For every fixed
    threshold ``t``, each map is binarised as ``prob >= t`` and scored; the scores are averaged over
    the images, in %, as the protocol averages them: Eq. 5's pixel accuracy (``"pixel_accuracy"``),
    the authors' "PA" (foreground recall, ``"PA"``) and IoU. ``"otsu"`` holds the same three scores
    under the protocol (per-image min-max, Otsu; equal to :func:`evaluate`'s), and
    ``"otsu_thresholds"`` each image's Otsu threshold on the probability scale: the smallest
    probability the protocol marks as defect, ``min + (k + 1) / 255 (max - min)`` for Otsu level
    ``k`` (:func:`defectlib.metrics.otsu_threshold`).

    Returns ``{"thresholds" [T], "fixed": {metric: [T]}, "otsu": {metric: float}, "otsu_thresholds"
    [N], "n_images"}``.
    """
    t = np.asarray(thresholds, np.float64).reshape(-1)
    fixed = {k: np.zeros(len(t)) for k in CURVE_METRICS}
    otsu = {k: 0.0 for k in CURVE_METRICS}
    otsu_t = np.empty(len(probs))
    for i, (prob, mask) in enumerate(zip(probs, masks)):
        p = np.asarray(prob, np.float32)[None]              # float32, as the protocol scores it
        g = np.asarray(mask) > 0.5
        cut = p >= t[:, None, None].astype(np.float32)      # [T, H, W]: one mask per fixed threshold
        s = segmentation_scores(cut, np.broadcast_to(g, cut.shape), reduction="none")
        o = segmentation_scores(otsu_binarize(p), g[None], reduction="none")
        for ours, theirs in CURVE_METRICS.items():
            fixed[ours] += s[theirs]
            otsu[ours] += float(o[theirs][0])
        lo, hi = float(p.min()), float(p.max())
        otsu_t[i] = lo + (int(otsu_threshold(p)[0]) + 1) / 255 * (hi - lo)
    n = max(len(probs), 1)
    return {"thresholds": t, "fixed": {k: 100.0 * v / n for k, v in fixed.items()},
            "otsu": {k: 100.0 * v / n for k, v in otsu.items()}, "otsu_thresholds": otsu_t,
            "n_images": len(probs)}


def predict_maps(model, loader, device, max_batches: int | None = None, precision: str = "fp32"):
    """Sigmoid of S^1, resized to each ground truth's size: lists of (image, prob [H,W], mask [H,W]),
    through :func:`defectlib.engine.predict`. ``precision``: the forward pass's numerics
    (:func:`defectlib.engine.resolve_precision`)."""
    maps = predict(model, loader, device, max_batches, output=_resized_maps, precision=precision)
    return maps or ([], [], [])  # no batch at all (an empty test set, max_batches=0)


def _resized_maps(out, batch) -> tuple[list, list, list]:
    """One batch's (images, probabilities of S^1, masks), each resized on the CPU to its mask's size
    (the authors' test script resizes the prediction, never the ground truth)."""
    x, ys = batch
    s1 = (out[0] if isinstance(out, (list, tuple)) else out).float().sigmoid().cpu()
    images, probs, masks = [], [], []
    for img, p, y in zip(x, s1, ys):
        size = y.shape[-2:]
        probs.append(F.interpolate(p[None], size=size, mode="bilinear", align_corners=False)[0, 0].numpy())
        masks.append(y.reshape(size).numpy())
        images.append(F.interpolate(img[None], size=size, mode="bilinear", align_corners=False)[0, 0].numpy())
    return images, probs, masks


def evaluate(model, loader, device, max_batches: int | None = None, keep: int = 0,
             precision: str = "fp32", worst: int = 0, thresholds=None) -> dict:
    """The authors' protocol on one test set: mean of per-image scores, in %.

    Returns ``{metric: value %}`` plus ``"n_images"``; with ``keep > 0`` also ``"samples"``: the first
    ``keep`` (image, prob, mask) triples for figures; with ``worst > 0`` also ``"worst"``: the
    ``worst`` triples of the lowest per-image IoU, lowest first, and ``"worst_iou"``: their IoUs in %;
    with ``thresholds`` (e.g. :data:`CURVE_THRESHOLDS`) also ``"threshold_curve"``: the same maps
    scored at those fixed thresholds beside Otsu (:func:`threshold_curve`).
    """
    images, probs, masks = predict_maps(model, loader, device, max_batches, precision)
    per_image = score_maps(probs, masks)
    res = {k: 100.0 * float(v.mean()) if len(v) else float("nan") for k, v in per_image.items()}
    res["n_images"] = len(probs)
    if keep:
        res["samples"] = list(zip(images[:keep], probs[:keep], masks[:keep]))
    if worst:
        order = np.argsort(per_image["IoU"], kind="stable")[:worst]
        res["worst"] = [(images[i], probs[i], masks[i]) for i in order]
        res["worst_iou"] = [100.0 * float(per_image["IoU"][i]) for i in order]
    if thresholds is not None:
        res["threshold_curve"] = threshold_curve(probs, masks, thresholds)
    return res


# --- one variant, end to end ---------------------------------------------------------------------
PVT_V2_B2_URL = "https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2.pth"


def backbone_weights(name: str | None, dry_run: bool = False) -> Path | None:
    """The local PVT-v2-b2 checkpoint a profile names (``backbone_weights``, the paper profile:
    ``pvt_v2_b2.pth``), looked up in ``$DEFECTLIB_WEIGHTS`` (default ``~/.cache/defectlib/weights``);
    None for profiles that train from random weights. Nothing is downloaded: a missing file is a
    FileNotFoundError saying where to put it and where it comes from; a dry run warns instead and
    goes on from random weights."""
    if not name:
        return None
    folder = Path(os.environ.get("DEFECTLIB_WEIGHTS", "~/.cache/defectlib/weights")).expanduser()
    path = folder / name
    if path.is_file():
        return path
    msg = (f"{path}: the paper profile starts PVT-v2-b2 from ImageNet weights (as the paper does); "
           f"put {name} there (the PVT release: {PVT_V2_B2_URL}) or set DEFECTLIB_WEIGHTS to its folder")
    if dry_run:
        warnings.warn(msg + "; this dry run goes on from random weights", stacklevel=2)
        return None
    raise FileNotFoundError(msg)


def _iou_curve(data: OCINetData, cfg, device):
    """``curve(model)`` for :func:`defectlib.engine.fit`: IoU on the first test set, in %."""
    name, first = next(iter(data.tests.items()))
    loader = DataLoader(first, batch_size=cfg.eval_batch_size, collate_fn=collate_eval,
                        num_workers=D.loader_workers(cfg.num_workers, D.info()))

    def curve(model):  # the IoU alone (no wFm: a curve point used to run the whole protocol)
        _, probs, masks = predict_maps(model, loader, device, cfg.max_eval_batches, cfg.precision)
        iou = score_maps(probs, masks, iou_only=True)["IoU"]
        return {f"{name}/IoU": 100.0 * float(iou.mean()) if len(iou) else float("nan")}
    return curve


def train_and_evaluate(variant: str, data: OCINetData, cfg, device, seed: int = 0, keep: int = 0,
                       weights=None, loss_weights=(1.0, 1.0, 0.5, 0.25), worst: int = 0,
                       evaluate_sets: bool = True, thresholds=None, name: str | None = None) -> dict:
    """Build ``variant``, train it on ``data.train`` as ``cfg`` says, evaluate it on every test set.
    ``loss_weights``: the deep-supervision weights of S^1..S^4 (paper Eq. 1: 1, 1, 1/2, 1/4);
    ``keep`` / ``worst``: sample triples kept for figures, ``thresholds``: fixed thresholds scored
    beside Otsu (:func:`evaluate`).

    With ``cfg.curve_every`` the first test set's IoU is also measured every that many optimizer
    steps (``history.curve``, a learning curve: drawn, never used to choose; it does not change
    the training). Returns ``{"model", "history", "train_s", "results": {test name: evaluate(...)}}``;
    ``evaluate_sets=False`` (the ranks but 0 under torchrun) trains only and returns no results.
    ``name``: its checkpoint folder when the profile checkpoints (default: the variant, with the
    loss weights when they are not the paper's).
    """
    if name is None:
        name = variant if tuple(loss_weights) == (1.0, 1.0, 0.5, 0.25) else \
            f"{variant}-w{'-'.join(f'{w:g}' for w in loss_weights)}"
    seed_everything(seed)
    model = build_ocinet(variant, weights=weights).to(device)
    loader = train_loader(data, cfg, seed)
    curve = _iou_curve(data, cfg, device) if cfg.curve_every else None
    t0 = time.perf_counter()
    # no seed=: the engine reseeds with its default, 0, after the weights are drawn, so augmentation
    # draws do not follow the run's seed (the committed numbers were made so; see README, notebook 03)
    history = fit(model, loader, train_config(cfg, name=name), loss_fn=ocinet_loss_fn(loss_weights), device=device,
                  curve=curve)
    train_s = time.perf_counter() - t0
    results = {}
    for name, ds in data.tests.items() if evaluate_sets else ():
        test_loader = DataLoader(ds, batch_size=cfg.eval_batch_size, collate_fn=collate_eval,
                                 num_workers=D.loader_workers(cfg.num_workers, D.info()))   # rank 0's
        results[name] = evaluate(model, test_loader, device, cfg.max_eval_batches, keep=keep,
                                 precision=cfg.precision, worst=worst, thresholds=thresholds)
    return {"model": model, "history": history, "train_s": train_s, "results": results}


# --- defectlib doctor -----------------------------------------------------------------------------
def doctor_probes(cfg, data_root=None, seed: int = 0):
    """The full OCINet (every variant costs about the same), for ``defectlib doctor``."""
    data = build_data(data_root, size=cfg.input_size, seed=seed, augment=cfg.augment,
                      test_limit=cfg.test_limit)
    per_variant = cfg.epochs * len(train_loader(data, cfg, seed))
    steps = len(cfg.variants) * min(per_variant, cfg.max_steps or per_variant)
    train = train_config(cfg, seed=seed)
    return [Probe("03", "OCINet (full)", lambda: build_ocinet("full"), lambda: train_loader(data, cfg, seed),
                  ocinet_loss_fn(), train, steps, dataset=data.dataset, notes=weights_notes(cfg))]


def weights_notes(cfg) -> list[str]:
    """Whether the PVT-v2-b2 ImageNet weights the profile starts from are on this machine (the doctor
    trains from random weights: the speed is the same)."""
    if not cfg.backbone_weights:
        return []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = backbone_weights(cfg.backbone_weights, dry_run=True)
    if found:
        return [f"weights: the PVT-v2-b2 ImageNet weights the run starts from are at {found}"]
    why = str(caught[0].message).split("; this dry run")[0]
    return [f"weights: missing, the run would stop before training: {why}"]
