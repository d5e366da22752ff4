"""Every kind of bad input raises ONE clear DatasetError subclass naming the file and the problem,
and ``check`` reports all of them in a folder instead of stopping at the first."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from defectlib.data import (MTD, NEUDET, NRSDMN, AnnotationError, CorruptImageError, DatasetError,
                            EmptyDatasetError, MaskSizeError, MissingFileError, NEUSeg, Severstal)
from defectlib.data.check import check_dataset


def _edit_xml(path, old, new, count=1):
    text = path.read_text()
    edited = re.sub(old, new, text, count=count)
    assert edited != text, f"pattern {old!r} not in {path}"
    path.write_text(edited)


def test_corrupt_image(copy_of):
    root = copy_of("neu-det")
    (root / "IMAGES" / "patches_2.jpg").write_bytes(b"this is not a jpeg")
    ds = NEUDET(root)
    with pytest.raises(CorruptImageError, match=r"patches_2\.jpg: cannot decode image"):
        ds[ds.ids.index("patches_2")]


def test_truncated_image(copy_of):
    root = copy_of("nrsd-mn")
    p = root / "2086" / "img" / "0001.jpg"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(CorruptImageError, match=r"0001\.jpg: cannot decode image.*truncated"):
        NRSDMN(root, "train")[0]


def test_xml_unknown_class(copy_of):
    root = copy_of("neu-det")
    _edit_xml(root / "ANNOTATIONS" / "crazing_3.xml", "<name>crazing</name>", "<name>rust</name>")
    with pytest.raises(AnnotationError, match=r"crazing_3\.xml: object 1 has unknown class 'rust'"):
        NEUDET(root)


def test_box_outside_image(copy_of):
    root = copy_of("neu-det")
    _edit_xml(root / "ANNOTATIONS" / "inclusion_1.xml", r"<xmax>\d+</xmax>", "<xmax>260</xmax>")
    with pytest.raises(AnnotationError, match=r"inclusion_1\.xml: box 1 .*xmax=260.* outside the 200x200 image"):
        NEUDET(root)


def test_missing_size(copy_of):
    root = copy_of("neu-det")
    _edit_xml(root / "ANNOTATIONS" / "patches_1.xml", r"<size>[\s\S]*?</size>", "")
    with pytest.raises(AnnotationError, match=r"patches_1\.xml: missing or unreadable <size>"):
        NEUDET(root)


def test_mask_size_mismatch(copy_of):
    root = copy_of("neu-seg")
    mp = sorted((root / "annotations" / "test").glob("*.png"))[0]
    Image.open(mp).resize((100, 200)).save(mp)
    with pytest.raises(MaskSizeError, match=rf"{mp.name}: mask is 100x200 .* is 200x200"):
        NEUSeg(root, "test")[0]


def test_missing_mask(copy_of):
    root = copy_of("mtd")
    victim = sorted((root / "MT_Crack" / "Imgs").glob("*.png"))[0]
    victim.unlink()
    with pytest.raises(MissingFileError, match=rf"{victim.stem}\.jpg: image has no mask"):
        MTD(root)


def test_missing_image(copy_of):
    root = copy_of("nrsd-mn")
    (root / "1130" / "965" / "img" / "0002.jpg").unlink()
    with pytest.raises(MissingFileError, match=r"0002\.png: mask has no image"):
        NRSDMN(root, "test-man-made")


def test_missing_image_listed_in_csv(copy_of):
    root = copy_of("severstal")
    ds = Severstal(root)
    gone = ds.ids[ds.defective.index(True)]
    (root / "train_images" / gone).unlink()
    with pytest.raises(MissingFileError, match=rf"{gone}: listed in train.csv but the image is missing"):
        Severstal(root)


def test_missing_annotation(copy_of):
    root = copy_of("neu-det")
    (root / "ANNOTATIONS" / "scratches_4.xml").unlink()
    with pytest.raises(MissingFileError, match=r"scratches_4\.jpg: image has no annotation"):
        NEUDET(root)


def test_bad_rle_in_csv_names_the_image(copy_of):
    root = copy_of("severstal")
    csv = root / "train.csv"
    lines = csv.read_text().splitlines()
    image_id = lines[1].split(",")[0]
    lines[1] = f"{image_id},{lines[1].split(',')[1]},1 5 3 4"
    csv.write_text("\n".join(lines) + "\n")
    ds = Severstal(root)
    with pytest.raises(DatasetError, match=rf"{image_id}.*runs overlap"):
        ds[ds.ids.index(image_id)]


@pytest.mark.parametrize("loader", [
    lambda r: NEUDET(r), lambda r: NEUSeg(r), lambda r: MTD(r), lambda r: NRSDMN(r), lambda r: Severstal(r)])
def test_empty_folder(tmp_path, loader):
    with pytest.raises(DatasetError) as exc:
        loader(tmp_path)
    assert str(tmp_path) in str(exc.value)


def test_empty_image_folder_is_empty_dataset(tmp_path):
    (tmp_path / "images" / "training").mkdir(parents=True)
    (tmp_path / "annotations" / "training").mkdir(parents=True)
    with pytest.raises(EmptyDatasetError, match="no images found"):
        NEUSeg(tmp_path, "training")


def test_check_reports_every_problem(copy_of):
    root = copy_of("neu-det")
    (root / "IMAGES" / "patches_2.jpg").write_bytes(b"garbage")
    _edit_xml(root / "ANNOTATIONS" / "crazing_3.xml", "<name>crazing</name>", "<name>rust</name>")
    _edit_xml(root / "ANNOTATIONS" / "inclusion_1.xml", r"<xmax>\d+</xmax>", "<xmax>260</xmax>")
    (root / "ANNOTATIONS" / "scratches_4.xml").unlink()
    (root / "ANNOTATIONS" / "ghost_1.xml").write_text("<annotation/>")
    report = check_dataset(root)
    kinds = sorted(type(p).__name__ for p in report.problems)
    assert kinds == ["AnnotationError", "AnnotationError", "CorruptImageError", "MissingFileError", "MissingFileError"]
    text = str(report)
    for name in ("patches_2.jpg", "crazing_3.xml", "inclusion_1.xml", "scratches_4.jpg", "ghost_1.xml"):
        assert name in text
    assert not report.ok and "5 problem(s) found" in text


def test_check_reports_mask_and_rle_problems(copy_of):
    root = copy_of("nrsd-mn")
    Image.fromarray(np.zeros((50, 50), np.uint8)).save(root / "2086" / "gt" / "0001.png")
    (root / "2086" / "gt" / "0002.png").unlink()
    report = check_dataset(root)
    assert sorted(type(p).__name__ for p in report.problems) == ["MaskSizeError", "MissingFileError"]
    sev = copy_of("severstal")
    with open(sev / "train.csv", "a") as f:
        f.write(f"{Severstal(sev).ids[0]},4,1 2 3\n")
    assert any("odd number" in str(p) for p in check_dataset(sev).problems)


def test_unknown_ids_are_named(standins):
    with pytest.raises(MissingFileError, match=r"requested ids not in the dataset.*test/999999"):
        NEUSeg(standins["neu-seg"], "test", ids=["test/000001", "test/999999"])
    with pytest.raises(MissingFileError, match="MT_Crack/nope"):
        MTD(standins["mtd"], ids=["MT_Crack/nope"])
    with pytest.raises(MissingFileError, match="crazing_999"):
        NEUDET(standins["neu-det"], ids=["crazing_999"])
