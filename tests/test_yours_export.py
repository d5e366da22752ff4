"""Notebook 05's exported model and ``defectlib predict``: the round trip (the masks the exported file
writes are the masks the notebook scored, bit for bit), the files it writes, its errors, and the
command ``python -m defectlib.experiments.yours`` end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from defectlib import profiles
from defectlib.course import cli
from defectlib.course.predict import image_files, predict_files
from defectlib.data.errors import CorruptImageError, DatasetNotFoundError, DuplicateFileError
from defectlib.experiments import yours as Y
from test_yours import make_folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny folder (two image sizes), a U-Net trained 2 steps on it and evaluated as the notebook
    does, then exported."""
    root = make_folder(tmp_path_factory.mktemp("line") / "line7", n=24, size=[(48, 48), (40, 56)])
    data = Y.split(Y.look(Y.folder_spec(root)), seed=0)
    cfg = profiles.get("05", "smoke", models=("unet_resnet34",))
    run = Y.train("unet_resnet34", data, cfg, "cpu", seed=0)
    scores = Y.evaluate("unet_resnet34", run["model"], data, cfg)
    out = tmp_path_factory.mktemp("export") / "model"
    Y.export_model(run["model"], out, name="unet_resnet34", label="U-Net-ResNet34", input_size=cfg.input_size,
                   threshold=scores["threshold"], info={"trained_on": "line7"})
    return data, run["model"], scores, out


def _test_paths(data):
    return [data.look.folder.image_paths[i] for i in data.parts["test"]]


def test_the_exported_models_masks_are_the_notebooks(trained, tmp_path):
    data, model, scores, out = trained
    written = predict_files(out, _test_paths(data), tmp_path / "pred", progress=False)
    assert len(written) == scores["n_images"] == len(data.parts["test"])
    got = [Y.digest(np.asarray(Image.open(m)) > 0) for m, _ in written]
    assert got == scores["digests"]


def test_the_round_trip_holds_where_pixels_sit_on_the_threshold(trained, tmp_path):
    """At the median probability half the pixels lie just above the threshold: the least numeric
    difference between the notebook's pipeline and the exported program would flip some."""
    data, model, scores, out = trained
    maps = list(Y.evaluation.model_maps(model, data, "test", 64))
    t = float(np.median(np.concatenate([p.ravel() for _, p, _ in maps])))
    notebook = [Y.digest(p >= t) for _, p, _ in maps]
    Y.export_model(model, tmp_path / "model", name="unet_resnet34", label="U-Net-ResNet34", input_size=64, threshold=t)
    written = predict_files(tmp_path / "model", _test_paths(data), tmp_path / "pred", progress=False)
    masks = [np.asarray(Image.open(m)) > 0 for m, _ in written]
    assert [Y.digest(m) for m in masks] == notebook
    assert 0.2 < np.mean([m.mean() for m in masks]) < 0.8 and len(set(notebook)) == len(notebook)


def test_the_export_folder_and_its_program(trained):
    data, model, scores, out = trained
    spec = json.loads((out / "model.json").read_text())
    assert spec["model"] == "unet_resnet34" and spec["threshold"] == scores["threshold"] and spec["input_size"] == 64
    assert spec["trained_on"] == "line7" and (out / "model.pt2").is_file()
    program = torch.export.load(out / "model.pt2").module()         # runs without defectlib's model code
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(program(x), model.eval()(x))
    rebuilt = Y.build_model("unet_resnet34")
    rebuilt.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), model(x))


def test_predict_writes_masks_and_overlays_of_each_images_own_size(trained, tmp_path, capsys):
    data, model, scores, out = trained
    folder = data.look.spec.root / "images"
    assert cli.main(["predict", str(out), str(folder), "--out", str(tmp_path), "--quiet"]) == 0
    assert "wrote 24 masks" in capsys.readouterr().out
    for p in sorted(folder.iterdir())[:4]:
        mask = np.asarray(Image.open(tmp_path / "masks" / f"{p.stem}.png"))
        overlay = Image.open(tmp_path / "overlays" / f"{p.stem}.png")
        assert mask.shape == np.asarray(Image.open(p)).shape and set(np.unique(mask)) <= {0, 255}
        assert overlay.mode == "RGB" and overlay.size == Image.open(p).size
    seg = Y.Segmenter.load(out / "model.json", threshold=1.0)         # --threshold overrides the model's
    assert seg.threshold == 1.0 and seg.input_size == 64


def test_predict_names_what_is_wrong(trained, tmp_path, capsys):
    data, model, scores, out = trained
    assert cli.main(["predict", str(tmp_path / "nomodel"), str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "nomodel: no exported model here" in capsys.readouterr().err
    assert cli.main(["predict", str(out), str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")]) == 1
    assert "missing.png: no such image file or folder" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"not an image")
    with pytest.raises(CorruptImageError, match="x.png"):
        predict_files(out, [bad], tmp_path / "o", progress=False)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad / "y.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad / "y.bmp")
    with pytest.raises(DuplicateFileError, match="same stem 'y'"):
        image_files([bad / "y.png", bad / "y.bmp"])
    with pytest.raises(DatasetNotFoundError):
        image_files([tmp_path / "nothing-here"])
    with pytest.raises(SystemExit):
        cli.main(["predict", str(out), str(bad), "--out", str(tmp_path / "o"), "--threshold", "2"])


def test_the_cli_lists_predict(capsys):
    assert cli.main(["--help"]) == 0
    assert "  predict" in capsys.readouterr().out


@pytest.mark.slow
def test_the_command_runs_the_notebooks_steps_on_a_folder(tmp_path):
    from defectlib.experiments.yours.main import main
    root = make_folder(tmp_path / "line7", n=22, twins=1)
    out = tmp_path / "run"
    assert main(["--data", str(root), "--profile", "smoke", "--models", "unet_resnet34", "--out", str(out),
                 "--quiet"]) == 0
    res = json.loads((out / "results.json").read_text())
    names = {m["name"]: m for m in res["metrics"]}
    for row in ("unet_resnet34", "otsu", "nothing"):
        assert f"{row}/test/IoU" in names and names[f"{row}/test/IoU"]["real"]     # the user's folder is real data
    assert names["data/images"]["value"] == 23 and names["data/near_duplicate_pairs"]["value"] == 1
    assert (out / "model" / "model.pt2").is_file() and any("Pick U-Net-ResNet34" in n for n in res["notes"])
    with pytest.raises(SystemExit):
        main(["--data", str(root), "--models", "unet", "--out", str(out)])
