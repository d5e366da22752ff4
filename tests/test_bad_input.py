"""Bad input never gives a silent wrong answer: one table of broken inputs, each with its error.

Every row builds a tiny broken input (in ``tmp_path``), calls a data loader, ``data check``, the
runner, a metric or the RLE encoder, and asserts the *exact* exception type and that the message
names the file or the argument. Each row returned a number, loaded garbage, exited 0 or raised an
unhelpful error before issue 16. Command-line rows run ``main(argv)`` in-process: a non-zero exit
becomes :class:`CommandFailed` carrying the exit code and what was printed to stderr.
"""
from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from defectlib import metrics
from defectlib.data import ImageMaskFolder, rle_encode
from defectlib.synth import locate
from defectlib.data import errors as E
from defectlib.data.check import check_dataset


class CommandFailed(Exception):
    """A command-line entry point exited non-zero; ``str()`` is its exit code and stderr."""


def cli(main, argv) -> Callable:
    def call():
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
        if code:
            raise CommandFailed(f"exit {code}: {err.getvalue().strip()}")
    return call


def checked(path, **kw) -> Callable:
    """``check_dataset``; its first problem raised (the table asserts its type and text)."""
    def call():
        report = check_dataset(path, duplicates=False, **kw)
        if report.problems:
            raise report.problems[0]
    return call


# ---------------------------------------------------------------- tiny folders
def save(path: Path, arr, mode=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(np.asarray(arr), mode) if mode else Image.fromarray(np.asarray(arr))
    im.save(path)
    return path


def defect(value=255, size=8, dtype=np.uint8):
    m = np.zeros((size, size), dtype)
    m[2:5, 3:6] = value
    return m


def stripes(*values, size=8):
    """An 8x8 uint8 mask whose columns cycle through ``values``."""
    return np.tile(np.resize(np.asarray(values, np.uint8), size), (size, 1))


def folder(tmp: Path, masks: dict, image_ext=".png") -> Path:
    """``tmp/data/images/<name><image_ext>`` + ``tmp/data/masks/<name>`` for every mask given
    (an array is saved as an image; a callable writes the mask file itself)."""
    root = tmp / "data"
    rng = np.random.default_rng(0)
    for name, m in masks.items():
        save(root / "images" / (Path(name).stem + image_ext), (rng.random((8, 8)) * 255).astype(np.uint8))
        target = root / "masks" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        m(target) if callable(m) else save(target, m)
    return root


def load_all(root, **kw) -> Callable:
    def call():
        ds = ImageMaskFolder(root, **kw)
        return [ds[i] for i in range(len(ds))]
    return call


def palette_mask(indices, path):
    im = Image.fromarray(indices.astype(np.uint8), "P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [128] * (256 * 3 - 9))
    im.save(path)


def mat_file(path, **variables):
    from scipy.io import savemat
    savemat(path.with_suffix(".mat"), variables)


def rgb(colours):
    m = np.zeros((8, 8, 3), np.uint8)
    for k, c in enumerate(colours):
        m[k, :] = c
    return m


# ---------------------------------------------------------------- the runner
def runner_args(tmp: Path, *extra) -> list[str]:
    """A notebooks folder with ``01_x.ipynb`` (notebook 01 reads neu-det); it must never run."""
    import nbformat
    nbs = tmp / "notebooks"
    if not nbs.is_dir():
        nbs.mkdir()
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("raise SystemExit('must not run')")]
        nbformat.write(nb, nbs / "01_x.ipynb")
    return ["--notebooks", str(nbs), "--quiet", *extra]


def run_main(argv):
    from defectlib.course.run import main
    return main(argv)


def data_main(argv):
    from defectlib.course.data_cli import main
    return main(argv)


def read_only_out(tmp: Path) -> str:
    """A folder this process cannot create: /sys refuses even root."""
    probe = Path("/sys/defectlib-write-probe")
    try:
        probe.mkdir()
    except OSError:
        return str(probe / "runs")
    probe.rmdir()
    pytest.skip("/sys is writable here: no read-only folder to test --out with")


def a_file(tmp: Path) -> Path:
    p = tmp / "not-a-folder.txt"
    p.write_text("x")
    return p


def duplicate_stems(tmp: Path) -> Path:
    root = folder(tmp, {"a.png": defect(), "b.png": defect()})
    save(root / "images" / "a.jpg", defect())
    return root


def symlink_loop(tmp: Path) -> Path:
    root = folder(tmp, {"a.png": defect(), "b.png": defect()})
    (root / "images" / "b.png").unlink()
    (root / "images" / "b.png").symlink_to(root / "images" / "b.png")  # points at itself
    return root


# ---------------------------------------------------------------- metrics inputs
def det(boxes=((0, 0, 10, 10),), labels=(1,), scores=(0.9,)):
    return {"boxes": np.asarray(boxes, np.float64), "labels": np.asarray(labels), "scores": np.asarray(scores)}


def gt(boxes=((0, 0, 10, 10),), labels=(1,)):
    return {"boxes": np.asarray(boxes, np.float64), "labels": np.asarray(labels)}


def coco(p, t, **kw):
    return lambda tmp: (lambda: metrics.evaluate_detections([p], [t], **kw))


M2 = np.zeros((2, 4, 4))
M2[:, 1:3, 1:3] = 1
NAN = np.where(M2 > 0, np.nan, 0.2)


@dataclass
class Case:
    id: str
    build: Callable  # tmp_path -> a callable that must raise
    error: type
    names: Callable | str  # regex the message must match: the file or the argument (or tmp -> regex)


CASES = [
    # --- masks in every common encoding ---------------------------------------------------------
    Case("mask-0-128-255-ambiguous", lambda t: load_all(folder(t, {"a.png": stripes(0, 128, 255)})),
         E.MaskEncodingError, r"masks/a\.png: ambiguous mask values \[0, 128, 255\].*threshold="),
    Case("mask-jpeg-like-edges", lambda t: load_all(folder(t, {"a.png": stripes(0, 3, 40, 200, 255)})),
         E.MaskEncodingError, r"masks/a\.png: ambiguous .*threshold=T"),
    Case("mask-rgb-three-colours", lambda t: load_all(folder(t, {"a.png": rgb([(255, 0, 0), (0, 255, 0)])})),
         E.MaskEncodingError, r"masks/a\.png: colour mask with colours .*\(255, 0, 0\).*colors="),
    Case("mask-rgb-unknown-colour", lambda t: load_all(folder(t, {"a.png": rgb([(255, 0, 0), (0, 0, 255)])}),
                                                      colors={(0, 0, 0): 0, (255, 0, 0): 1}),
         E.MaskEncodingError, r"masks/a\.png: colour\(s\) \[\(0, 0, 255\)\] not in colors="),
    Case("mask-palette-with-void-255",
         lambda t: load_all(folder(t, {"a.png": lambda p: palette_mask(stripes(0, 1, 255), p)})),
         E.MaskEncodingError, r"masks/a\.png: ambiguous mask values \[0, 1, 255\]"),
    Case("mask-no-background-value", lambda t: load_all(folder(t, {"a.png": stripes(1, 2)})),
         E.MaskEncodingError, r"masks/a\.png: values \[1, 2\] hold no background value 0"),
    Case("mask-mat-two-variables",
         lambda t: load_all(folder(t, {"a.mat": lambda p: mat_file(p, gt=defect(1), edges=defect(1))})),
         E.MaskEncodingError, r"masks/a\.mat: cannot tell which variable.*gt.*edges.*mat_key="),
    Case("mask-mat-missing-field",
         lambda t: load_all(folder(t, {"a.mat": lambda p: mat_file(p, groundTruth={"Boundaries": defect(1)})}),
                            mat_key="groundTruth.Segmentation"),
         E.MaskEncodingError, r"masks/a\.mat: mat_key='groundTruth\.Segmentation'.*no 'Segmentation'.*Boundaries"),
    Case("mask-mat-not-a-matrix",
         lambda t: load_all(folder(t, {"a.mat": lambda p: mat_file(p, gt=np.zeros(5), other=defect(1))}), mat_key="gt"),
         E.MaskEncodingError, r"masks/a\.mat: mat_key='gt' is .* not a 2-D numeric mask"),
    Case("mask-index-beyond-num-classes",
         lambda t: load_all(folder(t, {"a.png": stripes(0, 1, 2, 5)}),
                            encoding="index", num_classes=4),
         E.MaskEncodingError, r"masks/a\.png: values \[0, 1, 2, 5\] are not class indices 0\.\.3"),
    Case("mask-unknown-encoding", lambda t: load_all(folder(t, {"a.png": defect()}), encoding="bogus"),
         ValueError, r"encoding must be one of .*'bogus'"),
    # --- folders: duplicate stems, broken links, missing data root ---------------------------------
    Case("duplicate-image-stems", lambda t: load_all(duplicate_stems(t)),
         E.DuplicateFileError, r"images/a\.png: images a\.png and a\.jpg have the same name stem 'a'"),
    Case("duplicate-mask-stems", lambda t: load_all(folder(t, {"a.png": defect(), "a.bmp": defect()})),
         E.DuplicateFileError, r"masks/a\.png: masks a\.png and a\.bmp have the same name stem"),
    Case("image-symlink-loop", lambda t: load_all(symlink_loop(t)),
         E.MissingFileError, r"images/b\.png: broken symbolic link"),
    Case("locate-missing-data-root", lambda t: (lambda: locate("neu-det", t / "no-such-folder")),
         E.DatasetNotFoundError, r"no-such-folder: data_root for 'neu-det' is not a folder"),
    Case("cli-locate-missing-data-root", lambda t: cli(data_main, ["locate", "neu-det", "--data-root", str(t / "nope")]),
         CommandFailed, r"exit 2: .*nope: data_root for 'neu-det' is not a folder"),
    # --- data check --------------------------------------------------------------------------------
    Case("check-0-1-masks-read-as-empty-by-threshold",
         lambda t: cli(data_main, ["check", str(folder(t, {"a.png": defect(1), "b.png": defect(1)})),
                                   "--threshold", "127", "--no-duplicates"]),
         CommandFailed, r"exit 1"),
    Case("check-all-masks-empty", lambda t: checked(folder(t, {"a.png": defect(0), "b.png": defect(0)})),
         E.MaskEncodingError, lambda t: re.escape(str(t / "data")) + r": all 2 masks read are empty"),
    Case("check-ambiguous-mask", lambda t: checked(folder(t, {"a.png": defect(255), "b.png": stripes(0, 128, 255)})),
         E.MaskEncodingError, r"masks/b\.png: ambiguous mask values"),
    Case("check-rgb-red-and-green", lambda t: checked(folder(t, {"a.png": rgb([(255, 0, 0), (0, 255, 0)])})),
         E.MaskEncodingError, r"masks/a\.png: colour mask"),
    Case("check-mat-without-key",
         lambda t: checked(folder(t, {"a.mat": lambda p: mat_file(p, gt=defect(1), edges=defect(1))})),
         E.MaskEncodingError, r"masks/a\.mat: cannot tell which variable"),
    Case("check-duplicate-stems", lambda t: checked(duplicate_stems(t)),
         E.DuplicateFileError, r"a\.png and a\.jpg have the same name stem"),
    Case("check-symlink-loop", lambda t: checked(symlink_loop(t)),
         E.MissingFileError, r"images/b\.png: broken symbolic link"),
    Case("check-cli-all-empty-exits-1", lambda t: cli(data_main, ["check", str(folder(t, {"a.png": defect(0)})),
                                                               "--no-duplicates"]),
         CommandFailed, r"exit 1"),
    Case("check-cli-threshold-with-kind", lambda t: cli(data_main, ["check", str(t), "--kind", "mtd", "--threshold", "3"]),
         CommandFailed, r"exit 2: .*--kind mtd has its own layout"),
    Case("check-cli-bad-colors", lambda t: cli(data_main, ["check", str(t), "--colors", "255,0=1"]),
         CommandFailed, r"exit 2: .*--colors takes 'R,G,B=K"),
    # --- the runner --------------------------------------------------------------------------------
    Case("run-out-is-a-file", lambda t: cli(run_main, runner_args(t, "--out", str(a_file(t)))),
         CommandFailed, r"exit 2: .*--out .*not-a-folder\.txt: is a file, not a folder"),
    Case("run-out-under-a-file", lambda t: cli(run_main, runner_args(t, "--out", str(a_file(t) / "runs"))),
         CommandFailed, r"exit 2: .*--out .*not-a-folder\.txt/runs: cannot write there"),
    Case("run-out-read-only", lambda t: cli(run_main, runner_args(t, "--out", read_only_out(t))),
         CommandFailed, r"exit 2: .*--out /sys/defectlib-write-probe/runs: cannot write there"),
    Case("run-require-real-missing-dataset",
         lambda t: cli(run_main, runner_args(t, "--data-root", str(t), "--require-real", "--out", str(t / "runs"))),
         CommandFailed, r"exit 2: .*--require-real: not in --data-root .*01_x: neu-det"),
    Case("run-require-real-without-data-root",
         lambda t: cli(run_main, runner_args(t, "--require-real", "--out", str(t / "runs"))),
         CommandFailed, r"exit 2: .*--require-real needs --data-root"),
    # --- detection metrics -------------------------------------------------------------------------
    Case("coco-nan-score", coco(det(scores=[np.nan]), gt()), ValueError, r"predictions\[0\]\['scores'\]: .*nan"),
    Case("coco-inf-score", coco(det(scores=[np.inf]), gt()), ValueError, r"predictions\[0\]\['scores'\]: .*inf"),
    Case("coco-nan-prediction-box", coco(det(boxes=[[0, 0, np.nan, 10]]), gt()), ValueError,
         r"predictions\[0\]\['boxes'\]: .*non-finite"),
    Case("coco-nan-target-box", coco(det(), gt(boxes=[[np.nan, 0, 10, 10]])), ValueError,
         r"targets\[0\]\['boxes'\]: .*non-finite"),
    Case("coco-label-0", coco(det(labels=[0]), gt(), num_classes=2), ValueError,
         r"predictions\[0\]\['labels'\]: labels must lie in \[1, 3\), found 0"),
    Case("coco-negative-target-label", coco(det(), gt(labels=[-1])), ValueError,
         r"targets\[0\]\['labels'\]: labels must lie in .*found -1"),
    Case("coco-label-above-num-classes", coco(det(labels=[3]), gt(), num_classes=2), ValueError,
         r"predictions\[0\]\['labels'\]: .*found 3"),
    Case("coco-float-label", coco(det(labels=[1.7]), gt(), num_classes=2), ValueError,
         r"predictions\[0\]\['labels'\]: labels must be whole numbers, found 1\.7"),
    Case("coco-boxes-4x5", coco(det(boxes=np.zeros((4, 5)), labels=[1] * 5, scores=[0.5] * 5), gt()), ValueError,
         r"predictions\[0\]\['boxes'\]: expected shape \[N, 4\].*\[4, 5\]"),
    Case("coco-xywh-boxes", coco(det(boxes=[[50, 50, 10, 10]]), gt()), ValueError,
         r"predictions\[0\]\['boxes'\]: box 0 .* x2 < x1"),
    Case("coco-max-dets-two", coco(det(), gt(), max_dets=(1, 10)), ValueError, r"max_dets: .*\(1, 10\)"),
    # --- segmentation metrics ----------------------------------------------------------------------
    Case("seg-single-hw-mask", lambda t: (lambda: metrics.segmentation_scores(M2[0], M2[0])), ValueError,
         r"pred: expected a batch \[N, H, W\], got shape \[4, 4\]"),
    Case("seg-uint8-0-255", lambda t: (lambda: metrics.segmentation_scores((M2 * 255).astype(np.uint8), M2)),
         ValueError, r"pred: expected a binary mask .*found 255.*> 127"),
    Case("seg-negative-target", lambda t: (lambda: metrics.segmentation_scores(M2, -M2.astype(np.int64))), ValueError,
         r"target: expected a binary mask .*found -1"),
    Case("kaggle-dice-uint8", lambda t: (lambda: metrics.kaggle_dice((M2 * 255).astype(np.uint8)[:, None],
                                                                      M2[:, None])), ValueError, r"pred: .*255"),
    Case("author-dice-logits", lambda t: (lambda: metrics.severstal_author_dice(M2 * 6 - 3, M2)), ValueError,
         r"pred: expected probabilities in \[0, 1\], found -3"),
    Case("author-dice-nan", lambda t: (lambda: metrics.severstal_author_dice(NAN, M2)), ValueError,
         r"pred: holds 8 non-finite"),
    Case("wfm-nan", lambda t: (lambda: metrics.weighted_fmeasure(NAN, M2)), ValueError, r"pred: holds .*nan"),
    Case("ocinet-nan", lambda t: (lambda: metrics.ocinet_evaluation(NAN, M2)), ValueError, r"prob: holds .*nan"),
    Case("otsu-nan", lambda t: (lambda: metrics.otsu_threshold(NAN)), ValueError, r"prob: holds .*nan"),
    Case("pr-curve-nan", lambda t: (lambda: metrics.precision_recall_curve(M2, NAN)), ValueError, r"scores: holds"),
    Case("best-f1-nan", lambda t: (lambda: metrics.best_f1_threshold(M2, NAN)), ValueError, r"scores: holds"),
    Case("best-f1-no-positive", lambda t: (lambda: metrics.best_f1_threshold(np.zeros_like(M2), M2 * 0.5)),
         ValueError, r"target: no positive pixel"),
    Case("pixel-prf-nan", lambda t: (lambda: metrics.pixel_prf(M2, NAN)), ValueError, r"scores: holds"),
    Case("multiclass-fractional-label", lambda t: (lambda: metrics.multiclass_confusion(M2 * 1.5, M2, 3)),
         ValueError, r"pred: labels must be whole numbers, found 1\.5"),
    Case("confusion-matrix-fractional", lambda t: (lambda: metrics.confusion_matrix([0.5, 1], [0, 1])), ValueError,
         r"y_true: labels must be whole numbers, found 0\.5"),
    Case("gate-probability-above-1", lambda t: (lambda: metrics.gate_report([True, False], [1.7, 0.2])),
         ValueError, r"p_defective: expected probabilities in \[0, 1\], found 1\.7"),
    # --- RLE ---------------------------------------------------------------------------------------
    Case("rle-probability", lambda t: (lambda: rle_encode(M2[0] * 0.3)), ValueError,
         r"mask: expected 0/1 or bool values, found 0\.3"),
    Case("rle-3d", lambda t: (lambda: rle_encode(M2)), ValueError, r"mask: expected one \[H, W\] mask, got shape \[2, 4, 4\]"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_clear_error(case, tmp_path, monkeypatch):
    monkeypatch.setenv("DEFECTLIB_CACHE", str(tmp_path / "cache"))  # no stand-in lands in the repo
    monkeypatch.delenv("DEFECTLIB_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    call = case.build(tmp_path)
    with pytest.raises(Exception) as info:
        call()
    assert type(info.value) is case.error, f"{type(info.value).__name__}: {info.value}"
    pattern = case.names(tmp_path) if callable(case.names) else case.names
    assert re.search(pattern, str(info.value), re.DOTALL), f"{pattern!r} not in {str(info.value)!r}"


def test_the_table_is_large_and_ids_are_unique():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


# ================================================================ issue 28: images and masks as cameras,
# label tools and other datasets really write them. Each test failed (a wrong answer or an unclear
# error) before the fix; every folder is also read by `data check`, which must agree with the loader.
from defectlib.data import NEUSeg, Severstal  # noqa: E402
from defectlib.data.io import read_gray  # noqa: E402
from defectlib.data.masks import MaskRule, decode_mask, load_mask, read_mask  # noqa: E402
from defectlib.data.severstal import decode_masks, rle_decode, write_train_csv  # noqa: E402


def agree(root, **kw):
    """ImageMaskFolder and `data check` with the same options: both read the folder, or both refuse
    it with the same error type; returns (dataset or None, report)."""
    layout = {k: kw.pop(k) for k in ("images", "masks", "mask_suffix", "mask_ext") if k in kw}
    rule = MaskRule(**kw) if kw else None
    try:
        ds = ImageMaskFolder(root, **layout, **kw)
        [ds[i] for i in range(len(ds))]
        err = None
    except E.DatasetError as exc:
        ds, err = None, exc
    report = check_dataset(root, duplicates=False, rule=rule, **({"images": "images", "masks": "masks"} | layout))
    if err is None:
        assert report.ok, str(report)
    else:
        assert type(err) in {type(p) for p in report.problems}, (err, report.problems)
    return ds, report


def pair(tmp, image, mask, name="a", image_ext=".png", mask_ext=".png", save_image=None, save_mask=None):
    root = tmp / "data"
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    ip, mp = root / "images" / f"{name}{image_ext}", root / "masks" / f"{name}{mask_ext}"
    (save_image or (lambda a, p: Image.fromarray(a).save(p)))(image, ip)
    (save_mask or (lambda a, p: Image.fromarray(a).save(p)))(mask, mp)
    return root


def mask8():
    m = np.zeros((8, 8), bool)
    m[2:5, 3:6] = True
    return m


# --- 1. 16-bit images: scaled by the format, never by the file's own maximum
def test_16bit_exposures_stay_apart_and_bit_depth_reads_12bit(tmp_path):
    scene = np.arange(64, dtype=np.uint16).reshape(8, 8) + 1
    Image.fromarray(scene * 8).save(tmp_path / "x8.png")
    Image.fromarray(scene * 64).save(tmp_path / "x64.png")
    a, b = read_gray(tmp_path / "x8.png"), read_gray(tmp_path / "x64.png")
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(b, np.rint(scene * 64 / 65535 * 255).astype(np.uint8))
    twelve = (scene * 60).astype(np.uint16)  # a 12-bit camera: values up to 3840 of 4095
    Image.fromarray(twelve).save(tmp_path / "c12.tif")
    np.testing.assert_array_equal(read_gray(tmp_path / "c12.tif", bit_depth=12),
                                  np.rint(twelve / 4095 * 255).astype(np.uint8))
    with pytest.raises(E.ImageEncodingError, match=r"x64\.png: 16-bit image holds values .*bit_depth=12"):
        read_gray(tmp_path / "x64.png", bit_depth=12)


def test_check_warns_about_12bit_data_in_16bit_files(tmp_path):
    img = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 60)
    root = pair(tmp_path, img, (mask8() * 255).astype(np.uint8))
    ds, report = agree(root)
    assert any("bit_depth=12" in w for w in report.warnings), report.warnings
    assert float(ds[0][0].max()) < 0.06  # read by the format, dark, as the warning says


# --- 2. float TIFF in [0, 1]
def test_float_tiff_in_0_1_is_read_as_is(tmp_path):
    x = (np.arange(64, dtype=np.float32).reshape(8, 8) / 63)
    Image.fromarray(x).save(tmp_path / "f.tif")
    np.testing.assert_array_equal(read_gray(tmp_path / "f.tif"), np.rint(x * 255).astype(np.uint8))
    Image.fromarray(x * 1000).save(tmp_path / "g.tif")
    with pytest.raises(E.ImageEncodingError, match=r"g\.tif: float image holds 0\.\.1000.*\[0, 1\]"):
        read_gray(tmp_path / "g.tif")


# --- 3. EXIF orientation: image and mask read the way viewers and label tools show them
def test_exif_rotated_photo_still_overlaps_its_mask(tmp_path):
    shown = np.full((8, 12), 20, np.uint8)
    m = np.zeros((8, 12), np.uint8)
    m[1:3, 8:11] = 255
    shown[m > 0] = 240  # the defect is bright where the label tool showed it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    root = pair(tmp_path, shown, m,
                save_image=lambda a, p: Image.fromarray(a).transpose(Image.Transpose.ROTATE_90).save(p, exif=exif))
    ds, _ = agree(root)
    image, mask = ds[0]
    assert image.shape[-2:] == (8, 12)
    assert float(image[0][mask[0] > 0].min()) > 0.9 and float(image[0][mask[0] == 0].max()) < 0.1


def test_exif_180_on_a_square_image_is_applied(tmp_path):
    shown = np.zeros((8, 8), np.uint8)
    shown[mask8()] = 255
    exif = Image.Exif()
    exif[0x0112] = 3
    root = pair(tmp_path, shown, shown.copy(),
                save_image=lambda a, p: Image.fromarray(a).rotate(180).save(p, exif=exif))
    ds, _ = agree(root)
    image, mask = ds[0]
    np.testing.assert_array_equal(image[0].numpy() > 0.5, mask[0].numpy() > 0)


# --- 4. palette PNGs: a black/white palette by its colours, a class palette by its indices
def quantized(mask, path):  # white-on-black through PIL's quantize(2): index 0 is white, the defect
    im = Image.fromarray(mask.astype(np.uint8) * 255).convert("RGB").quantize(2)
    assert im.getpalette()[:3] == [255, 255, 255] and np.array(im)[mask].max() == 0
    im.save(path)


def voc(mask, path):
    im = Image.fromarray(mask.astype(np.uint8), "P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * (252 * 3))  # VOC's first colours
    im.save(path)


@pytest.mark.parametrize("kw", [{}, {"encoding": "binary"}, {"threshold": 127}])
def test_white_first_palette_is_read_by_its_colours(tmp_path, kw):
    root = pair(tmp_path, np.zeros((8, 8), np.uint8), mask8(), save_mask=quantized)
    ds, report = agree(root, **kw)
    np.testing.assert_array_equal(ds[0][1][0].numpy() > 0, mask8())
    assert report.info["mask files read as"] == {"palette colours": 1}


def test_voc_palette_is_read_by_its_indices_and_refused_by_a_threshold(tmp_path):
    root = pair(tmp_path, np.zeros((8, 8), np.uint8), mask8(), save_mask=voc)
    ds, report = agree(root)
    np.testing.assert_array_equal(ds[0][1][0].numpy() > 0, mask8())
    assert report.info["mask files read as"] == {"palette indices": 1}
    with pytest.raises(E.MaskEncodingError, match=r"masks/a\.png: palette mask with class colours .*\(128, 0, 0\)"
                                                   r".*threshold=127 cannot read it"):
        agree(root, threshold=127)
        ImageMaskFolder(root, threshold=127)[0]


# --- 5. masks painted on a transparent layer
@pytest.mark.parametrize("mode,colour", [("RGBA", (255, 0, 0)), ("RGBA", (255, 255, 255)), ("LA", (255,))])
def test_alpha_channel_masks(tmp_path, mode, colour):
    def save_alpha(m, p):  # an editor's transparent layer: transparent white around the strokes
        arr = np.full((8, 8, len(colour) + 1), 255, np.uint8)
        arr[..., -1] = 0
        arr[m] = (*colour, 255)
        Image.fromarray(arr, mode).save(p)
    root = pair(tmp_path, np.zeros((8, 8), np.uint8), mask8(), save_mask=save_alpha)
    for kw in ({}, {"threshold": 127}, {"encoding": "binary"}):
        ds, _ = agree(root, **kw)
        np.testing.assert_array_equal(ds[0][1][0].numpy() > 0, mask8())


def test_alpha_mask_in_two_colours_is_read_by_its_colours(tmp_path):
    arr = np.full((8, 8, 4), (255, 255, 255, 0), np.uint8)
    arr[2, :4] = (255, 0, 0, 255)
    arr[5, :4] = (0, 255, 0, 255)
    Image.fromarray(arr, "RGBA").save(tmp_path / "m.png")
    out = load_mask(tmp_path / "m.png", MaskRule(colors={(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2}))
    assert out[2, 0] == 1 and out[5, 0] == 2 and out.sum() == 12


# --- 6. JPEG masks: one rule for 0/1 and 0/255 alike
def jpeg(m, p):
    Image.fromarray(m).save(p, quality=75)


@pytest.mark.parametrize("scale", [1, 255])
def test_jpeg_masks_need_a_threshold(tmp_path, scale):
    m = np.zeros((16, 16), np.uint8)
    m[4:11, 5:12] = scale
    root = pair(tmp_path, np.zeros((16, 16), np.uint8), m, mask_ext=".jpg", save_mask=jpeg)
    with pytest.raises(E.MaskEncodingError, match=r"masks/a\.jpg: JPEG mask .*threshold=T.*re-export the masks as PNG"):
        load_all(root)()
    agree(root)
    if scale == 255:
        ds, _ = agree(root, threshold=127)
        np.testing.assert_array_equal(ds[0][1][0].numpy() > 0, m > 0)


# --- 7. .mat label images with more than two labels
def crack_labels(path):
    seg = np.ones((8, 8), np.uint8)  # 1 background, 2 crack, 3 "unsure" border
    seg[mask8()] = 2
    seg[6, :] = 3
    mat_file(path, gt=seg)


def test_mat_with_three_labels_and_a_threshold_is_refused(tmp_path):
    root = folder(tmp_path, {"a.mat": crack_labels})
    with pytest.raises(E.MaskEncodingError, match=r"masks/a\.mat: label image holds 3 labels \[1, 2, 3\].*defect_labels"):
        load_all(root, threshold=1)()
    agree(root, threshold=1)
    assert data_main(["check", str(root), "--threshold", "1", "--no-duplicates"]) == 1
    ds, _ = agree(root, defect_labels=[2])
    np.testing.assert_array_equal(ds[0][1][0].numpy() > 0, mask8())
    assert data_main(["check", str(root), "--defect-labels", "2", "--no-duplicates"]) == 0


# --- 8. one folder, x.bmp image beside x.png mask: check and loader read the same folder
def test_check_reads_a_one_folder_extension_layout_as_the_loader_does(tmp_path):
    root = tmp_path / "parts"
    root.mkdir()
    for k, m in enumerate([(mask8() * 255).astype(np.uint8), stripes(0, 128, 255)]):
        Image.fromarray((np.random.default_rng(k).random((8, 8)) * 255).astype(np.uint8)).save(root / f"{k}.bmp")
        Image.fromarray(m).save(root / f"{k}.png")
    report = check_dataset(root, duplicates=False)
    assert "masks" in report.info["layout"] and "<stem>.png" in report.info["layout"], report.info["layout"]
    assert report.counts["samples per split"] == {"all": 2}
    assert any(isinstance(p, E.MaskEncodingError) and "1.png" in str(p) for p in report.problems)
    with pytest.raises(E.MaskEncodingError, match=r"1\.png: ambiguous"):
        load_all(root, images=None, masks=None, mask_ext=".png")()
    with pytest.raises(E.DuplicateFileError):  # no mask_ext: the loader sees two images named 0
        ImageMaskFolder(root, images=None, masks=None)


# --- 9. Severstal RLE belongs to 256x1600
def test_severstal_rle_on_a_resized_copy_is_an_error(tmp_path):
    root = tmp_path / "sev"
    (root / "train_images").mkdir(parents=True)
    m = np.zeros((4, 256, 1600), np.uint8)
    m[2, 100:150, 300:700] = 1
    write_train_csv(root / "train.csv", {"a.jpg": m})
    Image.fromarray(np.zeros((128, 800), np.uint8)).save(root / "train_images" / "a.jpg")
    with pytest.raises(E.MaskSizeError, match=r"a\.jpg: image is 800x128 .*RLE .*1600x256"):
        Severstal(root)[0]
    report = check_dataset(root, duplicates=False)
    assert any(isinstance(p, E.MaskSizeError) for p in report.problems), str(report)


# --- 10. encoding="auto" decided once per folder
def test_auto_is_decided_once_per_folder(tmp_path):
    root = folder(tmp_path, {"a.png": stripes(0, 1, 2, 3), "b.png": defect(2)})
    ds, report = agree(root)
    b = ds.mask_paths[1]
    np.testing.assert_array_equal(decode_mask(read_mask(b), ds.rule, b), defect(2))  # class 2 stays 2
    assert "class indices 0..3" in report.info["mask rule"] and "from 2 masks" in report.info["mask rule"]


def test_masks_that_disagree_are_one_error_naming_both(tmp_path):
    root = folder(tmp_path, {"a.png": defect(1), "b.png": defect(255)})
    with pytest.raises(E.MaskEncodingError, match=r"masks/b\.png: the folder's masks disagree: b\.png holds "
                                                   r"\[0, 255\], a\.png holds \[0, 1\]"):
        ImageMaskFolder(root)
    agree(root)


# --- 11. / unclear errors: Severstal class ids and RLE values
@pytest.mark.parametrize("rles,pattern", [({0: "1 2"}, r"class id 0 is not a Severstal class 1\.\.4"),
                                          ({5: "1 2"}, r"class id 5 is not a Severstal class 1\.\.4")])
def test_decode_masks_class_ids_are_1_to_4(rles, pattern):
    with pytest.raises(E.RLEError, match=pattern):
        decode_masks(rles, (8, 6))


def test_rle_with_a_huge_value_names_the_rle():
    with pytest.raises(E.RLEError, match=r"RLE '99999999999999999999 1' holds 99999999999999999999"):
        rle_decode("99999999999999999999 1", (8, 6))


# --- 12. pixel_prf takes probabilities, as every metric of probabilities does
def test_pixel_prf_refuses_logits():
    with pytest.raises(ValueError, match=r"scores: expected probabilities in \[0, 1\], found -3"):
        metrics.pixel_prf(M2, M2 * 6 - 3)


# --- 13. hidden files (macOS resource forks) are skipped with a note
def test_resource_forks_are_skipped_and_noted(tmp_path):
    root = folder(tmp_path, {"a.png": defect()})
    (root / "images" / "._a.png").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    (root / "masks" / "._a.png").write_bytes(b"\x00\x05\x16\x07")
    ds, report = agree(root)
    assert ds.ids == ["a"] and {p.name for p in ds.hidden} == {"._a.png"}
    assert report.info["hidden files skipped"].startswith("1 (._a.png")


# --- 14. a dataset one folder too deep in --data-root: refused before any notebook runs
def test_dataset_one_folder_too_deep_is_refused_before_the_run(tmp_path, monkeypatch):
    monkeypatch.delenv("DEFECTLIB_DATA", raising=False)
    monkeypatch.setenv("DEFECTLIB_CACHE", str(tmp_path / "cache"))
    deep = tmp_path / "datasets" / "neu-det" / "neu-det"
    (deep / "IMAGES").mkdir(parents=True)
    (deep / "ANNOTATIONS").mkdir()
    call = cli(run_main, runner_args(tmp_path, "--data-root", str(tmp_path / "datasets"), "--out", str(tmp_path / "runs")))
    with pytest.raises(CommandFailed, match=r"(?s)exit 2: .*neu-det is not in neu-det's layout .*one folder down, in .*neu-det/neu-det"):
        call()
    with pytest.raises(E.DatasetNotFoundError, match=r"one folder down"):
        locate("neu-det", tmp_path / "datasets")


# --- unclear errors made clear
def test_danet_phases_are_checked_before_training(tmp_path):
    from defectlib.experiments.danet.main import main as danet_main
    with pytest.raises(CommandFailed, match=r"(?s)exit 2: .*phases=\(2, 9\): each phase is one of 1\.\.5"):
        cli(danet_main, ["--set", "phases=2,9", "--out", str(tmp_path / "out")])()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_neu_seg_with_a_voc_palette_reads_its_indices(tmp_path):
    root = tmp_path / "neu-seg"
    for split in ("training", "test"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / split / "000001.jpg")
        voc(mask8(), root / "annotations" / split / "000001.png")
    _, mask = NEUSeg(root)[0]
    np.testing.assert_array_equal(mask.numpy(), mask8().astype(np.int64))
    assert check_dataset(root, duplicates=False).ok


def test_masks_named_with_a_suffix_suggest_mask_suffix(tmp_path):
    root = folder(tmp_path, {"a_mask.png": defect(), "b_mask.png": defect()})
    for name in ("a_mask", "b_mask"):
        (root / "images" / f"{name}.png").rename(root / "images" / f"{name[0]}.png")
    with pytest.raises(E.MissingFileError, match=r"image has no mask a\.\* .*mask_suffix='_mask' would pair 2"):
        ImageMaskFolder(root)
    agree(root)
    assert len(ImageMaskFolder(root, mask_suffix="_mask")) == 2


# --- beyond the list: CMYK, 12-bit in 16 (above), BGR from OpenCV, bilinear-upscaled masks
def test_cmyk_image_reads_as_its_rgb_grey(tmp_path):
    rgb_img = np.zeros((8, 8, 3), np.uint8)
    rgb_img[..., 0], rgb_img[..., 1], rgb_img[..., 2] = 200, np.arange(8) * 30, 50
    Image.fromarray(rgb_img).convert("CMYK").save(tmp_path / "c.tif")
    grey = np.asarray(Image.fromarray(rgb_img).convert("L"), np.int16)
    assert np.abs(read_gray(tmp_path / "c.tif").astype(np.int16) - grey).max() <= 2


def test_bgr_colour_mask_is_an_unknown_colour_error(tmp_path):
    m = np.zeros((8, 8, 3), np.uint8)
    m[mask8()] = (255, 0, 0)[::-1]  # red written by cv2.imwrite from an RGB array: blue on disk
    root = pair(tmp_path, np.zeros((8, 8), np.uint8), m)
    with pytest.raises(E.MaskEncodingError, match=r"colour\(s\) \[\(0, 0, 255\)\] not in colors="):
        load_all(root, colors={(0, 0, 0): 0, (255, 0, 0): 1})()


def test_bilinear_upscaled_mask_is_refused_by_auto_and_read_by_a_threshold(tmp_path):
    small = np.zeros((4, 4), np.uint8)
    small[1:3, 1:3] = 255
    big = np.array(Image.fromarray(small).resize((16, 16), Image.Resampling.BILINEAR))
    assert len(np.unique(big)) > 3
    root = pair(tmp_path, np.zeros((16, 16), np.uint8), big)
    with pytest.raises(E.MaskEncodingError, match=r"masks/a\.png: ambiguous mask values .*threshold=T"):
        load_all(root)()
    agree(root)
    ds, _ = agree(root, threshold=127)
    nearest = np.array(Image.fromarray(small).resize((16, 16), Image.Resampling.NEAREST)) > 0
    assert (ds[0][1][0].numpy().astype(bool) != nearest).mean() < 0.15
