"""Severstal RLE and train.csv: against a naive pixel-loop reference, both CSV formats, bad RLE."""
from __future__ import annotations

import numpy as np
import pytest

from defectlib.data import RLEError, Severstal, rle_decode, rle_encode, write_submission
from defectlib.data.severstal import read_train_csv, write_train_csv


def naive_decode(rle: str, h: int, w: int) -> np.ndarray:
    """Independent reference: walk the runs pixel by pixel, column-major, 1-indexed."""
    out = np.zeros((h, w), np.uint8)
    v = [int(x) for x in rle.split()]
    for s, n in zip(v[0::2], v[1::2]):
        for p in range(s - 1, s - 1 + n):
            out[p % h, p // h] = 1
    return out


def test_known_small_example():
    # 3x4 image, pixels numbered down columns: column 0 = 1,2,3; column 1 = 4,5,6 ...
    m = rle_decode("2 3 10 2", shape=(3, 4))
    expected = np.zeros((3, 4), np.uint8)
    expected[1:3, 0] = 1     # pixels 2, 3
    expected[0, 1] = 1       # pixel 4
    expected[0:2, 3] = 1     # pixels 10, 11
    assert np.array_equal(m, expected)
    assert rle_encode(expected) == "2 3 10 2"


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_matches_reference(seed):
    rng = np.random.default_rng(seed)
    mask = (rng.random((256, 1600)) < rng.uniform(0.001, 0.3)).astype(np.uint8)
    mask[:, -1] = 1  # a run touching the last pixel
    rle = rle_encode(mask)
    assert np.array_equal(rle_decode(rle), mask)
    small = mask[:17, :23]
    assert np.array_equal(naive_decode(rle_encode(small), 17, 23), small)


def test_empty_inputs():
    assert rle_encode(np.zeros((256, 1600))) == ""
    for empty in ("", None, float("nan"), "  "):
        assert not rle_decode(empty).any()


@pytest.mark.parametrize("rle, words", [
    ("1 2 5", "odd number"),
    ("10 2 3 2", "not sorted"),
    ("1 5 4 2", "overlap"),
    ("409599 5", "past the image"),
    ("0 3", "1-indexed"),
    ("3 0", "length"),
    ("1 x", "non-integer"),
])
def test_bad_rle_raises_one_clear_error(rle, words):
    with pytest.raises(RLEError, match=words) as exc:
        rle_decode(rle, source="train.csv [abc.jpg]")
    assert "abc.jpg" in str(exc.value)


def test_both_csv_formats_read_the_same(tmp_path):
    rng = np.random.default_rng(0)
    masks = {f"{k:09x}.jpg": (rng.random((4, 256, 1600)) < 0.001).astype(np.uint8) * (rng.random((4, 1, 1)) < 0.5)
             for k in range(5)}
    new, old = write_train_csv(tmp_path / "new.csv", masks, "new"), write_train_csv(tmp_path / "old.csv", masks, "old")
    r_new, _, f_new = read_train_csv(new)
    r_old, listed_old, f_old = read_train_csv(old)
    assert (f_new, f_old) == ("new", "old")
    assert r_new == {k: v for k, v in r_old.items() if v}
    assert listed_old == list(masks)


def test_bad_csv_row_names_the_file_and_line(tmp_path):
    p = tmp_path / "train.csv"
    p.write_text("ImageId,ClassId,EncodedPixels\na.jpg,7,1 2\n")
    with pytest.raises(Exception, match=r"train.csv: line 2: unknown class 7"):
        read_train_csv(p)


def test_standin_loader_and_submission_round_trip(standins, tmp_path):
    ds = Severstal(standins["severstal"])
    assert len(ds) == 8 and ds.csv_format == "new"
    preds = {}
    for i in range(len(ds)):
        image, mask = ds[i]
        assert image.shape == (1, 256, 1600) and mask.shape == (4, 256, 1600)
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        assert bool(mask.any()) == ds.defective[i]
        preds[ds.ids[i]] = mask.numpy().astype(np.uint8)
    sub = write_submission(tmp_path / "submission.csv", preds, fmt="new")
    lines = sub.read_text().splitlines()
    assert lines[0] == "ImageId,EncodedPixels,ClassId" and len(lines) == 1 + 4 * len(ds)
    for line in lines[1:]:
        image_id, rle, cls = line.split(",")
        assert np.array_equal(rle_decode(rle), preds[image_id][int(cls) - 1])
    old = write_submission(tmp_path / "old.csv", preds, fmt="old")
    assert old.read_text().splitlines()[0] == "ImageId_ClassId,EncodedPixels"
