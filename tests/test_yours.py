"""Notebook 05 (your own data): the folder looked at and split, the steps planned from its size, every
leaderboard score against defectlib.metrics computed another way, the trivial rows, the verdict.

``make_folder`` writes a small folder of grey images with one bright rectangle each and 0/255 masks,
the layout a user brings (``images/`` + ``masks/``); other tests import it."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlib import metrics, profiles
from defectlib.data.errors import DatasetError, MaskSizeError, MissingFileError, SplitError
from defectlib.experiments import yours as Y


def make_folder(root: Path, n: int = 24, size=(48, 48), clean: int = 2, seed: int = 0, twins: int = 0) -> Path:
    """``n`` images (the last ``clean`` without a defect; two sizes alternate when ``size`` is a
    list) with 0/255 masks; ``twins``: that many extra images that copy image 0, 1... (near-duplicates)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    sizes = size if isinstance(size, list) else [size]
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        img = rng.normal(90, 12, (h, w)).clip(0, 255)
        mask = np.zeros((h, w), np.uint8)
        if i < n - clean:
            y, x = rng.integers(2, h // 2), rng.integers(2, w // 2)
            dy, dx = rng.integers(4, h // 3), rng.integers(4, w // 3)
            img[y:y + dy, x:x + dx] += 80
            mask[y:y + dy, x:x + dx] = 255
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / "images" / f"part{i:03d}.png")
        Image.fromarray(mask).save(root / "masks" / f"part{i:03d}.png")
    for k in range(twins):
        for sub in ("images", "masks"):
            shutil.copy(root / sub / f"part{k:03d}.png", root / sub / f"twin{k:03d}.png")
    return root


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "line7", twins=2)


# --- looking and splitting -------------------------------------------------------------------------
def test_look_reads_the_folder_as_the_data_check_does(folder):
    look = Y.look(Y.folder_spec(folder))
    s = look.summary()
    assert (s["images"], s["defective"], s["empty masks"]) == (26, 24, 2)
    assert s["identical pairs"] == 2 and {(a, b) for a, b, _, _ in look.pairs} == {
        ("part000", "twin000"), ("part001", "twin001")}
    assert "binary, 255 is a defect" in s["mask rule"]
    image, mask = look.folder[0]
    assert np.isclose(look.shares[0], float(mask.mean()))
    assert "--images images --masks masks" in look.spec.command()


def test_the_split_is_seeded_stratified_and_keeps_twins_together(folder):
    look = Y.look(Y.folder_spec(folder))
    a, b = Y.split(look, seed=3), Y.split(look, seed=3)
    assert a.parts == b.parts and sorted(sum(a.parts.values(), [])) == list(range(26))
    side = {look.folder.ids[i]: p for p, ix in a.parts.items() for i in ix}
    assert side["part000"] == side["twin000"] and side["part001"] == side["twin001"]
    assert all(len(ix) > 0 for ix in a.parts.values())
    assert Y.split(look, seed=4).parts != a.parts
    assert any("near-duplicate" in n for n in a.notes)


def test_a_split_file_is_honoured_and_its_leaks_are_said(folder, tmp_path):
    look = Y.look(Y.folder_spec(folder))
    ids = look.folder.ids
    part = {"part000": "test", "part002": "test", "part003": "val"}
    lines = ["image,part"] + [f"{k}.png,{part.get(k, 'train')}" for k in ids]
    f = tmp_path / "split.csv"
    f.write_text("\n".join(lines) + "\n# a comment\n")
    data = Y.split(look, split_file=f)
    assert [ids[i] for i in data.parts["test"]] == ["part000", "part002"]
    assert [ids[i] for i in data.parts["val"]] == ["part003"]
    assert any("part000" in n and "twin000" in n for n in data.notes)      # a twin across parts: said


@pytest.mark.parametrize("edit,match", [
    (lambda lines: lines[:-1], r"1 images of the folder are not listed"),
    (lambda lines: lines + ["part000.png,train"], r"line \d+: image 'part000.png' is listed twice"),
    (lambda lines: lines + ["nosuch.png,train"], r"line \d+: image 'nosuch.png' is not in the folder"),
    (lambda lines: [lines[0].replace(",val", ",tarin")] + lines[1:], r"line 1: part 'tarin'"),
    (lambda lines: [ln.replace(",test", ",train") for ln in lines], r"no image in test"),
])
def test_a_bad_split_file_names_the_file_and_the_line(folder, tmp_path, edit, match):
    look = Y.look(Y.folder_spec(folder))
    lines = [f"{k}.png,{'test' if i < 3 else 'val' if i < 6 else 'train'}" for i, k in enumerate(look.folder.ids)]
    lines = [lines[3]] + lines[:3] + lines[4:]          # line 1 is not a header: a bad part there is an error
    f = tmp_path / "split.txt"
    f.write_text("\n".join(edit(lines)))
    with pytest.raises(SplitError, match=match) as info:
        Y.split(look, split_file=f)
    assert str(f) in str(info.value)


def test_a_folder_too_small_to_split_says_what_it_needs(tmp_path):
    look = Y.look(Y.folder_spec(make_folder(tmp_path / "few", n=12)))
    with pytest.raises(SplitError, match=r"12 labelled images: too few .* at least 20") as info:
        Y.split(look)
    assert str(tmp_path / "few") in str(info.value) and "split_file" in str(info.value)


def test_a_bad_folder_stops_with_the_data_layers_error(tmp_path):
    root = make_folder(tmp_path / "bad", n=22)
    (root / "masks" / "part004.png").unlink()
    with pytest.raises(MissingFileError, match=r"part004\.png: image has no mask"):
        Y.look(Y.folder_spec(root))
    root = make_folder(tmp_path / "bad2", n=22)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "masks" / "part007.png")
    with pytest.raises(MaskSizeError, match=r"part007\.png: mask is 10x10 but image part007\.png is 48x48"):
        Y.look(Y.folder_spec(root))
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        Y.look(Y.folder_spec(tmp_path / "nowhere"))
    boxes = make_folder(tmp_path / "boxes", n=22)                      # VOC boxes where masks were expected
    shutil.rmtree(boxes / "masks")
    (boxes / "annotations").mkdir()
    (boxes / "annotations" / "part000.xml").write_text("<annotation></annotation>")
    with pytest.raises(DatasetError, match=r"mask folder not found; the folder holds VOC box annotations .*"
                                           r"notebook 01's detector"):
        Y.look(Y.folder_spec(boxes))


def test_without_a_folder_it_reads_binarised_neu_seg(monkeypatch):
    monkeypatch.delenv("DEFECTLIB_DATA", raising=False)
    spec = Y.folder_spec(None, None)
    assert spec.images == "images/training" and spec.masks == "annotations/training" and not spec.real
    look = Y.look(spec, duplicates=False)
    image, mask = look.folder[0]
    assert set(np.unique(mask.numpy())) <= {0.0, 1.0} and look.defective.all()   # every class is "defect"


def test_the_notebook_reads_real_binarised_neu_seg_training(real_dataset):
    spec = Y.folder_spec(None, real_dataset("neu-seg").parent)
    assert spec.real and len(spec.open()) == 3630


def test_the_summary_quotes_the_committed_seeds_beside_their_folder_only(monkeypatch):
    """The seeds committed under results/ ran on binarised NEU-Seg: a run on your folder is not
    told that they are its verdicts."""
    from types import SimpleNamespace

    from defectlib.record import Recorder, verdict
    seen = []
    monkeypatch.setattr(verdict, "report", lambda *a, committed=True, **k: seen.append(committed) or "")
    cfg = profiles.get("05", "smoke")
    for name in (Y.NEU_SEG, "line7", "NEU-Seg stand-in (generated), binarised"):
        data = SimpleNamespace(name=name, parts={"train": list(range(10))}, source="seeded split (seed 0)")
        Y.record_summary(Recorder(None, "05_your_own_data", "smoke"), cfg, "smoke", Y.plan_steps(10, cfg), data)
    assert seen == [True, False, False]


# --- the plan, the profiles ------------------------------------------------------------------------
def test_steps_follow_the_folders_size_within_the_profiles_bounds():
    cpu = profiles.get("05", "cpu")
    big, small = Y.plan_steps(2541, cpu), Y.plan_steps(30, cpu)
    assert (big.steps, big.batch_size, big.epochs, big.steps_per_epoch) == (500, 8, 2, 250)  # the cap
    assert small.epochs == 67 and small.steps_per_epoch == 3 and small.steps == 201  # the floor, in whole epochs
    mid = Y.plan_steps(1000, cpu)
    assert mid.steps == 375 and mid.epochs == 3                                           # 3 passes of 125
    tiny = Y.plan_steps(3, profiles.get("05", "smoke"))
    assert tiny.batch_size == 2 and tiny.steps == 2
    for n in (1, 7, 99, 2541, 10_000):
        p = Y.plan_steps(n, cpu)
        assert p.steps == p.epochs * p.steps_per_epoch and p.steps_per_epoch <= max(1, n // p.batch_size)


def test_the_profiles_models_are_checked_when_made():
    with pytest.raises(ValueError, match="choose from"):
        profiles.get("05", "cpu", models=("unet",))
    assert profiles.get("05", "smoke", **Y.with_models(["fcn"])).models == ("fcn",)
    cpu, paper = profiles.get("05", "cpu"), profiles.get("05", "paper")
    assert cpu.precision == "auto" and cpu.channels_last and set(paper.models) == set(Y.MODEL_NAMES)
    assert profiles.get("05", "cpu").training("ocinet")["optimizer"] == "adam"
    assert profiles.get("05", "cpu").training("fcn")["optimizer"] == "adamw"


# --- the scores ------------------------------------------------------------------------------------
def _maps(seed=0, n=6):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = (20, 24) if i % 2 else (16, 16)
        mask = np.zeros((h, w), bool)
        if i:                                   # image 0 is clean
            mask[3:9, 4:12] = True
        prob = np.clip(mask * 0.6 + rng.random((h, w)) * 0.5, 0, 1).astype(np.float32)
        out.append((None, prob, mask))
    return out


def test_the_threshold_curve_is_the_metrics_at_each_threshold():
    maps = _maps()
    curve = Y.threshold_curve(maps)
    for k, t in enumerate(Y.THRESHOLDS):
        cut = [p >= t for _, p, _ in maps]
        iou = np.mean([metrics.segmentation_scores(c[None], m[None])["iou"] for c, (_, _, m) in zip(cut, maps)])
        f1 = metrics.pixel_prf(np.concatenate([m.ravel() for _, _, m in maps]),
                               np.concatenate([c.ravel().astype(float) for c in cut]), 0.5)["f1"]
        assert np.isclose(curve["IoU"][k], 100 * iou) and np.isclose(curve["F1"][k], 100 * f1)
    t, best = Y.choose_threshold(curve)
    assert best == curve["IoU"].max() and t == Y.THRESHOLDS[int(np.argmax(curve["IoU"]))]
    flat = {"thresholds": np.array([0.1, 0.2, 0.3]), "IoU": np.array([5.0, 7.0, 7.0])}
    assert Y.choose_threshold(flat) == (0.2, 7.0)                     # a tie: the lower threshold


def test_the_test_scores_are_defectlibs_metrics():
    maps = _maps(1)
    rows = [(None, p, p >= 0.5, m) for _, p, m in maps]
    s = Y.score_masks(rows, worst=2)
    preds, masks = [r[2] for r in rows], [r[3] for r in rows]
    per = [metrics.segmentation_scores(p[None], m[None]) for p, m in zip(preds, masks)]
    assert np.isclose(s["IoU"], 100 * np.mean([x["iou"] for x in per]))
    assert np.isclose(s["Dice"], 100 * np.mean([x["dice"] for x in per]))
    assert np.isclose(s["PA"], 100 * np.mean([x["foreground_recall"] for x, m in zip(per, masks) if m.any()]))
    assert np.isclose(s["wFm"], 100 * np.mean([metrics.weighted_fmeasure(p[None].astype(float), m[None])
                                               for p, m in zip(preds, masks) if m.any()]))
    flat_p = np.concatenate([p.ravel() for p in preds]).astype(float)
    assert np.isclose(s["F1"], 100 * metrics.pixel_prf(np.concatenate([m.ravel() for m in masks]), flat_p)["f1"])
    assert s["n_images"] == 6 and s["n_defective"] == 5
    worst = [w[3] for w in s["worst"]]
    assert worst == sorted(100 * s["per_image_iou"])[:2]
    assert len(set(s["digests"])) == len({p.tobytes() + bytes(p.shape) for p in preds})


def test_the_trivial_rows(folder):
    data = Y.split(Y.look(Y.folder_spec(folder)), seed=1)
    nothing = Y.evaluate_nothing(data)
    clean_test = [i for i in data.parts["test"] if data.look.shares[i] == 0]
    assert np.isclose(nothing["IoU"], 100 * len(clean_test) / len(data.parts["test"]))
    assert nothing["F1"] == 0 and nothing["PA"] == 0
    otsu = Y.evaluate_otsu(data)
    assert otsu["dark"] is False and otsu["IoU"] > 50          # bright rectangles on a noisy grey
    img = np.full((1, 20, 20), 0.3, np.float32)
    img[0, 5:9, 5:12] = 0.9
    assert (Y.evaluation.otsu_mask(img[0], dark=False) == (img[0] > 0.5)).all()
    assert (Y.evaluation.otsu_mask(img[0], dark=True) == (img[0] < 0.5)).all()


# --- the verdict -----------------------------------------------------------------------------------
def test_the_bootstrap_interval():
    a = np.linspace(0.2, 0.8, 50)
    assert Y.bootstrap_difference(a, a) == (0.0, 0.0, 0.0, 0.0)
    d, lo, hi, ahead = Y.bootstrap_difference(a, a - 0.03)
    assert np.isclose([d, lo, hi], 3.0).all() and ahead == 1.0
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.2, 200)
    d, lo, hi, _ = Y.bootstrap_difference(a.mean() + noise, np.full(200, a.mean()), 2000)
    assert lo < d < hi and lo < 0 < hi or abs(d) > 2       # noise around zero: an interval around it


def _row(val, ious):
    ious = np.asarray(ious, float)
    return {"val_IoU": val, "IoU": 100 * ious.mean(), "Dice": 0.0, "F1": 0.0, "threshold": 0.5,
            "n_images": len(ious), "per_image_iou": ious}


def test_the_pick_is_made_on_validation_and_says_how_sure():
    good = np.linspace(0.5, 0.9, 40)
    rows = {"unet_resnet34": _row(60, good), "ocinet": _row(55, good - 0.1),
            "otsu": _row(20, good * 0.3), "nothing": _row(0, np.zeros(40))}
    p = Y.pick(rows, real=True)
    assert p.best == "unet_resnet34" and p.runner_up == "ocinet" and p.sure and "**sure**" in p.text
    assert np.isclose(p.diff, 10.0) and np.isclose(p.margin, 100 * good.mean() * 0.7)
    rows["ocinet"] = _row(70, good - 0.1)                      # best on validation, worse on test: still picked
    p = Y.pick(rows, real=True)
    assert p.best == "ocinet" and not p.sure and "not sure" in p.text
    rows["otsu"] = _row(20, good + 0.05)                       # a trivial row above every model
    assert "not above it" in Y.pick(rows, real=True).text
    rows = {"unet_resnet34": _row(60, good), "ocinet": _row(59, good), "nothing": _row(0, np.zeros(40))}
    assert "a tie" in Y.pick(rows, real=True).text
    assert not Y.pick(rows, real=False).sure and "stand-in" in Y.pick(rows, real=False).text


def test_the_leaderboard_shows_the_seed_spread_when_several_seeds_ran():
    def run(seed, iou):
        return {"seed": seed, "profile": "cpu", "metrics": [
            {"name": "unet_resnet34/test/IoU", "value": iou}, {"name": "nothing/test/IoU", "value": 0.0}]}
    one = Y.leaderboard(run(0, 70.0), ["unet_resnet34", "nothing"], 224)
    assert "| U-Net-ResNet34 | ours (cpu) | 70.0 |" in one and "| predict nothing | ours (cpu) | 0.0 |" in one
    three = Y.leaderboard([run(0, 70.0), run(1, 72.0), run(2, 74.0)], ["unet_resnet34", "nothing"], 224)
    assert "| U-Net-ResNet34 | 72.0 +- 2.0 |" in three and "seeds 0, 1, 2" in three
