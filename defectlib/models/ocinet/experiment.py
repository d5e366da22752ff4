"""OCINet's training and evaluation protocol (paper Sec. III-E, IV-A), used by notebook 03.

Training (Sec. IV-A-2): images and masks resized to 352x352, rotations and flips, Adam lr 1e-4,
batch 16, 70 epochs, lr x0.1 after epoch 30; loss Eq. (1) = deep supervision over S^1..S^4 with
weights (1, 1, 1/2, 1/4) of BCE + IoU (:class:`defectlib.losses.DeepSupervisionLoss`). The paper
says "rotate and flip" without details (the authors' data loader has its augmentations commented
out); we read it as a random multiple of 90 degrees plus horizontal and vertical flips.

Evaluation, as the authors' test script and metric code do it (REFERENCE.md section 3):
only the image is resized; S^1 goes through a sigmoid, is resized back to the ground truth's own
size, min-max normalised per image, binarised with Otsu's threshold, and every metric is computed
per image and then averaged over images. "PA" in their code is the foreground recall TP/|GT|,
not the pixel accuracy of their Eq. (5): both are reported, labelled. wFm (Margolin) is computed
on the min-max normalised map.

Data (:func:`build_data`): NRSD-MN when a real copy is under ``data_root`` (train on 2,086 man-made
images; test columns "man-made" and "natural"); otherwise, if real NEU-Seg and MTD are there,
a binary steel/tile task with two real test columns: NEU-Seg test (all defect classes merged into
one) and held-out MTD defective tiles; otherwise the NRSD-MN-format stand-in. No test image has a
near-duplicate in training: NEU-Seg's test images that near-duplicate a training image are dropped
and MTD's near-duplicate pairs stay on one side (:mod:`defectlib.data.splits`).
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, Dataset, Subset

from defectlib.data import MTD, NEUSeg, NRSDMN, locate
from defectlib.data.splits import (MTD_NEAR_DUPLICATES, groups_from_pairs, neu_seg_clean_test_ids,
                                   stratified_split)
from defectlib.engine import resolve_precision, supervised_loss, to_device
from defectlib.losses import DeepSupervisionLoss
from defectlib.metrics import ocinet_evaluation
from defectlib.paths import real_data_root
from defectlib.runtime import pin_memory

METRICS = ("PA", "pixel_accuracy", "wFm", "IoU", "Dice")
METRIC_NOTES = {
    "PA": "foreground recall TP/|GT| (the authors' code's 'PA')",
    "pixel_accuracy": "(TP+TN)/N, the paper's Eq. (5)",
    "wFm": "Margolin's weighted F-measure, beta^2 = 1",
    "IoU": "Eq. (7)", "Dice": "Eq. (8)",
}


# --- transforms ----------------------------------------------------------------------------------
class TrainTransform:
    """Resize image (bilinear) and mask (nearest) to ``size``; if ``augment``, a random rotation by a
    multiple of 90 degrees and random horizontal / vertical flips (the same for image and mask)."""

    def __init__(self, size: int, augment: bool = True):
        self.size, self.augment = int(size), augment

    def __call__(self, image: torch.Tensor, mask: torch.Tensor):
        image = F.interpolate(image[None], size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=True)[0]
        mask = F.interpolate(mask[None].float(), size=(self.size, self.size), mode="nearest")[0]
        if self.augment:
            k = random.randrange(4)
            image, mask = torch.rot90(image, k, (1, 2)), torch.rot90(mask, k, (1, 2))
            if random.random() < 0.5:
                image, mask = image.flip(2), mask.flip(2)
            if random.random() < 0.5:
                image, mask = image.flip(1), mask.flip(1)
        return image.contiguous(), mask.contiguous()


class EvalTransform:
    """Resize only the image (the mask keeps its own size, as the authors evaluate)."""

    def __init__(self, size: int):
        self.size = int(size)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor):
        image = F.interpolate(image[None], size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=True)[0]
        return image, mask


def collate_eval(batch):
    """Images stacked (same size after the transform), masks kept as a list (sizes may differ)."""
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


# --- data ----------------------------------------------------------------------------------------
@dataclass
class OCINetData:
    """The training set and the named test sets (``columns``: test name -> paper column)."""
    train: Dataset
    tests: dict[str, Dataset]
    columns: dict[str, str]
    dataset: str
    real: bool
    notes: list[str] = field(default_factory=list)


def _seeded_subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    if n is None or n >= len(ds):
        return ds
    idx = np.random.default_rng(seed).permutation(len(ds))[:n]
    return Subset(ds, sorted(idx.tolist()))


def mtd_defective_split(root, test_fraction: float = 0.25, seed: int = 0) -> tuple[list[str], list[str]]:
    """MTD defective tiles with a non-empty mask, split per class (seeded): (train ids, test ids).

    The 7 near-duplicate pairs (:data:`defectlib.data.splits.MTD_NEAR_DUPLICATES`, the same crack or
    blowhole shot twice) are kept on one side, so no test tile has its twin in the training set.
    """
    ds = MTD(root, classes=[c for c in MTD.CLASSES if c != "Free"])
    keep = [i for i in range(len(ds)) if ds.load_arrays(i)[1].max() > ds.threshold]
    ids, labels = [ds.ids[i] for i in keep], [ds.labels[i] for i in keep]
    groups = groups_from_pairs(ids, MTD_NEAR_DUPLICATES)
    train, test = stratified_split(labels, test_fraction, seed, groups)
    return sorted(ids[i] for i in train), sorted(ids[i] for i in test)


def build_data(data_root=None, size: int = 352, seed: int = 0, augment: bool = True,
               test_limit: int | None = None) -> OCINetData:
    """Datasets for notebook 03 (see the module docstring for which data is chosen).

    ``test_limit`` keeps a seeded subset of each test set (cpu / smoke profiles).
    """
    train_tf, eval_tf = TrainTransform(size, augment), EvalTransform(size)
    nrsd, nrsd_real = locate("nrsd-mn", data_root)
    notes: list[str] = []
    if not nrsd_real and real_data_root(data_root) is not None:
        neu, neu_real = locate("neu-seg", data_root)
        mtd, mtd_real = locate("mtd", data_root)
        if neu_real and mtd_real:
            mtd_train, mtd_test = mtd_defective_split(mtd, seed=seed)
            train = ConcatDataset([NEUSeg(neu, "training", binary=True, transforms=train_tf),
                                   MTD(mtd, ids=mtd_train, transforms=train_tf)])
            neu_test = neu_seg_clean_test_ids(neu)
            tests = {"NEU-Seg test": NEUSeg(neu, "test", binary=True, ids=neu_test, transforms=eval_tf),
                     "MTD defective (held out)": MTD(mtd, ids=mtd_test, transforms=eval_tf)}
            notes.append(f"NRSD-MN is not available (password-protected); trained on real NEU-Seg "
                         f"training (3 defect classes merged into one) + {len(mtd_train)} MTD defective "
                         f"tiles; tested on NEU-Seg test ({len(neu_test)} images: the test images that "
                         f"near-duplicate a training image dropped) and {len(mtd_test)} held-out MTD "
                         f"defective tiles (per-class seeded 75/25 split, near-duplicate pairs kept on one "
                         f"side, tiles with an empty mask dropped).")
            return OCINetData(train, {k: _seeded_subset(v, test_limit, seed) for k, v in tests.items()},
                              {"NEU-Seg test": "man-made", "MTD defective (held out)": "natural"},
                              "NEU-Seg + MTD (binary)", True, notes)
    train = NRSDMN(nrsd, "train", transforms=train_tf)
    tests = {"man-made": NRSDMN(nrsd, "test-man-made", transforms=eval_tf),
             "natural": NRSDMN(nrsd, "test-natural", transforms=eval_tf)}
    name = "NRSD-MN" if nrsd_real else "NRSD-MN stand-in (generated)"
    if not nrsd_real:
        notes.append("generated NRSD-MN-format stand-in: numbers exercise the code, they measure nothing")
    return OCINetData(train, {k: _seeded_subset(v, test_limit, seed) for k, v in tests.items()},
                      {"man-made": "man-made", "natural": "natural"}, name, nrsd_real, notes)


# --- loss ----------------------------------------------------------------------------------------
def ocinet_loss_fn(weights=(1.0, 1.0, 0.5, 0.25)):
    """``loss_fn`` for :func:`defectlib.engine.fit`: Eq. (1) on the model's four logit maps."""
    return supervised_loss(DeepSupervisionLoss(weights))


# --- evaluation ----------------------------------------------------------------------------------
#: our result key -> :func:`defectlib.metrics.ocinet_evaluation` key ("PA" is the authors' code's)
_PROTOCOL_KEYS = {"PA": "foreground_recall", "pixel_accuracy": "PA", "wFm": "wFm", "IoU": "IoU", "Dice": "Dice"}


def score_maps(probs: list[np.ndarray], masks: list[np.ndarray], chunk: int = 32) -> dict[str, np.ndarray]:
    """Per-image scores (fractions) of probability maps against binary masks of the same size:
    :func:`~defectlib.metrics.ocinet_evaluation` on batches of up to ``chunk`` same-size maps."""
    out = {k: np.empty(len(probs), np.float64) for k in METRICS}
    by_shape: dict[tuple, list[int]] = defaultdict(list)
    for i, p in enumerate(probs):
        by_shape[p.shape].append(i)
    for same in by_shape.values():
        for start in range(0, len(same), chunk):
            idx = same[start:start + chunk]
            s = ocinet_evaluation(np.stack([probs[i] for i in idx]).astype(np.float32),
                                  np.stack([masks[i] for i in idx]) > 0.5, reduction="none")
            for ours, theirs in _PROTOCOL_KEYS.items():
                out[ours][idx] = s[theirs]
    return out


@torch.no_grad()
def predict_maps(model, loader, device, max_batches: int | None = None, precision: str = "fp32"):
    """Sigmoid of S^1, resized to each ground truth's size: lists of (image, prob [H,W], mask [H,W]).
    ``precision``: the forward pass's numerics (:func:`defectlib.engine.resolve_precision`)."""
    model.eval()
    numerics = resolve_precision(precision, device)
    images, probs, masks = [], [], []
    for i, (x, ys) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        with numerics.autocast():
            out = model(to_device(x, device))
        s1 = (out[0] if isinstance(out, (list, tuple)) else out).float().sigmoid().cpu()
        for img, p, y in zip(x, s1, ys):
            size = y.shape[-2:]
            probs.append(F.interpolate(p[None], size=size, mode="bilinear", align_corners=False)[0, 0].numpy())
            masks.append(y.reshape(size).numpy())
            images.append(F.interpolate(img[None], size=size, mode="bilinear", align_corners=False)[0, 0].numpy())
    return images, probs, masks


def evaluate(model, loader, device, max_batches: int | None = None, keep: int = 0,
             precision: str = "fp32", worst: int = 0) -> dict:
    """The authors' protocol on one test set: mean of per-image scores, in %.

    Returns ``{metric: value %}`` plus ``"n_images"``; with ``keep > 0`` also ``"samples"``: the first
    ``keep`` (image, prob, mask) triples for figures; with ``worst > 0`` also ``"worst"``: the
    ``worst`` triples of the lowest per-image IoU, lowest first, and ``"worst_iou"``: their IoUs in %.
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
    import os
    import warnings
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


def train_config(cfg, checkpoint_dir=None):
    """The engine's :class:`~defectlib.engine.TrainConfig` from a notebook-03 profile."""
    from defectlib.engine import TrainConfig
    schedule = cfg.get("schedule") or ("multistep" if cfg.get("milestones") else "none")
    return TrainConfig.from_dict(cfg, optimizer="adam", schedule=schedule, checkpoint_dir=checkpoint_dir)


def _iou_curve(data: OCINetData, cfg, device):
    """``curve(model)`` for :func:`defectlib.engine.fit`: IoU on the first test set, in %."""
    from torch.utils.data import DataLoader
    name, first = next(iter(data.tests.items()))
    loader = DataLoader(first, batch_size=cfg.eval_batch_size, collate_fn=collate_eval)

    def curve(model):
        r = evaluate(model, loader, device, cfg.max_eval_batches, precision=cfg.get("precision", "fp32"))
        return {f"{name}/IoU": r["IoU"]}
    return curve


def train_loader(data: OCINetData, cfg, seed: int = 0):
    """Shuffled (seeded) batches of ``cfg.batch_size`` training images, the last partial one dropped."""
    from torch.utils.data import DataLoader
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(data.train, batch_size=cfg["batch_size"], shuffle=True, drop_last=True,
                      num_workers=cfg.get("num_workers", 0), pin_memory=pin_memory(cfg.get("pin_memory", False)),
                      generator=gen)


def train_and_evaluate(variant: str, data: OCINetData, cfg, device, seed: int = 0, keep: int = 0,
                       weights=None, loss_weights=(1.0, 1.0, 0.5, 0.25), worst: int = 0) -> dict:
    """Build ``variant``, train it on ``data.train`` as ``cfg`` says, evaluate it on every test set.
    ``loss_weights``: the deep-supervision weights of S^1..S^4 (paper Eq. 1: 1, 1, 1/2, 1/4);
    ``keep`` / ``worst``: sample triples kept for figures (:func:`evaluate`).

    With ``cfg.curve_every`` the first test set's IoU is also measured every that many optimizer
    steps (``history.curve``, a learning curve: drawn, never used to choose; it does not change
    the training). Returns ``{"model", "history", "train_s", "results": {test name: evaluate(...)}}``.
    """
    import time

    from torch.utils.data import DataLoader

    from defectlib.engine import fit
    from defectlib.runtime import seed_everything

    from .model import build_ocinet

    seed_everything(seed)
    model = build_ocinet(variant, weights=weights).to(device)
    loader = train_loader(data, cfg, seed)
    curve = _iou_curve(data, cfg, device) if cfg.get("curve_every") else None
    t0 = time.perf_counter()
    history = fit(model, loader, train_config(cfg), loss_fn=ocinet_loss_fn(loss_weights), device=device, curve=curve)
    train_s = time.perf_counter() - t0
    results = {}
    for name, ds in data.tests.items():
        test_loader = DataLoader(ds, batch_size=cfg.eval_batch_size, collate_fn=collate_eval,
                                 num_workers=cfg.num_workers)
        results[name] = evaluate(model, test_loader, device, cfg.max_eval_batches, keep=keep,
                                 precision=cfg.get("precision", "fp32"), worst=worst)
    return {"model": model, "history": history, "train_s": train_s, "results": results}
