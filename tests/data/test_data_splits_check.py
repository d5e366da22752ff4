"""Splits (seeded, stratified, duplicates kept together) and the duplicate finder of ``data check``."""
from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from defectlib.data import NEUDET, SplitError
from defectlib.data.check import check_dataset
from defectlib.data.neu_det import filename_class
from defectlib.data.splits import (MTD_NEAR_DUPLICATES, NEU_SEG_CHECK_EXTRA, groups_from_pairs, identical_groups,
                                   neu_det_split, neu_seg_clean_test_ids, neu_seg_ids, neu_seg_near_duplicates,
                                   stratified_split)


def test_stratified_split_counts_groups_and_seed():
    labels = ["a"] * 300 + ["b"] * 300
    groups = [[0, 1], [300, 301, 302]]
    tr, te = stratified_split(labels, 0.2, seed=3, groups=groups)
    assert len(te) == 120 and Counter(labels[i] for i in te) == {"a": 60, "b": 60}
    assert sorted(tr + te) == list(range(600))
    for g in groups:
        assert len({i in te for i in g}) == 1
    assert stratified_split(labels, 0.2, 3, groups) == (tr, te)
    assert stratified_split(labels, 0.2, 4, groups)[1] != te


def test_groups_from_pairs_merges_transitively():
    ids = ["a", "b", "c", "d", "e"]
    assert sorted(map(sorted, groups_from_pairs(ids, [("a", "c"), ("c", "e", 1.0), ("x", "b")]))) == [[0, 2, 4]]


@pytest.mark.realdata
def test_real_mtd_near_duplicates_exist(real_dataset):
    from defectlib.data import MTD
    ds = MTD(real_dataset("mtd"))
    groups = groups_from_pairs(ds.ids, MTD_NEAR_DUPLICATES)
    assert len(groups) == 7
    tr, te = stratified_split(ds.labels, 0.25, 0, groups)
    assert all(len({i in set(te) for i in g}) == 1 for g in groups)


def test_neu_det_split_keeps_identical_images_together(copy_of):
    root = copy_of("neu-det")
    shutil.copy(root / "IMAGES" / "patches_1.jpg", root / "IMAGES" / "patches_5.jpg")
    ds = NEUDET(root)
    assert [sorted(ds.ids[i] for i in g) for g in identical_groups([p for p, _ in ds.files]) if len(g) > 1] \
        == [["patches_1", "patches_5"]]
    for seed in range(6):
        tr, te = neu_det_split(root, seed=seed, test_fraction=1 / 3)
        assert len(te) == 12 and Counter(map(filename_class, te)) == {c: 2 for c in NEUDET.CLASSES}
        assert ("patches_1" in te) == ("patches_5" in te)
    with pytest.raises(SplitError, match="amff_yolox_train.txt"):
        neu_det_split(root, "amff_yolox")


def test_check_finds_identical_and_near_duplicates_across_splits(copy_of):
    root = copy_of("neu-seg")
    src = root / "images" / "training" / "000201.jpg"
    arr = np.asarray(Image.open(src).convert("L")).astype(np.int16)
    noisy = np.clip(arr + np.random.default_rng(0).integers(-2, 3, arr.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(root / "images" / "test" / "000099.jpg", quality=95)
    shutil.copy(root / "annotations" / "training" / "000201.png", root / "annotations" / "test" / "000099.png")
    shutil.copy(root / "images" / "training" / "000202.jpg", root / "images" / "training" / "000299.jpg")
    shutil.copy(root / "annotations" / "training" / "000202.png", root / "annotations" / "training" / "000299.png")
    report = check_dataset(root)
    pairs = {(p.a, p.b): p for p in report.pairs}
    assert set(pairs) == {("training/000201", "test/000099"), ("training/000202", "training/000299")}
    near, ident = pairs[("training/000201", "test/000099")], pairs[("training/000202", "training/000299")]
    assert near.kind == "near" and near.cross_split and 0 < near.mad < 2.9
    assert ident.kind == "identical" and not ident.cross_split
    assert "CROSS-SPLIT" in str(report) and report.ok


def test_check_against_another_dataset(copy_of, standins):
    seg = copy_of("neu-seg")
    shutil.copy(standins["neu-det"] / "IMAGES" / "inclusion_2.jpg", seg / "images" / "test" / "000050.jpg")
    shutil.copy(seg / "annotations" / "test" / "000001.png", seg / "annotations" / "test" / "000050.png")
    report = check_dataset(seg, against=standins["neu-det"])
    assert [(p.a, p.b, p.kind) for p in report.cross_dataset] == [
        ("neu-seg:test/000050", "neu-det:all/inclusion_2", "identical")]
    assert not report.pairs and "Shared with the other dataset: 1 pairs" in str(report)


def test_standins_check_clean(standins):
    for name, path in standins.items():
        report = check_dataset(path)
        assert report.ok, str(report)
        assert report.kind == name
        assert not report.pairs, str(report)


# ------------------------------------------------------------------ real data
@pytest.mark.realdata
def test_real_neu_det_splits(real_dataset):
    root = real_dataset("neu-det")
    for seed in range(3):
        tr, te = neu_det_split(root, seed=seed)
        assert (len(tr), len(te)) == (1440, 360)
        assert Counter(map(filename_class, te)) == {c: 60 for c in NEUDET.CLASSES}
        assert ("patches_101" in te) == ("patches_105" in te)
    assert neu_det_split(root, seed=2) == (tr, te)
    a_tr, a_te = neu_det_split(root, "amff_yolox")
    assert (len(a_tr), len(a_te)) == (1620, 180) and not set(a_tr) & set(a_te)
    assert ("patches_101" in a_te) == ("patches_105" in a_te)


@pytest.mark.realdata
def test_real_neu_seg_keys(real_dataset):
    root = real_dataset("neu-seg")
    tr, te = neu_seg_ids(root, "training"), neu_seg_ids(root, "test")
    assert (len(tr), len(te)) == (3630, 840)
    # 300 names exist in both splits: keys stay distinct
    assert len({k.split("/")[1] for k in tr} & {k.split("/")[1] for k in te}) == 300
    assert len(set(tr) | set(te)) == 4470
    def cross(pairs):
        return [p for p in pairs if p[0].split("/")[0] != p[1].split("/")[0]]
    assert len(cross(neu_seg_near_duplicates(root, include_check=False))) == 16
    assert len(cross(neu_seg_near_duplicates(root))) == 22
    assert len(neu_seg_clean_test_ids(root, include_check=False)) == 840 - 16
    assert len(neu_seg_clean_test_ids(root)) == 840 - 22


@pytest.mark.realdata
def test_real_neu_det_check_finds_the_duplicate_pair(real_dataset):
    report = check_dataset(real_dataset("neu-det"))
    assert report.ok
    assert [(p.a, p.b, p.kind) for p in report.pairs] == [("all/patches_101", "all/patches_105", "identical")]
    assert report.counts["boxes per class"]["inclusion"] == 1011


@pytest.mark.realdata
@pytest.mark.slow
def test_real_neu_seg_check_finds_the_cross_split_near_duplicates(real_dataset):
    root = real_dataset("neu-seg")
    report = check_dataset(root)
    found = {tuple(sorted((p.a, p.b))) for p in report.pairs}
    listed = {tuple(sorted((a, b))) for a, b, _ in neu_seg_near_duplicates(root, include_check=False)}
    assert len(listed) == 52 and listed <= found  # all 52 listed pairs, 16 of them cross-split
    assert found == listed | {tuple(sorted((a, b))) for a, b, _ in NEU_SEG_CHECK_EXTRA}
    assert sum(p.cross_split for p in report.pairs) == 22
    assert report.ok
