"""Notebook 03's experiment (defectlib.experiments.ocinet): the data, its splits, the authors'
evaluation protocol, the paper profile's weights."""
from __future__ import annotations

import pytest
import torch

from defectlib.experiments.ocinet import score_maps


def test_score_maps_perfect_and_inverted_predictions():
    g = torch.zeros(20, 20)
    g[5:10, 5:12] = 1
    perfect = score_maps([g.numpy() * 0.9 + 0.05], [g.numpy()])
    for k in ("PA", "pixel_accuracy", "IoU", "Dice"):
        assert perfect[k][0] == pytest.approx(1.0)
    assert perfect["wFm"][0] > 0.99
    inverted = score_maps([1 - g.numpy()], [g.numpy()])
    assert inverted["IoU"][0] == 0 and inverted["PA"][0] == 0
    assert inverted["pixel_accuracy"][0] == pytest.approx(0.0)


@pytest.mark.realdata
def test_build_data_on_real_neu_seg_and_mtd(real_data):
    from defectlib.experiments.ocinet import build_data
    if not ((real_data / "neu-seg").is_dir() and (real_data / "mtd").is_dir()):
        pytest.skip("needs neu-seg/ and mtd/ under DEFECTLIB_DATA")
    data = build_data(real_data, size=64, test_limit=5)
    assert data.real and data.dataset == "NEU-Seg + MTD (binary)"
    assert list(data.columns.values()) == ["man-made", "natural"]
    assert len(data.train) == 3630 + 291  # NEU-Seg training + 75% of the 388 non-empty MTD defective tiles
    assert "818 images" in data.notes[0]  # NEU-Seg test minus its 22 near-duplicates of training images
    image, mask = data.train[0]
    assert image.shape == (1, 64, 64) and set(mask.unique().tolist()) <= {0.0, 1.0}
    image, mask = data.tests["MTD defective (held out)"][0]
    assert image.shape == (1, 64, 64) and mask.shape[-2:] != (64, 64)  # masks keep their own size
    assert mask.sum() > 0


def _straddling(train, test, pairs):
    train, test = set(train), set(test)
    return [(a, b) for a, b, *_ in pairs if (a in train and b in test) or (a in test and b in train)]


def test_mtd_split_keeps_near_duplicate_pairs_together(tmp_path):
    """On a folder that carries the real MTD ids of the 7 near-duplicate pairs (plus singletons),
    no seed may put the two tiles of a pair on different sides (the old per-class shuffle did)."""
    import numpy as np
    from PIL import Image

    from defectlib.data.splits import MTD_NEAR_DUPLICATES
    from defectlib.experiments.ocinet import mtd_defective_split

    names = {a for a, b, _ in MTD_NEAR_DUPLICATES} | {b for a, b, _ in MTD_NEAR_DUPLICATES}
    names |= {f"MT_{c}/exp9_num_{k}" for c in ("Crack", "Blowhole") for k in range(10)}
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 2:5] = 255
    for name in names:
        folder = tmp_path / (name.split("/")[0]) / "Imgs"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8), 128, np.uint8)).save(folder / f"{name.split('/')[1]}.jpg")
        Image.fromarray(mask).save(folder / f"{name.split('/')[1]}.png")
    for seed in range(20):
        train, test = mtd_defective_split(tmp_path, seed=seed)
        assert sorted(train + test) == sorted(names) and not set(train) & set(test)
        assert len(test) == round(0.25 * 20) + round(0.25 * 14)  # 5 per class (ties round to even)
        assert _straddling(train, test, MTD_NEAR_DUPLICATES) == [], seed


@pytest.mark.realdata
def test_mtd_split_on_real_data_keeps_near_duplicates_together(real_dataset):
    from defectlib.data.splits import MTD_NEAR_DUPLICATES
    from defectlib.experiments.ocinet import mtd_defective_split
    train, test = mtd_defective_split(real_dataset("mtd"), seed=0)
    assert (len(train), len(test)) == (291, 97)
    assert _straddling(train, test, MTD_NEAR_DUPLICATES) == []


def test_evaluate_keeps_the_lowest_iou_images_lowest_first():
    """``evaluate(worst=k)``: the k test images of lowest per-image IoU, for the worst-cases gallery."""
    from defectlib.experiments.ocinet import evaluate

    class Echo(torch.nn.Module):                   # predicts the image itself: IoU follows the image
        def forward(self, x):
            return torch.logit(x.clamp(0.01, 0.99))

    g = torch.zeros(16, 16); g[4:12, 4:12] = 1
    quality = [1.0, 0.2, 0.6, 0.0, 0.9]           # share of the defect each image shows
    batch = []
    for q in quality:
        img = torch.zeros(16, 16); img[4:12, 4:4 + max(1, int(8 * q))] = 1
        batch.append((img[None], g.clone()))
    loader = [(torch.stack([b[0] for b in batch]), [b[1] for b in batch])]
    res = evaluate(Echo(), loader, "cpu", worst=3)
    assert len(res["worst"]) == 3 and res["worst_iou"] == sorted(res["worst_iou"])
    shown = [int(w[0][4:12, 4:12].sum().item()) for w in res["worst"]]
    assert shown == [8, 8 * 1, 8 * 4] and res["worst_iou"][-1] == pytest.approx(50.0)
    assert "worst" not in evaluate(Echo(), loader, "cpu")


def test_paper_profile_backbone_weights_are_a_local_file_or_a_clear_error(tmp_path, monkeypatch):
    """Issue 17: the paper profile names an ImageNet PVT-v2-b2 checkpoint; nothing is downloaded."""
    from defectlib import profiles
    from defectlib.experiments.ocinet import PVT_V2_B2_URL, backbone_weights
    assert profiles.get("03", "paper").get("backbone_weights") == "pvt_v2_b2.pth"
    assert profiles.get("03", "cpu").get("backbone_weights") is None and backbone_weights(None) is None
    monkeypatch.setenv("DEFECTLIB_WEIGHTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/pvt_v2_b2.pth.*{PVT_V2_B2_URL}"):
        backbone_weights("pvt_v2_b2.pth")
    with pytest.warns(UserWarning, match="dry run goes on from random weights"):
        assert backbone_weights("pvt_v2_b2.pth", dry_run=True) is None
    (tmp_path / "pvt_v2_b2.pth").write_bytes(b"x")
    assert backbone_weights("pvt_v2_b2.pth") == tmp_path / "pvt_v2_b2.pth"


def test_threshold_curve_by_hand():
    """Fixed thresholds beside Otsu on two 2x2 maps, every number worked out by hand."""
    import numpy as np

    from defectlib.experiments.ocinet import threshold_curve

    probs = [np.array([[0.9, 0.4], [0.2, 0.1]], np.float32), np.full((2, 2), 0.6, np.float32)]
    masks = [np.array([[1, 1], [0, 0]]), np.array([[0, 0], [0, 1]])]
    c = threshold_curve(probs, masks, thresholds=(0.15, 0.3, 0.5))
    # t = 0.15: A marks 3 pixels (TP 2, FP 1), B all 4 (TP 1, FP 3); t = 0.3: A exact; t = 0.5: A 1 of 2
    assert c["fixed"]["pixel_accuracy"] == pytest.approx([50, 62.5, 50])
    assert c["fixed"]["PA"] == pytest.approx([100, 100, 75])
    assert c["fixed"]["IoU"] == pytest.approx([100 * (2 / 3 + 1 / 4) / 2, 62.5, 37.5])
    # Otsu: A's levels 255, 95, 31, 0 split at 95 (between-class variance 8507 > 6360 > 3024), so only
    # 0.9 is marked; B is constant: min-max gives 0 everywhere and nothing is marked
    assert c["otsu"] == pytest.approx({"pixel_accuracy": 75.0, "PA": 25.0, "IoU": 25.0})
    assert c["otsu_thresholds"] == pytest.approx([0.1 + 96 / 255 * 0.8, 0.6], abs=1e-6)
    assert c["n_images"] == 2 and list(c["thresholds"]) == [0.15, 0.3, 0.5]
    # the Otsu scores are the protocol's
    s = score_maps(probs, masks)
    assert c["otsu"] == pytest.approx({k: 100 * float(s[k].mean()) for k in ("pixel_accuracy", "PA", "IoU")})


def test_evaluate_adds_the_threshold_curve_of_the_same_maps():
    from defectlib.experiments.ocinet import CURVE_THRESHOLDS, evaluate

    class Echo(torch.nn.Module):
        def forward(self, x):
            return torch.logit(x.clamp(0.01, 0.99))

    torch.manual_seed(0)
    g = torch.zeros(3, 16, 16); g[:, 4:12, 4:10] = 1
    x = (0.6 * g + 0.3 * torch.rand(3, 16, 16))[:, None]
    loader = [(x, list(g))]
    res = evaluate(Echo(), loader, "cpu", thresholds=CURVE_THRESHOLDS)
    c = res["threshold_curve"]
    assert c["otsu"] == pytest.approx({k: res[k] for k in ("pixel_accuracy", "PA", "IoU")})
    assert len(c["fixed"]["IoU"]) == len(CURVE_THRESHOLDS) and c["n_images"] == 3
    assert all(b <= a + 1e-9 for a, b in zip(c["fixed"]["PA"], c["fixed"]["PA"][1:]))   # recall never rises with t
    assert "threshold_curve" not in evaluate(Echo(), loader, "cpu")
