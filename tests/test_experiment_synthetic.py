"""Paper-004 study plumbing: crops, input scaling, exposure stacking, thresholds, every arm runs."""
import numpy as np
import pytest
import torch

from defectlib import profiles
from defectlib.experiments.synthetic import (ARMS, OUR_ROW, PAPER_ROW, CropSet, StudyProfile, choose_threshold, evaluate,
                                   run_arch, study_config, to_input)


def small_study(**changes) -> StudyProfile:
    """A study small enough for a test: one grid point, short epochs (changes on top)."""
    return StudyProfile(crop=128, batch_size=8, steps_per_epoch=20, max_epochs=10, val_crops=32, lr_grid=(1e-3,),
                        wd_grid=(1e-4,), finetune_epochs=10).replace(**changes)


def _pairs(n, size=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        img = torch.zeros(1, size, size)
        img[:, :, size // 2:] = 0.3 + 0.4 * torch.rand(1, size, size - size // 2, generator=g)  # bright right half
        mask = torch.zeros(1, size, size)
        mask[:, 10:14, size // 2 + 5:size // 2 + 12] = 1
        img[mask.bool()] = 0.05
        out.append((img, mask))
    return out


def test_crops_are_intensity_biased_scaled_and_exposure_stacked():
    pairs = _pairs(3, size=64)
    ds = CropSet(pairs, crop=16, length=40, exposure=False, seed=0)
    for x, m in (ds[i] for i in range(40)):
        assert x.shape == (1, 16, 16) and m.shape == (1, 16, 16)
        assert x.min() >= -1 and x.max() <= 1
        assert (x > -1 + 2 * 10 / 255).any()               # every crop holds object (bright) pixels
    ex = CropSet(pairs, crop=16, length=4, exposure=True, seed=0)
    x, _ = ex[0]
    assert x.shape == (3, 16, 16)
    img = torch.rand(1, 8, 8)
    stacked = (to_input(img, True) + 1) / 2
    assert torch.allclose(stacked[0], img[0]) and torch.allclose(stacked[2], (4 * img[0]).clamp(0, 1))
    fixed = CropSet(pairs, crop=16, length=4, seed=1, fixed=True)
    live = CropSet(pairs, crop=16, length=4, seed=1)
    first = fixed[2][0].clone()
    assert not torch.equal(live[2][0], live[2][0])          # an unfixed set draws a new crop per read
    assert torch.equal(fixed[2][0], first) and torch.equal(fixed[0][0], fixed.cache[0][0])   # a fixed one never
    same = CropSet(pairs, crop=16, length=4, seed=1, fixed=True)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(fixed.cache, same.cache))


class _Oracle(torch.nn.Module):
    """Logits = +/- from the input intensity: dark pixels on the part are 'defects'."""
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        img = (x[:, :1] + 1) / 2
        return 20 * ((img < 0.1) & (img > 0.02)).float() - 10 + 0 * self.w


def test_threshold_and_evaluation_on_an_oracle():
    pairs = _pairs(2)                 # background 0, part in [0.3, 0.7], defects at 0.05
    sc = small_study(eval_patch=(32, 32))
    thr = choose_threshold(_Oracle(), pairs, False, sc)
    res = evaluate(_Oracle(), pairs, thr, False, sc)
    assert res["F1"] == pytest.approx(100.0)
    res_hi = evaluate(_Oracle(), pairs, 0.9999999, False, sc)
    assert res_hi["R"] == 0.0 and res_hi["F1"] == 0.0


@pytest.mark.slow
def test_every_arm_runs_a_step():
    tgt = {"train": _pairs(3, seed=1), "val": _pairs(2, seed=2), "test": _pairs(2, seed=3)}
    src = {"train": _pairs(3, seed=4), "val": _pairs(2, seed=5)}
    sc = small_study(crop=32, batch_size=2, steps_per_epoch=1, max_epochs=1, finetune_epochs=1,
                     val_crops=2, eval_patch=(48, 48))
    logs = []
    rows, models = run_arch("unet", tgt, {"planar": src, "synth": src, "synth_ex": src}, sc, ARMS,
                            log=logs.append)
    assert [r["arm"] for r in rows] == list(ARMS) and set(models) == set(ARMS)
    for r in rows:
        assert 0 <= r["F1"] <= 100 and 0 <= r["P"] <= 100 and 0 <= r["R"] <= 100
        assert r["epochs"] == (0 if r["arm"] in ("planar", "synth", "synth_ex") else 1)
    assert models["synth_ex"].encoder is not None
    first = next(models["synth_ex_ft"].parameters())
    assert first.shape[1] == 3                              # exposure-stacked arms see 3 channels
    assert next(models["real"].parameters()).shape[1] == 1
    assert len(logs) == len(ARMS)
    assert set(PAPER_ROW) == set(OUR_ROW) == set(ARMS)


def test_profiles_and_dry_run():
    for name in profiles.PROFILE_NAMES:
        cfg = profiles.get("04", name)
        sc = study_config(cfg)
        assert set(cfg.arms) <= set(ARMS) and sc.crop > 0
    assert set(profiles.get("04", "paper").arms) == set(ARMS)  # the paper profile runs every arm
    cpu = profiles.get("04", "cpu")   # the cpu profile: the arms that decide the claim, trained long enough
    assert {"real", "planar_ft", "synth_ft"} <= set(cpu.arms)
    assert study_config(cpu).max_epochs * study_config(cpu).steps_per_epoch >= 800
    dry = study_config(profiles.get("04", "paper", dry_run=True))
    assert dry.max_steps == 2 and dry.max_eval_batches == 1 and dry.max_eval_images == 2
    assert dry.lr_grid == (1e-3,) and dry.wd_grid == (1e-4,)
    paper = profiles.get("04", "paper")
    assert paper.study.lr_grid == (1e-3, 1e-4) and paper.study.wd_grid == (1e-4, 1e-5)
    assert paper.study.crop == 256 and paper.study.batch_size == 16
    assert np.isclose(paper.study.finetune_lr, 1e-4)


@pytest.mark.realdata
def test_mtd_target_split_keeps_near_duplicates_together(real_dataset):
    """MTD's near-duplicate pairs never straddle train / val / test of the few-label target."""
    from defectlib.data.splits import MTD_NEAR_DUPLICATES
    from defectlib.experiments.synthetic import load_target

    for seed in (0, 1, 2, 3):
        t = load_target(real_dataset("mtd").parent, seed=seed, scale=0.25)
        side = {i: k for k, ids in t["ids"].items() for i in ids}
        assert len(t["ids"]["train"]) >= 24 and len(side) == sum(map(len, t["ids"].values()))
        split = [(a, b) for a, b, *_ in MTD_NEAR_DUPLICATES if a in side and b in side and side[a] != side[b]]
        assert not split, f"seed {seed}: {split}"


def test_cpu_recipe_options_record_a_learning_curve_and_keep_the_last_weights():
    """The cpu profile's departures from the paper (defect-centred crops, BCE + Dice, one-cycle,
    bf16, no early stop, last weights, learning curve) run together; the curve has one test F1
    per epoch of every run that trains on the target, and none for the pre-training runs."""
    tgt = {"train": _pairs(3, seed=1), "val": _pairs(2, seed=2), "test": _pairs(2, seed=3)}
    src = {"train": _pairs(3, seed=4), "val": _pairs(2, seed=5)}
    sc = small_study(crop=32, batch_size=2, steps_per_epoch=2, max_epochs=2, finetune_epochs=1, val_crops=2,
                     eval_patch=(48, 48), loss="bce_dice", defect_p=0.7, schedule="onecycle", early_stopping=False,
                     restore_best=False, curve=True, precision="bf16", channels_last=True)
    rows, _ = run_arch("unet", tgt, {"synth": src}, sc, ("real", "synth", "synth_ft"), log=lambda *_: None)
    by_arm = {r["arm"]: r for r in rows}
    assert [s for s, _ in by_arm["real"]["curve"]] == [2, 4]
    assert [s for s, _ in by_arm["synth_ft"]["curve"]] == [2] and by_arm["synth_ft"]["pretrain_steps"] == 4
    assert by_arm["synth"]["curve"] == [] and all(0 <= f <= 100 for r in rows for _, f in r["curve"])


def test_training_writes_no_last_checkpoint(monkeypatch):
    """Only best.pt is read back, so no last.pt (weights + optimizer) is written every epoch."""
    import defectlib.experiments.synthetic.recipe as S
    seen = []
    real_fit = S.fit
    monkeypatch.setattr(S, "fit", lambda model, loader, cfg, **kw: seen.append(cfg) or real_fit(model, loader, cfg, **kw))
    tgt = {"train": _pairs(3, seed=1), "val": _pairs(2, seed=2), "test": _pairs(2, seed=3)}
    sc = small_study(crop=32, batch_size=2, steps_per_epoch=1, max_epochs=1, val_crops=2, eval_patch=(48, 48))
    run_arch("unet", tgt, {}, sc, ("real",), log=lambda *_: None)
    assert seen and all(not cfg.save_last for cfg in seen)
