"""Notebook 05's recipe: the course's segmentation models, built, trained on the user's folder with
the cpu recipe of the notebook that teaches each (:mod:`.profile`), evaluated (:mod:`.evaluation`),
and measured (parameters, GFLOPs, images/s at inference).

The models (:data:`MODELS`), all from random weights (nothing is downloaded), grey input, one logit
map (OCINet: four, deep supervision):

- ``unet_resnet34``: the ResNet-34 U-Net of notebooks 02 and 04 (:func:`defectlib.models.unet.build_unet`);
- ``ocinet``: notebook 03's OCINet (:func:`defectlib.models.ocinet.build_ocinet`, PVT-v2-b2 backbone);
- ``deeplabv3`` and ``fcn``: notebook 04's torchvision DeepLabV3 / FCN with dilated ResNet-50s
  (:func:`defectlib.models.seg_baselines.build_seg_baseline`).

Losses: OCINet's Eq. (1) of paper 003 (BCE + IoU on S^1..S^4, weights 1, 1, 1/2, 1/4); BCE + Dice
for the others (notebook 04's cpu recipe).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable

import torch

from ...complexity import count_flops, count_parameters, measure_throughput
from ...engine import fit, supervised_loss
from ...losses import BCEDiceLoss
from ...models.ocinet import build_ocinet
from ...models.seg_baselines import build_seg_baseline
from ...models.unet import build_unet
from ...runtime import seed_everything
from ..ocinet.recipe import ocinet_loss_fn
from ..registry import Probe, train_config
from .data import YourData, train_loader
from .evaluation import evaluate_model, model_maps
from .profile import StepPlan, plan_steps


@dataclass(frozen=True)
class Model:
    """One trainable row of the leaderboard: its label, builder and ``loss_fn`` for the engine."""
    label: str
    build: Callable[[], torch.nn.Module]
    loss: Callable[[], Callable]
    taught_in: str


def _bce_dice():
    return supervised_loss(BCEDiceLoss(pool="batch"))


MODELS = {
    "unet_resnet34": Model("U-Net-ResNet34", lambda: build_unet("resnet34", num_classes=1, in_channels=1),
                           _bce_dice, "notebooks 02 and 04"),
    "ocinet": Model("OCINet", lambda: build_ocinet("full"), ocinet_loss_fn, "notebook 03"),
    "deeplabv3": Model("DeepLabV3-R50", lambda: build_seg_baseline("deeplabv3"), _bce_dice, "notebook 04"),
    "fcn": Model("FCN-R50", lambda: build_seg_baseline("fcn"), _bce_dice, "notebook 04"),
}
#: the leaderboard's trivial rows (:mod:`.evaluation`)
BASELINES = {"otsu": "Otsu threshold", "nothing": "predict nothing"}
LABELS = {**{k: m.label for k, m in MODELS.items()}, **BASELINES}


def build_model(name: str) -> torch.nn.Module:
    """Model ``name`` (a key of :data:`MODELS`), freshly initialised."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name].build()


def config(cfg, name: str, plan: StepPlan, **run):
    """The engine's TrainConfig of model ``name``: the profile's recipe (``cfg.training(name)``),
    ``plan.epochs`` and what the run adds (seed...); ``name`` is also the model's checkpoint
    sub-folder where the profile checkpoints (unique in the run: one training per model)."""
    return train_config(cfg, name, name=name, epochs=plan.epochs, **run)


def _iou_curve(data: YourData, cfg, device):
    """``curve(model)`` for :func:`defectlib.engine.fit`: mean IoU at 0.5 (in %) on the first
    ``cfg.curve_images`` validation images; drawn, never used to choose anything."""
    from ...metrics import segmentation_scores

    def curve(model):
        ious = [float(segmentation_scores((p >= 0.5)[None], m[None])["iou"])
                for _, p, m in model_maps(model, data, "val", cfg.input_size, device, cfg.curve_images)]
        return {"val/IoU@0.5": 100 * sum(ious) / max(len(ious), 1)}
    return curve


def train(name: str, data: YourData, cfg, device, seed: int = 0, plan: StepPlan | None = None,
          batch_size: int | None = None, **run) -> dict:
    """Train model ``name`` on ``data``'s training images as ``cfg`` says; returns ``{"model",
    "history", "train_s", "plan"}``. ``batch_size``: the per-process batch under torchrun (the
    plan's batch is the global one); ``run``: more TrainConfig fields (``checkpoint_dir``...)."""
    plan = plan or plan_steps(len(data.parts["train"]), cfg)
    seed_everything(seed)
    model = build_model(name).to(device)
    loader = train_loader(data, cfg, plan, seed, batch_size)
    curve = _iou_curve(data, cfg, device) if cfg.curve_every else None
    t0 = time.perf_counter()
    history = fit(model, loader, config(cfg, name, plan, seed=seed, **run), loss_fn=MODELS[name].loss(),
                  device=device, curve=curve)
    return {"model": model, "history": history, "train_s": time.perf_counter() - t0, "plan": plan}


def eval_limit(cfg) -> int | None:
    """Images per part a dry run evaluates (``max_eval_batches`` of 4 images), else all."""
    return None if cfg.max_eval_batches is None else 4 * cfg.max_eval_batches


def evaluate(name: str, model, data: YourData, cfg, device="cpu", progress: bool = False) -> dict:
    """:func:`.evaluation.evaluate_model` of a trained ``model``, first made what the export will
    be: fp32 weights in the contiguous memory format (training left them channels_last)."""
    model.to(memory_format=torch.contiguous_format)
    return evaluate_model(model, data, cfg.input_size, device, eval_limit(cfg), cfg.n_worst, progress,
                          MODELS[name].label)


def complexity(model, size: int, device="cpu", warmup: int = 3, repeats: int = 10) -> dict:
    """Parameters (M), GFLOPs of one forward pass (2 per multiply-add) and images/s at inference,
    batch 1, fp32, at ``size`` x ``size``, on ``device``."""
    model = copy.deepcopy(model).to(device).to(memory_format=torch.contiguous_format)
    shape = (1, 1, size, size)
    return {"params_M": count_parameters(model) / 1e6, "GFLOPs": count_flops(model, shape, device) / 1e9,
            "images_per_s": measure_throughput(model, shape, device=device, warmup=warmup,
                                               repeats=repeats)["images_per_s"]}


def train_and_evaluate(name: str, data: YourData, cfg, device, seed: int = 0, progress: bool = False,
                       evaluate_sets: bool = True, batch_size: int | None = None, **run) -> dict:
    """:func:`train`, then (``evaluate_sets``: rank 0 under torchrun) :func:`evaluate` and
    :func:`complexity`: the train result plus ``"scores"`` and ``"complexity"``."""
    out = train(name, data, cfg, device, seed, batch_size=batch_size, **run)
    if evaluate_sets:
        out["scores"] = evaluate(name, out["model"], data, cfg, device, progress)
        out["complexity"] = complexity(out["model"], cfg.input_size, device, cfg.throughput_warmup,
                                       cfg.throughput_repeats)
    return out


# --- defectlib doctor -----------------------------------------------------------------------------
def doctor_probes(cfg, data_root=None, seed: int = 0):
    """Every model of the profile, on the folder the notebook reads without ``data_dir`` (binarised
    NEU-Seg, else its stand-in), for ``defectlib doctor``."""
    from .data import folder_spec, look, split
    spec = folder_spec(None, data_root)
    data = split(look(spec, duplicates=False), cfg.val_fraction, cfg.test_fraction, seed,
                 min_images=cfg.min_images, max_images=cfg.max_images)
    plan = plan_steps(len(data.parts["train"]), cfg)
    steps = min(plan.steps, cfg.max_steps or plan.steps)
    return [Probe("05", MODELS[name].label, MODELS[name].build, lambda: train_loader(data, cfg, plan, seed),
                  MODELS[name].loss(), config(cfg, name, plan, seed=seed), steps, dataset=spec.name)
            for name in cfg.models]
