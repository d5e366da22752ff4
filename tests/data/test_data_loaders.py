"""Every stand-in round-trips through its real loader; layouts, dtypes, ids and joint transforms."""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from defectlib.data import MTD, NEUDET, NRSDMN, ImageMaskFolder, NEUSeg
from defectlib.synth import locate
from defectlib.data.neu_det import filename_class
from defectlib.data.transforms import detection_train, segmentation_train


def test_neu_det_standin(standins):
    ds = NEUDET(standins["neu-det"])
    assert len(ds) == 36 and ds.CLASSES[0] == "crazing"
    assert sorted(set(map(filename_class, ds.ids))) == sorted(ds.CLASSES)
    for i in range(len(ds)):
        image, t = ds[i]
        assert image.shape == (1, 200, 200) and image.dtype == torch.float32
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert isinstance(t["boxes"], tv_tensors.BoundingBoxes) and t["boxes"].shape[1] == 4
        assert t["labels"].dtype == torch.int64 and len(t["labels"]) == len(t["boxes"]) >= 1
        b = t["boxes"]
        assert (b[:, 0] < b[:, 2]).all() and (b[:, 1] < b[:, 3]).all() and b.max() <= 200
        assert t["image_id"] == i and t["name"] == ds.ids[i]
    # labels come from the box <name>, so a companion box keeps its own class
    assert ds.box_counts()["crazing"] == 6


def test_neu_det_label_from_box_name_not_file_name(copy_of):
    root = copy_of("neu-det")
    xml = root / "ANNOTATIONS" / "scratches_1.xml"
    xml.write_text(xml.read_text().replace("<name>scratches</name>", "<name>inclusion</name>", 1))
    ds = NEUDET(root, ids=["scratches_1"])
    assert ds[0][1]["labels"][0] == 2  # inclusion


def test_neu_det_split_layout(copy_of):
    root = copy_of("neu-det")
    for split, stems in (("train", ["crazing_1", "patches_2"]), ("validation", ["scratches_3"])):
        (root / split / "images").mkdir(parents=True)
        (root / split / "annotations").mkdir(parents=True)
        for s in stems:
            shutil.move(root / "IMAGES" / f"{s}.jpg", root / split / "images" / f"{s}.jpg")
            shutil.move(root / "ANNOTATIONS" / f"{s}.xml", root / split / "annotations" / f"{s}.xml")
    shutil.rmtree(root / "IMAGES")
    shutil.rmtree(root / "ANNOTATIONS")
    assert NEUDET(root).ids == ["crazing_1", "patches_2", "scratches_3"]
    assert NEUDET(root, split="validation").ids == ["scratches_3"]


def test_neu_det_joint_transform_keeps_boxes_on_the_defect(standins):
    torch.manual_seed(0)
    ds = NEUDET(standins["neu-det"], transforms=detection_train(hflip=1.0))
    plain = NEUDET(standins["neu-det"])
    (img, t), (img0, t0) = ds[3], plain[3]
    assert torch.equal(img, img0.flip(-1))
    expect = t0["boxes"].clone()
    expect[:, [0, 2]] = 200 - t0["boxes"][:, [2, 0]]
    assert torch.allclose(t["boxes"], expect)


@pytest.mark.parametrize("split, n", [("train", 6), ("test-man-made", 3), ("test-natural", 3)])
def test_nrsd_mn_standin(standins, split, n):
    ds = NRSDMN(standins["nrsd-mn"], split)
    assert len(ds) == n and all(i.startswith(split + "/") for i in ds.ids)
    image, mask = ds[0]
    assert image.shape == mask.shape == (1, 96, 96)
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and mask.sum() > 0


def test_nrsd_mn_alternative_layout(copy_of):
    root = copy_of("nrsd-mn")
    (root / "test").mkdir()
    shutil.move(root / "1130" / "165", root / "test" / "natural")
    (root / "test" / "natural" / "img").rename(root / "test" / "natural" / "images")
    (root / "test" / "natural" / "gt").rename(root / "test" / "natural" / "masks")
    assert len(NRSDMN(root, "test-natural")) == 3


def test_neu_seg_standin_class_index_and_binary(standins):
    tr, te = NEUSeg(standins["neu-seg"], "training"), NEUSeg(standins["neu-seg"], "test")
    assert len(tr) == 6 and len(te) == 4 and tr.ids[0].startswith("training/")
    image, mask = tr[0]
    assert mask.shape == (200, 200) and mask.dtype == torch.int64 and int(mask.max()) <= 3 and mask.max() > 0
    _, b = NEUSeg(standins["neu-seg"], "training", binary=True)[0]
    assert b.shape == (1, 200, 200) and torch.equal(b[0] > 0, mask > 0)


@pytest.mark.parametrize("name", ["neu-seg", "mtd", "nrsd-mn"])
def test_datasets_pickle_for_spawned_loader_workers(standins, name):
    """Loader workers started with "spawn" (macOS, Windows) or "forkserver" (Linux from Python
    3.14) receive the dataset pickled: a lambda inside it (NEU-Seg's binary masks had one) breaks
    every paper profile there."""
    import pickle
    ds = {"neu-seg": lambda r: NEUSeg(r, "training", binary=True), "mtd": lambda r: MTD(r),
          "nrsd-mn": lambda r: NRSDMN(r, "train")}[name](standins[name])
    copy = pickle.loads(pickle.dumps(ds))
    assert all(torch.equal(a, b) for a, b in zip(copy[0], ds[0]))


def test_mtd_standin_labels_and_clean_class(standins):
    ds = MTD(standins["mtd"], with_label=True)
    assert len(ds) == 4 + 5 * 2
    assert ds.labels.count(0) == 4 and sum(ds.defective) == 10
    for i in range(len(ds)):
        image, mask, label = ds[i]
        assert image.shape == mask.shape
        assert (mask.sum() > 0) == (label != 0), ds.ids[i]
    assert len(MTD(standins["mtd"], classes=["Crack"])) == 2


def test_mtd_binarises_at_127(copy_of):
    from PIL import Image
    root = copy_of("mtd")
    mp = sorted((root / "MT_Crack" / "Imgs").glob("*.png"))[0]
    m = np.asarray(Image.open(mp)).copy()
    m[:3, :3] = 127
    m[3:6, :3] = 128
    Image.fromarray(m).save(mp)
    ds = MTD(root, classes=["Crack"])
    _, mask = ds[ds.image_paths.index(mp.with_suffix(".jpg"))]
    assert mask[0, :3, :3].sum() == 0 and mask[0, 3:6, :3].sum() == 9


def test_image_mask_folder_layouts(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    ks = tmp_path / "ksdd2"
    ks.mkdir()
    dagm = tmp_path / "dagm"
    (dagm / "Label").mkdir(parents=True)
    for k in range(3):
        img = (rng.random((32, 20)) * 255).astype(np.uint8)
        m = np.zeros((32, 20), np.uint8)
        m[5:9, 3:7] = 255 * (k > 0)
        Image.fromarray(img).save(ks / f"{k}.png")
        Image.fromarray(m).save(ks / f"{k}_GT.png")
        Image.fromarray(img).save(dagm / f"{k:04d}.PNG")
        if k > 0:
            Image.fromarray(m).save(dagm / "Label" / f"{k:04d}_label.PNG")
    a = ImageMaskFolder(ks, images=None, masks=None, mask_suffix="_GT")
    assert a.ids == ["0", "1", "2"] and a.image_labels() == [0, 1, 1]
    b = ImageMaskFolder(dagm, images=None, masks="Label", mask_suffix="_label", allow_missing_masks=True)
    assert len(b) == 3 and b[0][1].sum() == 0 and b[1][1].sum() == 16


def test_segmentation_transform_moves_mask_with_image(standins):
    torch.manual_seed(1)
    tf = segmentation_train(hflip=0.5, vflip=0.5, rot90=True)
    ds = NRSDMN(standins["nrsd-mn"], "train")
    image, mask = ds[0]
    for _ in range(8):
        # transform the mask as an image too: both must land on the same pixels
        out_img, out_mask = tf(tv_tensors.Image(mask.clone().as_subclass(torch.Tensor)), mask)
        assert torch.equal(out_img.as_subclass(torch.Tensor), out_mask.as_subclass(torch.Tensor))


def test_locate_uses_real_data_first_then_standin(tmp_path, monkeypatch, standins):
    monkeypatch.setenv("DEFECTLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DEFECTLIB_DATA", raising=False)
    real = tmp_path / "real"
    shutil.copytree(standins["mtd"], real / "mtd")
    assert locate("mtd", real) == (real / "mtd", True)
    path, is_real = locate("nrsd-mn", real, n_train=2, n_test_man_made=1, n_test_natural=1, size=(64, 64))
    assert not is_real and path.parent == tmp_path / "cache" / "standins"
    assert path.name.startswith("nrsd-mn-")  # keyed by the generator arguments
    assert json.loads((path / "STANDIN.json").read_text())["standin"] == "nrsd-mn"
    stamp = (path / "STANDIN.json").stat().st_mtime_ns
    time.sleep(0.01)
    assert locate("nrsd-mn", real, n_train=2, n_test_man_made=1, n_test_natural=1, size=(64, 64))[0] == path
    assert (path / "STANDIN.json").stat().st_mtime_ns == stamp  # reused, not rewritten
    assert len(NRSDMN(path, "train")) == 2
    # another size gets its own folder and leaves the first one in place (concurrent notebooks)
    other, _ = locate("nrsd-mn", real, n_train=3, n_test_man_made=1, n_test_natural=1, size=(64, 64))
    assert other != path and len(NRSDMN(other, "train")) == 3 and len(NRSDMN(path, "train")) == 2
    assert not [p for p in path.parent.iterdir() if ".tmp-" in p.name]
    monkeypatch.setattr("defectlib.synth.standins.standin_dir", lambda name: standins[name])
    assert locate("mtd", real, standin=True) == (standins["mtd"], False)
