"""Notebook 02's tasks: datasets in the paper's form (one channel per defect class, clean flag).

Built on small generated stand-ins (the real loaders read them); the real NEU-Seg / MTD checks skip
without DEFECTLIB_DATA.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from defectlib.synth.writers import write_mtd, write_neu_seg, write_severstal
from defectlib.experiments.severstal import eval_loader, gate_loader, mtd_task, neu_seg_task, seg_loader, severstal_task


def _check_splits(task):
    ids = [task.train.ids, task.val.ids, task.test.ids]
    assert all(ids) and sum(map(len, ids)) == len(set().union(*map(set, ids)))   # disjoint


def _check_flags(subset, num_classes, n=6):
    for i in range(min(n, len(subset))):
        image, mask = subset[i]
        assert image.shape[0] == 1 and mask.shape[0] == num_classes
        assert 0 <= float(image.min()) and float(image.max()) <= 1
        present = [c for c in range(num_classes) if mask[c].any()]
        assert present == sorted(subset.classes[i]) and subset.defective[i] == bool(present)


def test_severstal_task_scaled(tmp_path):
    root = write_severstal(tmp_path / "sev", n_images=20, seed=1)
    task = severstal_task(root, real=False, scale=0.25, crops=((64, 96), (64, 128)), seed=0)
    _check_splits(task)
    assert task.num_classes == 4 and task.stands_in_for == "Severstal"
    image, mask = task.train[0]
    assert image.shape == (1, 64, 400) and mask.shape == (4, 64, 400)
    assert set(torch.unique(mask).tolist()) <= {0.0, 1.0}
    # clean images appear in train and test (stratified by class set)
    assert not all(task.train.defective) and not all(task.test.defective)


def test_neu_seg_task_one_hot(tmp_path):
    root = write_neu_seg(tmp_path / "neu-seg", n_training=24, n_test=8, seed=2)
    task = neu_seg_task(root, real=False, crops=((64, 64), (64, 96)), seed=0)
    _check_splits(task)
    _check_flags(task.train, 3)
    from defectlib.data.neu_seg import NEUSeg
    base = NEUSeg(root, "test")
    k = base.ids.index(task.test.ids[0])
    _, index_mask = base[k]
    _, channels = task.test[0]
    for c in range(3):                                   # channel c = pixels of class index c + 1
        assert torch.equal(channels[c].bool(), index_mask == c + 1)


def test_mtd_task_classes_and_clean(tmp_path):
    root = write_mtd(tmp_path / "mtd", n_free=12, per_defect_class=4, seed=3)
    task = mtd_task(root, real=False, size=(96, 96), crops=((64, 64), (64, 96)), seed=0)
    _check_splits(task)
    assert task.class_names == ("Blowhole", "Break", "Crack", "Fray", "Uneven")
    for sub in (task.train, task.test):
        _check_flags(sub, 5, n=len(sub))
        for i, key in enumerate(sub.ids):
            folder = key.split("/")[0][3:]
            if sub.classes[i]:                           # the channel is the image's folder class
                assert task.class_names[sub.classes[i][0]] == folder
            assert sub[i][0].shape == (1, 96, 96)


def test_eval_loader_limit_is_a_random_subset_not_the_first_images(tmp_path):
    root = write_mtd(tmp_path / "mtd", n_free=16, per_defect_class=4, seed=4)
    task = mtd_task(root, real=False, size=(64, 64), seed=0)
    n = len(task.train)
    loader = eval_loader(task.train, 4, limit=n // 2, seed=0)
    ids = loader.dataset.ds.ids
    assert len(ids) == n // 2 and ids != task.train.ids[: n // 2]        # splits are ordered by class
    assert ids == eval_loader(task.train, 4, limit=n // 2, seed=0).dataset.ds.ids


def test_seg_loader_balanced_alternating_crops_masks_follow_images(tmp_path):
    """The paper's batches: every class (clean included) in each batch, crop size alternating by
    epoch, and the augmentations move mask and image together."""
    root = write_mtd(tmp_path / "mtd", n_free=12, per_defect_class=4, seed=5)
    task = mtd_task(root, real=False, size=(96, 96), crops=((48, 64), (64, 80)), seed=0)
    loader = seg_loader(task, batch_size=6, steps_per_epoch=3, dark_threshold=0.0, seed=0)
    for epoch, size in ((0, (48, 64)), (1, (64, 80)), (2, (48, 64))):
        batches = list(loader)                           # one epoch, as the engine iterates it
        assert len(batches) == 3
        for x, y in batches:
            assert x.shape == (6, 1, *size) and y.shape == (6, 5, *size)
    sampler = seg_loader(task, batch_size=6, steps_per_epoch=4, seed=1).batch_sampler
    for batch in sampler:                                # 5 defect classes + 1 clean image per batch
        assert sorted(tuple(task.train.classes[i]) for i in batch) == [(), (0,), (1,), (2,), (3,), (4,)]
    # alignment: a mask drawn on the image itself must stay on the image under the augmentations
    from defectlib.data.sampling import RandomCropDataset
    from defectlib.experiments.severstal import augmentations

    class Bright(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            blocks = (torch.rand(1, 1, 5, 5, generator=g) > 0.6).float()       # 8x8-pixel blocks
            image = torch.nn.functional.interpolate(blocks, size=(40, 40))[0]
            return image, image.clone()                  # mask == bright pixels
    crops = RandomCropDataset(Bright(), ((32, 32),), None, transforms=augmentations(), seed=0)
    torch.manual_seed(0)
    for i in range(4):
        x, y = crops[i]
        bright, marked = x[0] > 0.6, y[0] > 0.5          # brightness/contrast keep 1 >> 0
        agree = (bright == marked).float().mean()
        assert agree > 0.93, agree                       # only block edges may differ (misaligned: ~0.5)


def test_defect_p_centres_crops_near_a_defect():
    from defectlib.data.sampling import RandomCropDataset

    class OneSpot(torch.utils.data.Dataset):            # a 4x4 defect in a corner of a 128x128 image
        def __len__(self):
            return 64

        def __getitem__(self, i):
            mask = torch.zeros(1, 128, 128)
            mask[:, 4:8, 4:8] = 1
            return torch.rand(1, 128, 128), mask

    def share_with_defect(p):
        crops = RandomCropDataset(OneSpot(), ((32, 32),), None, seed=0, defect_p=p)
        return np.mean([bool(crops[i][1].any()) for i in range(len(crops))])
    assert share_with_defect(1.0) == 1.0                # jitter 0.25 x 32 keeps the spot inside
    assert share_with_defect(0.0) < 0.2                 # uniform crops: ~(36/97)^2 = 0.14
    assert 0.5 < share_with_defect(0.7) < 0.95
    with pytest.raises(ValueError, match="defect_p"):
        RandomCropDataset(OneSpot(), ((32, 32),), None, defect_p=1.5)


def test_mtd_one_channel_keeps_every_defect_and_the_class_balance(tmp_path):
    root = write_mtd(tmp_path / "mtd", n_free=6, per_defect_class=3, seed=2)
    five = mtd_task(root, real=False, size=(64, 64), seed=0)
    one = mtd_task(root, real=False, size=(64, 64), seed=0, one_channel=True)
    assert one.class_names == ("defect",) and one.num_classes == 1
    assert one.train.classes == five.train.classes            # the sampler still sees 5 classes + clean
    for i in range(len(one.train)):
        (x5, m5), (x1, m1) = five.train[i], one.train[i]
        assert m1.shape == (1, 64, 64) and torch.equal(x1, x5)
        assert torch.equal(m1[0], m5.amax(0))                  # the union of the class channels


def test_gate_loader_balances_clean_and_defective(tmp_path):
    root = write_mtd(tmp_path / "mtd", n_free=20, per_defect_class=2, seed=6)
    task = mtd_task(root, real=False, size=(64, 64), seed=0)
    x, y = next(iter(gate_loader(task, batch_size=8, steps_per_epoch=2, seed=0)))
    assert x.shape == (8, 1, 64, 64) and float(y.sum()) == 4.0


@pytest.mark.realdata
@pytest.mark.slow
def test_real_mtd_and_neu_seg_tasks(real_dataset):
    mtd = mtd_task(real_dataset("mtd"), real=True, size=(64, 64), seed=0)
    n = len(mtd.train) + len(mtd.val) + len(mtd.test)
    clean = sum(1 for s in (mtd.train, mtd.val, mtd.test) for d in s.defective if not d)
    assert n == 1344 and clean == 952 + 4                # 4 MT_Uneven masks are empty (SOURCE.md)
    seg = neu_seg_task(real_dataset("neu-seg"), real=True, seed=0)
    assert len(seg.train) + len(seg.val) == 3630 and all(seg.test.defective)
    assert np.mean([len(c) for c in seg.train.classes]) > 1   # multi-class images exist


@pytest.mark.realdata
def test_mtd_near_duplicates_never_straddle_train_val_test(real_dataset):
    """MTD's 7 near-duplicate pairs (defectlib.data.splits) each land whole in one split."""
    from defectlib.data.splits import MTD_NEAR_DUPLICATES

    for seed in (0, 1, 2):
        task = mtd_task(real_dataset("mtd"), real=True, size=(32, 32), seed=seed)
        side = {i: name for name, sub in (("train", task.train), ("val", task.val), ("test", task.test))
                for i in sub.ids}
        assert len(side) == 1344
        split = [(a, b) for a, b, *_ in MTD_NEAR_DUPLICATES if side[a] != side[b]]
        assert not split, f"seed {seed}: near-duplicates on different sides: {split}"


def test_train_stage_reports_a_time_budget_cut():
    import time

    from defectlib.engine import TrainConfig
    from defectlib.experiments.severstal import train_stage
    data = torch.utils.data.TensorDataset(torch.rand(64, 2), torch.rand(64, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=4)

    def slow_mse(model, batch, device):
        time.sleep(0.02)
        return {"loss": torch.nn.functional.mse_loss(model(batch[0]), batch[1])}
    cut = train_stage(torch.nn.Linear(2, 1), loader, loader, slow_mse,
                      TrainConfig(epochs=5, optimizer="adam", lr=1e-3, time_budget_s=0.1), device="cpu")
    assert cut.cut_by_budget and 1 <= cut.steps <= 6 and cut.history.stopped == "time_budget"
    full = train_stage(torch.nn.Linear(2, 1), loader, loader, slow_mse, TrainConfig(epochs=1, optimizer="adam", lr=1e-3),
                       device="cpu")
    assert not full.cut_by_budget and full.steps == 16


def test_mtd_cache_gives_the_same_items_and_training_batches(tmp_path):
    """``cache=True`` keeps decoded, resized tiles in memory: every item (and so every seeded
    training batch) equals the uncached one, and a caller editing an item cannot change the cache."""
    root = write_mtd(tmp_path / "mtd", n_free=8, per_defect_class=3, seed=6)
    plain = mtd_task(root, real=False, size=(80, 96), crops=((48, 64),), seed=0, one_channel=True)
    cached = mtd_task(root, real=False, size=(80, 96), crops=((48, 64),), seed=0, one_channel=True, cache=True)
    for i in range(len(plain.train)):
        for a, b in zip(plain.train[i], cached.train[i]):
            assert type(a) is type(b) and a.dtype == b.dtype and torch.equal(a, b)
    image, mask = cached.train[0]
    image.zero_(); mask.fill_(7)                         # the caller's copy only
    assert torch.equal(cached.train[0][0], plain.train[0][0]) and torch.equal(cached.train[0][1], plain.train[0][1])
    plain.defect_p = cached.defect_p = 0.7
    batches = []
    for task in (plain, cached):                         # the augmentations draw from torch's generator
        torch.manual_seed(0)
        batches.append(list(seg_loader(task, 6, 2, seed=3)))
    for (xa, ya), (xb, yb) in zip(*batches):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_cache_refuses_a_mask_it_cannot_store_exactly(tmp_path):
    from defectlib.experiments.severstal import Channels
    base = [(torch.rand(1, 8, 8), torch.full((1, 8, 8), 0.5))]
    ds = Channels(base, lambda s: s, [[0]], ids=["soft.png"], cache=True)
    with pytest.raises(ValueError, match="soft.png.*binary"):
        ds[0]


def test_tasks_and_their_loaders_pickle_for_spawned_workers(tmp_path):
    """The paper profile feeds a GPU with loader workers; where they start with "spawn" or
    "forkserver" (macOS, Windows, Linux from Python 3.14) the dataset travels pickled: the tasks'
    channel functions used to be local functions, which do not pickle."""
    import pickle
    sev = severstal_task(write_severstal(tmp_path / "sev", n_images=8, seed=1), real=False, scale=0.25)
    neu = neu_seg_task(write_neu_seg(tmp_path / "neu-seg", n_training=8, n_test=4, seed=2), real=False)
    mtd = mtd_task(write_mtd(tmp_path / "mtd", n_free=4, per_defect_class=2, seed=3), real=False, size=(64, 64))
    for task in (sev, neu, mtd):
        copy = pickle.loads(pickle.dumps(task.train))
        assert all(torch.equal(a, b) for a, b in zip(copy[0], task.train[0]))
    for loader in (seg_loader(neu, 2, 1), gate_loader(mtd, 2, 1)):
        pickle.dumps(loader.dataset)
