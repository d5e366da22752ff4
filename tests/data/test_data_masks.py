"""Masks in every common encoding read as the same defect, and ``data check`` reads a folder
exactly as :class:`ImageMaskFolder` does with the same options (the errors are in
``tests/test_bad_input.py``)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from defectlib.data import ImageMaskFolder
from defectlib.data.check import check_dataset
from defectlib.course.data_cli import main as data_main
from defectlib.data.masks import MaskRule, decode_mask, load_mask

DEFECT = np.zeros((8, 8), bool)
DEFECT[2:5, 3:6] = True


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(len(str(path))).random((8, 8)) * 255).astype(np.uint8)).save(path)


def _palette(indices, path):
    im = Image.fromarray(indices.astype(np.uint8), "P")
    im.putpalette([0, 0, 0, 200, 30, 30, 10, 250, 10] + [0] * (253 * 3))  # colours say nothing
    im.save(path)


def _colour(rgb, path):
    m = np.zeros((8, 8, 3), np.uint8)
    m[DEFECT] = rgb
    Image.fromarray(m).save(path)


ENCODINGS = {
    "0-255": lambda p: Image.fromarray(DEFECT.astype(np.uint8) * 255).save(p),
    "0-1": lambda p: Image.fromarray(DEFECT.astype(np.uint8)).save(p),
    "0-128": lambda p: Image.fromarray(DEFECT.astype(np.uint8) * 128).save(p),
    "1-bit": lambda p: Image.fromarray(DEFECT).save(p),
    "16-bit": lambda p: Image.fromarray(DEFECT.astype(np.uint16) * 65535).save(p),
    "red-on-black": lambda p: _colour((255, 0, 0), p),
    "palette-index-1": lambda p: _palette(DEFECT.astype(np.uint8), p),
    "bmp-0-255": lambda p: Image.fromarray(DEFECT.astype(np.uint8) * 255).save(p.with_suffix(".bmp")),
    "mat-single-variable": lambda p: savemat(p.with_suffix(".mat"), {"gt": DEFECT.astype(np.float64)}),
    "mat-logical": lambda p: savemat(p.with_suffix(".mat"), {"mask": DEFECT}),
}


@pytest.mark.parametrize("name", ENCODINGS)
def test_every_common_encoding_reads_as_the_same_binary_mask(name, tmp_path):
    _image(tmp_path / "images" / "a.png")
    (tmp_path / "masks").mkdir()
    ENCODINGS[name](tmp_path / "masks" / "a.png")
    ds = ImageMaskFolder(tmp_path)
    _, mask = ds[0]
    np.testing.assert_array_equal(mask[0].numpy().astype(bool), DEFECT)
    assert ds.image_labels() == [1]
    assert check_dataset(tmp_path, duplicates=False).ok


def test_class_indices_palette_and_colour_map():
    idx = np.zeros((8, 8), np.uint8)
    idx[0, :3] = [1, 2, 3]
    np.testing.assert_array_equal(decode_mask(idx), idx)  # class indices 0..3 kept
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[0, 0], rgb[0, 1] = (255, 0, 0), (0, 255, 0)
    out = decode_mask(rgb, MaskRule(colors={(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2}))
    assert out[0, 0] == 1 and out[0, 1] == 2 and out.sum() == 3


def test_a_threshold_reads_anti_aliased_masks(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[DEFECT] = 255
    m[1, :] = 100  # a faint edge below the threshold
    m[6, :] = 180  # a strong edge above it
    Image.fromarray(m).save(tmp_path / "m.png")
    out = load_mask(tmp_path / "m.png", MaskRule(threshold=127))
    np.testing.assert_array_equal(out.astype(bool), DEFECT | (np.arange(8)[:, None] == 6))


def test_mat_struct_field_crackforest_style(tmp_path):
    seg = np.ones((8, 8), np.uint8)
    seg[DEFECT] = 2  # CrackForest: 1 background, 2 crack
    savemat(tmp_path / "001.mat", {"groundTruth": {"Segmentation": seg, "Boundaries": DEFECT}})
    out = load_mask(tmp_path / "001.mat", MaskRule(threshold=1, mat_key="groundTruth.Segmentation"))
    np.testing.assert_array_equal(out.astype(bool), DEFECT)


def _layout_with_spaces(root):
    for name in ("part 1", "part 2"):
        _image(root / "img" / f"{name}.png")
        (root / "gt").mkdir(exist_ok=True)
        Image.fromarray(DEFECT.astype(np.uint8)).save(root / "gt" / f"{name}.png")  # 0/1 masks
    return root


def test_check_accepts_what_image_mask_folder_accepts_with_the_same_options(tmp_path, capsys):
    root = _layout_with_spaces(tmp_path / "parts")
    ds = ImageMaskFolder(root, images="img", masks="gt")
    assert ds.ids == ["part 1", "part 2"] and ds.image_labels() == [1, 1]
    report = check_dataset(root, images="img", masks="gt")
    assert report.ok, str(report)
    assert report.kind == "folder" and "images in" in report.info["layout"]
    assert data_main(["check", str(root), "--images", "img", "--masks", "gt", "--no-duplicates"]) == 0
    out = capsys.readouterr().out
    assert f"layout: images in {root / 'img'}, masks {root / 'gt'}/<stem>.*" in out and "OK" in out
    # without the options the folder's layout is unknown: images only, said so, masks never read
    assert "images only" in check_dataset(root, duplicates=False).info["layout"]


def test_check_guesses_a_suffix_layout_and_does_not_count_masks_as_images(tmp_path):
    for k in range(3):
        _image(tmp_path / f"{k}.png")
        Image.fromarray(DEFECT.astype(np.uint8) * 255).save(tmp_path / f"{k}_GT.png")
    report = check_dataset(tmp_path, duplicates=False)
    assert report.ok and report.counts["samples per split"] == {"all": 3}
    assert "<stem>_GT.*" in report.info["layout"] and "guessed" in report.info["layout"]
    assert len(ImageMaskFolder(tmp_path, images=None, masks=None, mask_suffix="_GT")) == 3


def test_check_rejects_a_folder_it_would_read_as_all_empty(tmp_path, capsys):
    root = _layout_with_spaces(tmp_path / "parts")
    rc = data_main(["check", str(root), "--images", "img", "--masks", "gt", "--threshold", "127",
                    "--no-duplicates"])
    assert rc == 1 and "all 2 masks read are empty" in capsys.readouterr().out
