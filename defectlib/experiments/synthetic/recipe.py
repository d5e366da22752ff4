"""Notebook 04's recipe: paper 004's Table 1, rebuilt on a real target: does synthetic pre-training help when labels are few?

Paper 004 (Fulir et al., CVPRW 2023), Sec. 4-5: train FCN / DeepLabV3 / U-Net on a few real images
(baseline), or pre-train on an unrelated planar set or on synthetic images of the target surface,
with and without fine-tuning (FT) on the real images, and with exposure stacking (EX). AdamW + BCE,
random 256x256 crops biased to intensity > 10, lr / weight decay by grid search on the source
validation F1, lr halved every 50 epochs, early stop when the validation loss improves < 1 %
(relative) for 5 validations, fine-tuning at lr 1e-4, inputs scaled to [-1, 1]; pixel P / R / F1 in
patches, binarised at the F1-maximising threshold of the respective validation set.

Here the clutch (not available) is replaced by MTD magnetic tiles as the scarce real target (classes
Blowhole, Break, Crack as "defective", as in the paper's own MTD subset, and Free as clean; that
subset also counts Uneven as correct, "*uneven* and *free* are ignored", its 1312 tiles being all but
Fray's; we leave Uneven out, so that clean means no defect of any kind), NEU-Seg (binarised) as the
unrelated planar set, and the ``"tile"`` preset of :mod:`defectlib.synth.scene` as synthetic data
made to resemble the target. Arms (:data:`ARMS`):

    real        train on the few real MTD tiles only          (paper row: RealClutch (baseline))
    planar      NEU-Seg only, no fine-tuning                  (paper row: Severstal Steel)
    planar_ft   NEU-Seg, then fine-tune on MTD                (paper row: Severstal Steel (FT))
    synth       synthetic only                                (paper row: SynthClutch)
    synth_ft    synthetic, then fine-tune                     (paper row: SynthClutch (FT))
    synth_ex    synthetic, exposure-stacked input             (paper row: SynthClutch (EX))
    synth_ex_ft synthetic EX, then fine-tune with EX          (paper row: SynthClutch (EX+FT))
"""
from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ...data.sampling import stitch, tile
from ...engine import distributed as D
from ...engine.distributed import info as processes   # the world size (tests replace D with a stand-in)
from ...engine import fit, load_weights, loss_evaluator, predict, supervised_loss
from ...losses import BCEDiceLoss
from ...metrics import best_f1_threshold, pixel_prf
from ...models.seg_baselines import build_seg_baseline
from ..registry import checkpointing, train_config
from .data import CropSet, Pair, load_target, to_input
from .profile import StudyProfile

ARMS = ("real", "planar", "planar_ft", "synth", "synth_ft", "synth_ex", "synth_ex_ft")
PAPER_ROW = {"real": "RealClutch (baseline)", "planar": "Severstal Steel", "planar_ft": "Severstal Steel (FT)",
             "synth": "SynthClutch", "synth_ft": "SynthClutch (FT)", "synth_ex": "SynthClutch (EX)",
             "synth_ex_ft": "SynthClutch (EX+FT)"}
OUR_ROW = {"real": "MTD (real-only baseline)", "planar": "NEU-Seg", "planar_ft": "NEU-Seg (FT)",
           "synth": "SynthTile", "synth_ft": "SynthTile (FT)", "synth_ex": "SynthTile (EX)",
           "synth_ex_ft": "SynthTile (EX+FT)"}
# which pre-training each arm needs (None = trains on the target directly) and whether it fine-tunes
SOURCE = {"real": None, "planar": "planar", "planar_ft": "planar", "synth": "synth", "synth_ft": "synth",
          "synth_ex": "synth_ex", "synth_ex_ft": "synth_ex"}


# ------------------------------------------------------------------------------ train, evaluate
def study_config(cfg) -> StudyProfile:
    """The training runs' settings of a notebook profile (``profiles.get("04", ...)``): its
    ``study``, with the profile's numerics and progress bars, dry run included."""
    sc = cfg.study.replace(precision=cfg.precision, channels_last=cfg.channels_last, sync_bn=cfg.sync_bn,
                           progress=bool(cfg.progress), checkpoint_every=cfg.checkpoint_every,
                           checkpoint_dir=cfg.checkpoint_dir, resume=cfg.resume)
    if cfg.dry_run:  # 2 steps per run, one grid point: a dry run checks that every run starts
        sc = sc.replace(max_steps=cfg.max_steps, max_eval_batches=cfg.max_eval_batches, max_eval_images=2,
                        lr_grid=sc.lr_grid[:1], wd_grid=sc.wd_grid[:1])
    return sc


def loss_fn(sc: StudyProfile):
    """The engine ``loss_fn``: BCE (paper 004), or BCE + Dice (``sc.loss="bce_dice"``, the cpu profile)."""
    return supervised_loss(BCEDiceLoss(pool="batch") if sc.loss == "bce_dice" else torch.nn.BCEWithLogitsLoss())


def train_loader(train_pairs: list[Pair], sc: StudyProfile, exposure: bool, seed: int = 0) -> DataLoader:
    """Epochs of ``sc.steps_per_epoch`` batches of random crops (None: one crop per training image).
    Under torchrun ``sc.batch_size`` is each process's share of the global batch and the engine
    shares the epoch's crops out among the processes: the epoch holds the crops of all of them, so
    the steps per epoch stay the profile's (it held one process's: 2 processes took half the steps)."""
    world = processes().world_size
    n = sc.steps_per_epoch * sc.batch_size * world if sc.steps_per_epoch else \
        max(sc.batch_size * world, len(train_pairs))
    return DataLoader(CropSet(train_pairs, sc.crop, n, exposure, seed=seed, defect_p=sc.defect_p),
                      batch_size=sc.batch_size, shuffle=False, drop_last=True)


def train(model, train_pairs, val_pairs, sc: StudyProfile, lr: float, wd: float, exposure: bool,
          seed: int = 0, device="cpu", epochs: int | None = None, curve_pairs: list[Pair] | None = None,
          name: str | None = None):
    """One training run through :func:`defectlib.engine.fit`; the weights of the best validation
    loss are restored (``sc.restore_best``). With ``curve_pairs`` (the target's test tiles) every
    epoch also records ``test_F1`` at threshold 0.5: a learning curve, never used to choose anything.
    ``name``: the run's checkpoint folder when the profile checkpoints (``best.pt`` is then read
    from there; otherwise from a temporary folder). Returns the engine's History."""
    bce = loss_fn(sc)
    tr = train_loader(train_pairs, sc, exposure, seed)
    va = DataLoader(CropSet(val_pairs, sc.crop, sc.val_crops, exposure, augment=False, seed=seed + 1, fixed=True,
                            defect_p=sc.defect_p), batch_size=sc.batch_size * processes().world_size)  # rank 0's: global
    kept = checkpointing(sc, name)   # the run's checkpoints (resume), else only best.pt, in a temporary folder
    with tempfile.TemporaryDirectory() as tmp:
        cfg = train_config(sc, epochs=epochs or sc.max_epochs, lr=lr, weight_decay=wd, seed=seed, name=name,
                           **({} if kept else {"checkpoint_dir": tmp,  # only best.pt is read back:
                                               "save_last": False}))  # no 300-500 MB last.pt per epoch
        val_loss = loss_evaluator(va, bce, device, max_batches=sc.max_eval_batches)

        def evaluator(m):
            out = val_loss(m)
            if curve_pairs:
                out["test_F1"] = evaluate(m, curve_pairs, 0.5, exposure, sc, device)["F1"]
            return out
        hist = fit(model, tr, cfg, loss_fn=bce, device=device, evaluate=evaluator, monitor="val_loss")
        best = Path(cfg.checkpoint_dir) / "best.pt"
        di = D.info()
        if sc.restore_best and di.is_main and best.is_file():
            load_weights(model, best)
        if sc.restore_best:  # under torchrun only rank 0 wrote best.pt (in its own folder): its weights for all
            D.broadcast_weights(model, di)
    return hist


def predict_images(model, pairs: list[Pair], exposure: bool, patch=(224, 320), batch: int = 4,
                   device="cpu") -> list[torch.Tensor]:
    """Probability maps [H, W] of whole images, predicted patch-wise (zero padding, as the paper).

    Each image is cut into ``patch``-sized tiles, its tiles run in batches of ``batch`` (never mixing
    images) through :func:`defectlib.engine.predict`, one pass over every image, and the tiles'
    probabilities are stitched back. ``model`` is moved to ``device`` (and stays there)."""
    model.to(device)
    tiled = [tile(img, patch) for img, _ in pairs]
    batches = [to_input(chunk, exposure) for patches, _ in tiled for chunk in patches.split(batch)]
    probs = predict(model, batches, device, output=lambda out, _: torch.sigmoid(out.float()))
    counts = [len(patches) for patches, _ in tiled]
    return [stitch(p, info)[0] for p, (_, info) in zip(probs.split(counts), tiled)]


def _limit(pairs, sc: StudyProfile):
    return pairs[:sc.max_eval_images] if sc.max_eval_images else pairs


def _flat(pairs, probs):
    return (torch.cat([m.reshape(-1) for _, m in pairs]).bool().numpy(),
            torch.cat([p.reshape(-1) for p in probs]).numpy())


def _val_f1(model, val_pairs, exposure, sc: StudyProfile, device="cpu") -> tuple[float, float]:
    """(threshold, pixel F1) at the F1-maximising threshold on ``val_pairs`` ((0.5, 0.0) without a defect pixel)."""
    val = _limit(val_pairs, sc)
    y, s = _flat(val, predict_images(model, val, exposure, sc.eval_patch, device=device))
    return tuple(best_f1_threshold(y, s)[:2]) if y.any() else (0.5, 0.0)


def choose_threshold(model, val_pairs, exposure, sc: StudyProfile, device="cpu") -> float:
    """The threshold maximising pixel F1 on ``val_pairs`` (paper 004)."""
    val_pairs = _limit(val_pairs, sc)
    y, s = _flat(val_pairs, predict_images(model, val_pairs, exposure, sc.eval_patch, device=device))
    return best_f1_threshold(y, s)[0] if y.any() else 0.5


def evaluate(model, test_pairs, threshold, exposure, sc: StudyProfile, device="cpu") -> dict:
    """Pooled pixel precision / recall / F1 (in %) over the test images at ``threshold``."""
    pairs = _limit(test_pairs, sc)
    y, s = _flat(pairs, predict_images(model, pairs, exposure, sc.eval_patch, device=device))
    r = pixel_prf(y, s, threshold)
    return {"P": 100 * r["precision"], "R": 100 * r["recall"], "F1": 100 * r["f1"], "threshold": threshold}


def _curve(hist) -> list[tuple[int, float]]:
    """(optimizer step, test F1) after every epoch of a run trained with ``curve_pairs``."""
    return [(e["step"], e["test_F1"]) for e in hist.epochs if "test_F1" in e]


def pretrain(arch, source: dict, sc: StudyProfile, exposure: bool, seed=0, device="cpu", curve_pairs=None,
             name: str = "pretrain"):
    """Grid search over (lr, weight decay) on the source, keeping the model with the best source
    validation F1 (paper 004). ``name``: the checkpoint folder of the grid (one sub-folder per
    point). Returns (model, threshold on source val, info)."""
    best = None
    for lr in sc.lr_grid:
        for wd in sc.wd_grid:
            torch.manual_seed(seed)
            model = build_seg_baseline(arch, in_channels=3 if exposure else 1)
            hist = train(model, source["train"], source["val"], sc, lr, wd, exposure, seed, device,
                         curve_pairs=curve_pairs, name=f"{name}/lr{lr:g}-wd{wd:g}")
            # under torchrun rank 0 alone evaluates; the others wait here and take its choice
            di = D.info()
            thr, f1 = D.broadcast(_val_f1(model, source["val"], exposure, sc, device) if di.is_main else None, di)
            if best is None or f1 > best[2]:
                best = (model, thr, f1, {"lr": lr, "wd": wd, "epochs": len(hist.epochs), "steps": hist.epochs[-1]["step"],
                                         "source_val_F1": 100 * f1, "curve": _curve(hist)})
    return best[0], best[1], best[3]


def run_arch(arch: str, target: dict, sources: dict, sc: StudyProfile, arms=ARMS, seed: int = 0,
             device="cpu", log=print) -> tuple[list[dict], dict]:
    """Every requested arm for one architecture; pre-training is shared by an arm and its FT twin.
    Returns the result rows and the trained models by arm. Under torchrun rank 0 alone evaluates
    (source-validation F1, which every rank takes, the threshold, the test scores): the other
    ranks' rows have no P / R / F1."""
    rows, cache, models = [], {}, {}
    main = D.info().is_main
    for arm in arms:
        t0 = time.time()
        src, ft = SOURCE[arm], arm.endswith("_ft")
        exposure = "_ex" in arm
        if src is None:                                      # real-only baseline (grid on the target)
            model, thr, info = pretrain(arch, target, sc, exposure, seed, device,
                                        curve_pairs=target["test"] if sc.curve else None, name=f"{arch}/{arm}")
            info = {**info, "pretrain_epochs": 0, "pretrain_steps": 0}
        else:
            if src not in cache:
                cache[src] = pretrain(arch, sources[src], sc, exposure, seed, device, name=f"{arch}/pretrain-{src}")
            model, thr, info = cache[src]
            info = {**info, "pretrain_epochs": info["epochs"], "pretrain_steps": info["steps"], "curve": []}
            if ft:
                model = copy.deepcopy(model)
                hist = train(model, target["train"], target["val"], sc, sc.finetune_lr, info["wd"], exposure,
                             seed, device, epochs=sc.finetune_epochs, curve_pairs=target["test"] if sc.curve else None,
                             name=f"{arch}/{arm}")
                thr = choose_threshold(model, target["val"], exposure, sc, device) if main else None
                info = {**info, "epochs": len(hist.epochs), "steps": hist.epochs[-1]["step"], "lr": sc.finetune_lr,
                        "curve": _curve(hist)}
            else:
                info = {**info, "epochs": 0, "steps": 0}
        # under torchrun rank 0 alone evaluates; the others go on to the next run (they wait for it
        # in its first step), their rows without P / R / F1
        res = evaluate(model, target["test"], thr, exposure, sc, device) if main else {}
        row = {"arch": arch, "arm": arm, **res, **info, "time_s": time.time() - t0}
        rows.append(row)
        if main:
            log(f"{arch:9s} {arm:12s} P {res['P']:5.1f}  R {res['R']:5.1f}  F1 {res['F1']:5.1f}  "
                f"({row['time_s']:.0f} s)")
        models[arm] = model
    return rows, models


# --- defectlib doctor -----------------------------------------------------------------------------
def _source_sizes(cfg, data_root, n_target: int) -> dict:
    """Training images of each source the arms pre-train on (what one epoch is, without steps_per_epoch)."""
    sizes = {None: n_target, "synth": cfg.synth_parts * cfg.synth_views}
    sizes["synth_ex"] = sizes["synth"]
    if cfg.planar_train:
        sizes["planar"] = cfg.planar_train
    else:  # load_planar: all of NEU-Seg's training split but a fifth for validation
        from ...data import NEUSeg
        from ...synth import locate
        n = len(NEUSeg(locate("neu-seg", data_root)[0], split="training", binary=True))
        sizes["planar"] = n - max(1, n // 5)
    return sizes


def planned_steps(cfg, sc: StudyProfile, n_images: dict) -> int:
    """Optimizer steps of one architecture over the profile's arms: a ceiling, since the paper's
    early stopping may end each run sooner."""
    def per_epoch(n):
        return sc.steps_per_epoch or max(sc.batch_size, n) // sc.batch_size

    def run(epochs, n):
        steps = epochs * per_epoch(n)
        return min(steps, sc.max_steps or steps)
    grid = len(sc.lr_grid) * len(sc.wd_grid)
    sources = {SOURCE[a] for a in cfg.arms}
    total = sum(grid * run(sc.max_epochs, n_images[src]) for src in sources)
    total += sum(run(sc.finetune_epochs, n_images[None]) for a in cfg.arms if a.endswith("_ft"))
    return total


def doctor_probes(cfg, data_root=None, seed: int = 0):
    """Every architecture of the profile on MTD crops, for ``defectlib doctor``."""
    from ..registry import Probe
    sc = study_config(cfg)
    target = load_target(data_root, seed, cfg.target_train_defective, cfg.target_train_clean,
                           cfg.target_test_defective, cfg.target_test_clean, cfg.target_scale)
    steps = planned_steps(cfg, sc, _source_sizes(cfg, data_root, len(target["train"])))
    train = train_config(sc, seed=seed)
    return [Probe("04", {"fcn": "FCN-R50", "deeplabv3": "DeepLabV3-R50", "unet": "U-Net-R34"}.get(arch, arch),
                  lambda arch=arch: build_seg_baseline(arch, in_channels=1),
                  lambda: train_loader(target["train"], sc, False, seed), loss_fn(sc), train, steps,
                  dataset="MTD" if target["real"] else "MTD stand-in", upper_bound=True)
            for arch in cfg.archs]
