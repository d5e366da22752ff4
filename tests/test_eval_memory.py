"""Notebook 02's evaluation keeps counts, not maps (issue 27, item 2): each split is reduced image by
image as the U-Net runs over it, and what is kept does not grow with the split; every score, chosen
threshold, curve, sample image and submission mask is the one the whole-split maps give, to the last
bit; the gate task's U-Net reuses the segmentation task's passes when they are the same; the
learning curves do not gather the test split; the evaluation loaders use the profile's workers."""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from torch import nn

from defectlib.experiments.severstal import evaluation as E
from defectlib.experiments.severstal import pipeline as P
from defectlib.experiments.severstal import recipe as R
from defectlib.experiments.severstal.data import eval_loader
from defectlib.experiments.severstal.profile import PROFILES
from defectlib.metrics import gate_report, kaggle_dice
from defectlib.metrics.classification import roc_auc


class Toy(torch.utils.data.Dataset):
    """``n`` grey images [1, h, w] whose defects (3 classes, every third image clean) show in the image."""

    def __init__(self, n: int, seed: int = 0, c: int = 3, h: int = 24, w: int = 40):
        g = torch.Generator().manual_seed(seed)
        self.masks = torch.zeros(n, c, h, w)
        for i in range(n):
            if i % 3:
                self.masks[i, i % c, 3:8 + i % 9, 4:12 + i % 13] = 1
        self.images = (0.6 * torch.rand(n, 1, h, w, generator=g) + 0.4 * self.masks.amax(1, keepdim=True))
        self.ids = [f"{seed}-{i:03d}.jpg" for i in range(n)]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.masks[i]


def _models():
    torch.manual_seed(0)
    unet = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    gate = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1))
    return unet, gate


def _setup(n_val=10, n_test=13, **size):
    cfg = PROFILES["smoke"].replace(seg_batch_size=4, cls_batch_size=3)   # tune_limit 8: a seeded subset of val
    task = types.SimpleNamespace(val=Toy(n_val, 1, **size), test=Toy(n_test, 2, **size), dataset="toy")
    return cfg, task


def held_bytes(obj, seen=None) -> int:
    """Bytes of every tensor and array reachable from ``obj`` (dataclasses, dicts, lists, tuples)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(held_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(held_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dataclass_fields__"):
        return sum(held_bytes(getattr(obj, k), seen) for k in obj.__dataclass_fields__)
    return 0


@pytest.mark.parametrize("numerics", [{}, {"precision": "bf16", "channels_last": True}])
def test_counted_evaluation_equals_the_whole_split_maps_to_the_last_bit(numerics):
    cfg, task = _setup()
    unet, gate = _models()
    predict = dict(device="cpu", max_batches=None, progress=False, **numerics)
    ev = E.evaluate_unet(unet, task, cfg, seed=0, predict=predict)
    clean = E.unet_on_clean(unet, task, cfg, seed=0, predict=predict, evaluated=ev)
    g = E.evaluate_gate(gate, task, clean, cfg, seed=0, predict=predict)

    # the former evaluation, on the whole splits' float16 maps
    val = P.collect(unet, eval_loader(task.val, 4, cfg.tune_limit, seed=0), **predict)
    test = P.collect(unet, eval_loader(task.test, 4), **predict)
    chosen, _ = P.tune_thresholds(val.probs, val.targets, kaggle_dice, None, pixel_grid=cfg.pixel_grid,
                                  min_area_grid=cfg.min_area_grid)
    pix, area = chosen["pixel_threshold"], chosen["min_area"]
    iou_best, _ = P.tune_thresholds(val.probs, val.targets, P.mean_iou, None, pixel_grid=cfg.pixel_grid)
    assert ev.chosen == chosen and ev.iou_threshold == iou_best["pixel_threshold"]
    assert ev.report == P.dice_report(test, pixel_threshold=pix, min_area=area)
    assert ev.ious == P.thresholded_iou(test, ev.iou_threshold)
    assert ev.ious_fixed == P.thresholded_iou(test, cfg.pixel_threshold)
    assert len({r["score"] for r in ev.val.table(kaggle_dice, pixel_grid=cfg.pixel_grid,
                                                 min_area_grid=cfg.min_area_grid)[1]}) > 3   # not a flat grid
    for o, ref in ((ev.val, val), (ev.test, test)):          # the notebook's threshold curves, 0.05 ... 0.95
        for metric in (kaggle_dice, P.mean_iou):
            assert o.table(metric, pixel_grid=E.CURVE_GRID) == P.tune_thresholds(ref.probs, ref.targets, metric, None,
                                                                                 pixel_grid=E.CURVE_GRID)
    # the worst test images, the maps kept of them, and the clean images the U-Net marks
    masks = P.apply_thresholds(test.probs, None, 0.0, pix, area)
    per_image = [kaggle_dice(masks[i:i + 1], test.targets[i:i + 1]) for i in range(len(masks))]
    assert ev.worst == np.argsort(per_image, kind="stable")[:E.SHOWN].tolist()
    assert np.array_equal(ev.image_dice(), per_image)
    for i, (probs, target) in ev.test.samples.items():
        assert torch.equal(probs, test.probs[i]) and torch.equal(target, test.targets[i])
    marked = torch.from_numpy(P.mask_counts(test.probs, test.targets, None, 0.0, cfg.pixel_threshold)[1].sum(1) > 0)
    fp = marked & ~test.defective
    tuned = torch.from_numpy(P.mask_counts(test.probs, test.targets, None, 0.0, pix, area)[1].sum(1) > 0)
    assert torch.equal(clean.fp, fp) and torch.equal(clean.fp_tuned, tuned & ~test.defective)
    shown = torch.nonzero(fp).flatten()[:4].tolist() or torch.nonzero(~test.defective).flatten()[:4].tolist()
    assert clean.shown == shown and shown
    for k in shown:
        assert torch.equal(clean.alone(k), P.apply_thresholds(test.probs, None, 0.0, cfg.pixel_threshold)[k])
    # the gate: the joint search, the AUCs, the confusions, every prediction of the pipeline
    scores = P.collect_scores(gate, eval_loader(task.test, 3, gate=True), **predict)
    val_scores = P.collect_scores(gate, eval_loader(task.val, 3, cfg.tune_limit, gate=True, seed=0), **predict)
    best, grid = P.tune_thresholds(val.probs, val.targets, kaggle_dice, val_scores, gate_grid=cfg.gate_grid,
                                   pixel_grid=cfg.pixel_grid, min_area_grid=cfg.min_area_grid)
    assert g.best == best and g.grid == grid and torch.equal(g.test.scores, scores)
    assert g.gate_auc == roc_auc(test.defective, scores)
    assert g.unet_auc == roc_auc(test.defective, test.probs.float().flatten(1).amax(1))
    assert g.reports == {t: gate_report(test.defective, scores, t) for t in dict.fromkeys([0.5, best["gate_threshold"]])}
    old = types.SimpleNamespace(best=best, test=P.Outputs(test.probs, scores, test.targets))
    assert E.pipeline_predictions(g, clean, cfg, "toy") == E.pipeline_predictions(old, clean, cfg, "toy")
    for t in (0.0, 0.3, 0.55, 1.0):          # the notebook's Dice against the gate threshold
        two_stage = P.apply_thresholds(test.probs, scores, t, best["pixel_threshold"], best["min_area"])
        assert P.dice_report(g.test, t, best["pixel_threshold"], best["min_area"])["two-stage"]["kaggle"] == \
            kaggle_dice(two_stage, test.targets)
    # the submission's masks, the U-Net run again a batch at a time
    written = list(E.pipeline_masks(unet, task, g.test.scores, best, cfg, predict))
    expected = P.apply_thresholds(test.probs, scores, best["gate_threshold"], best["pixel_threshold"], best["min_area"])
    assert [i for i, _ in written] == task.test.ids
    assert all(np.array_equal(m, e.numpy()) for (_, m), e in zip(written, expected))


def test_what_the_evaluation_keeps_does_not_grow_with_the_split():
    """Three times the test images: the evaluation's kept tensors grow by their counts (about a kB
    an image, whatever its size), not by their maps (float16 probabilities and bool targets: 41 kB
    an image here, 4.9 MB at Severstal's 4 x 256 x 1600), which it used to keep, twice."""
    unet, gate = _models()
    predict = dict(device="cpu", progress=False)
    held = {}
    for n in (12, 36):
        cfg, task = _setup(n_val=12, n_test=n, h=48, w=96)
        ev = E.evaluate_unet(unet, task, cfg, seed=0, predict=predict)
        clean = E.unet_on_clean(unet, task, cfg, seed=0, predict=predict)
        held[n] = held_bytes((ev, clean, E.evaluate_gate(gate, task, clean, cfg, seed=0, predict=predict)))
    one_map = 3 * 48 * 96 * 3                     # float16 probabilities + bool target of one image
    assert (held[36] - held[12]) / 24 < one_map / 4, held
    assert len(ev.test.samples) <= 3 * E.SHOWN + cfg.seg_batch_size    # the maps of the images drawn


def test_the_gate_tasks_unet_reuses_the_segmentation_passes(monkeypatch):
    """One task for both stages (Severstal): unet_on_clean used to run the same U-Net over
    validation and test a second time. With ``evaluated`` it runs nothing, gives the same answer,
    and leaves the global generator where the two passes left it (the gate trains next)."""
    cfg, task = _setup()
    unet, _ = _models()
    calls = []
    unet.register_forward_hook(lambda *a: calls.append(1))
    predict = dict(device="cpu", progress=False)
    ev = E.evaluate_unet(unet, task, cfg, seed=0, predict=predict)
    torch.manual_seed(5)
    again = E.unet_on_clean(unet, task, cfg, seed=0, predict=predict)
    after_passes = torch.rand(3)
    n = len(calls)
    torch.manual_seed(5)
    reused = E.unet_on_clean(unet, task, cfg, seed=0, predict=predict, evaluated=ev)
    assert len(calls) == n and torch.equal(torch.rand(3), after_passes)
    for k in ("chosen", "pixel_threshold", "shown"):
        assert getattr(reused, k) == getattr(again, k)
    assert torch.equal(reused.fp, again.fp) and torch.equal(reused.fp_tuned, again.fp_tuned)


def test_learning_curve_counts_and_does_not_gather_the_split(monkeypatch):
    """iou_curve gathered the test split's float16 maps and copied them to float32 every epoch; it
    now counts each batch as it comes, to the same value."""
    _, task = _setup()
    unet, _ = _models()
    loader = eval_loader(task.test, 4)
    ref = P.collect(unet, loader, progress=False)
    want = 100 * P.mean_iou(ref.probs.float() >= 0.5, ref.targets)
    monkeypatch.setattr(P, "collect", lambda *a, **k: pytest.fail("the curve gathered the whole split"))
    assert R.iou_curve(loader)(unet)["test_mIoU"] == want


def test_evaluation_and_curve_loaders_use_the_profiles_workers(monkeypatch, tmp_path):
    """Notebook 02's paper profile evaluated with loaders without workers (the validation loss every
    epoch, the learning curves, the final evaluation): they now take the profile's num_workers and
    pin_memory, and the paper's learning curves read a seeded subset of the test images; cpu and
    smoke keep all of them (their numbers do not move)."""
    from defectlib.experiments.severstal import data, recipe
    monkeypatch.delenv("DEFECTLIB_DATA", raising=False)      # the Severstal stand-in, whatever CI exports
    assert PROFILES["paper"].curve_limit and PROFILES["paper"].num_workers > 0 and PROFILES["paper"].pin_memory
    assert PROFILES["cpu"].curve_limit is None and PROFILES["smoke"].curve_limit is None
    calls = []

    def spy(ds, batch_size, limit=None, gate=False, seed=0, **loading):
        calls.append((len(ds), limit, loading))
        return data.eval_loader(ds, batch_size, limit, gate=gate, seed=seed)     # no worker processes in the test
    for module in (recipe, E):
        monkeypatch.setattr(module, "eval_loader", spy)
    cfg = PROFILES["smoke"].replace(num_workers=2, pin_memory=True, curve_limit=5, gate_init="scratch")
    task_, _ = data.build_tasks(cfg, None, 0)
    stage = recipe.StageResult(None, 0, 0.0, False, 1e-3)
    monkeypatch.setattr(recipe, "train_stage", lambda *a, **k: stage)       # the loaders are what is tested
    recipe.train_unet(task_, "resnet34", cfg, seed=0, device="cpu")
    recipe.train_gate(task_, cfg, seed=0, device="cpu", say=lambda *a: None)
    E.evaluate_unet(nn.Sequential(nn.Conv2d(1, task_.num_classes, 1)), task_, cfg, seed=0, predict=dict(device="cpu", progress=False))
    assert calls and all(kw == {"num_workers": 2, "pin_memory": True} for _, _, kw in calls), calls
    assert [limit for n, limit, _ in calls[:4]] == [cfg.val_limit, 5, cfg.val_limit, 5]   # val loss, curve (U-Net, gate)
