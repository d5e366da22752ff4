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
