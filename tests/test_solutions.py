"""The exercises' solutions (solutions/): each checked against the library it re-derives."""
from __future__ import annotations

import math

import numpy as np
import pytest

from defectlib.metrics.wfm import weighted_fmeasure
from solutions import ocinet


def _example():
    G = np.zeros((6, 6), bool); G[2:4, 1:4] = True
    S = np.zeros((6, 6), bool); S[2:4, 2:5] = True
    return S, G


def test_03_wfm_by_hand_equals_the_library():
    S, G = _example()
    assert ocinet.wfm_by_hand(S, G) == pytest.approx(weighted_fmeasure(S[None].astype(float), G[None]), abs=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(5):                                    # soft maps, irregular masks, a non-square image
        G = rng.random((23, 31)) > 0.8
        S = np.clip(G * 0.7 + rng.random(G.shape) * 0.4, 0, 1)
        assert ocinet.wfm_by_hand(S, G) == pytest.approx(weighted_fmeasure(S[None], G[None]), abs=1e-12)


def test_03_growing_a_prediction_raises_the_authors_pa_only():
    S, G = _example()
    rows = ocinet.dilation_sweep(S, G, radii=(0, 1, 2, 3))
    recall = [r["authors' PA"] for r in rows]
    assert recall == sorted(recall) and recall[-1] == 1.0 and recall[0] == pytest.approx(4 / 6)
    assert rows[-1]["IoU"] < rows[0]["IoU"] and rows[-1]["PA (Eq. 5)"] < rows[0]["PA (Eq. 5)"]


def test_03_an_under_confident_model_scores_zero_at_0_5_but_not_under_otsu():
    G = np.zeros((32, 32), bool); G[10:20, 8:24] = True
    iou = ocinet.under_confident(G, peak=0.4)
    assert iou["fixed 0.5"] == 0.0 and iou["min-max + Otsu"] == pytest.approx(1.0)


def test_04_shallow_dents_are_in_the_mask_but_not_in_the_image():
    from solutions import synthetic
    rows = synthetic.dent_visibility(depths_mm=(0.002, 0.05, 0.25), n=96)
    (d0, m0, v0), (_, m1, v1), (_, m2, v2) = rows
    assert m0 == m1 == m2 > 0                      # the mask is the footprint: the same for every depth
    assert v0 == 0 and 0 < v1 < m1 and v2 > 0.9 * m2


def test_04_intensity_biased_crops_find_a_small_part_uniform_ones_rarely_do():
    import torch

    from solutions import synthetic
    img = torch.zeros(1, 256, 256); img[:, 100:140, 60:100] = 0.8
    hits = synthetic.crop_hit_rate(img, size=(32, 32), n=300)
    assert hits["intensity-biased"] == 1.0 and hits["uniform"] < 0.2
    assert synthetic.stacked(0.3) == pytest.approx([0.3, 0.6, 1.0])   # 1.2 clipped to 1


def test_01_focal_loss_fraction_matches_the_library():
    import torch

    from defectlib.losses import focal_loss
    from solutions import danet
    from defectlib.models.danet import softmax_focal_loss
    for p_t in (0.9, 0.5, 0.1):
        logits = torch.tensor([[math.log(p_t), math.log(1 - p_t)]], dtype=torch.float64)
        ce, fl = focal_loss(logits, torch.tensor([0]), alpha=1.0, gamma=0.0), focal_loss(logits, torch.tensor([0]))
        assert danet.focal_over_ce(p_t) == pytest.approx(float(fl / ce), rel=1e-9)
        # the function the exercise names (notebook 01 imports danet): class 1 a defect, alpha_t = alpha
        box = torch.tensor([[math.log(1 - p_t), math.log(p_t)]], dtype=torch.float64)
        ce, fl = (softmax_focal_loss(box, torch.tensor([1]), alpha=None, gamma=0.0),
                  softmax_focal_loss(box, torch.tensor([1])))
        assert danet.focal_over_ce(p_t) == pytest.approx(float(fl / ce), rel=1e-9)
    assert danet.focal_over_ce(0.9) == pytest.approx(0.0025)   # an easy example: 400 times smaller


def test_01_bilinear_fpn_keeps_shapes_and_weights_changes_the_top_down_path():
    import torch
    from torchvision.ops import FeaturePyramidNetwork

    from solutions import danet
    torch.manual_seed(0)
    fpn = FeaturePyramidNetwork([4, 8, 16], 8)
    feats = {"0": torch.randn(1, 4, 16, 16), "1": torch.randn(1, 8, 8, 8), "2": torch.randn(1, 16, 4, 4)}
    nearest = fpn(feats)
    bilinear = danet.BilinearFPN([4, 8, 16], 8)
    bilinear.load_state_dict(fpn.state_dict())
    out = bilinear(feats)
    assert [v.shape for v in out.values()] == [v.shape for v in nearest.values()]
    assert torch.equal(out["2"], nearest["2"]) and not torch.allclose(out["0"], nearest["0"])
    from defectlib.models import danet as D
    model = D.build_danet(2, num_classes=6, width=16, fpn_channels=32, representation_size=64)
    n = sum(p.numel() for p in model.parameters())
    assert type(danet.use_bilinear_fpn(model).backbone.fpn) is danet.BilinearFPN
    assert sum(p.numel() for p in model.parameters()) == n


def test_01_ap_by_hand_equals_coco_evaluation():
    import torch

    from defectlib.metrics.detection import evaluate_detections
    from solutions import danet
    gen = np.random.default_rng(0)
    for _ in range(20):
        n_gt, n_det = gen.integers(1, 6), gen.integers(0, 9)
        xy = gen.uniform(0, 80, (n_gt + n_det, 2)); wh = gen.uniform(5, 30, (n_gt + n_det, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        gt, det = boxes[:n_gt], boxes[n_gt:].copy()
        k = min(n_gt // 2, n_det)
        det[:k] = gt[:k] + gen.normal(0, 3, (k, 4))                          # some near hits
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 1)
        scores = gen.uniform(0, 1, n_det)
        ref = evaluate_detections([{"boxes": torch.tensor(det), "scores": torch.tensor(scores),
                                    "labels": torch.ones(n_det, dtype=torch.long)}],
                                  [{"boxes": torch.tensor(gt), "labels": torch.ones(n_gt, dtype=torch.long)}],
                                  num_classes=1)
        assert danet.ap50_by_hand(det, scores, gt) == pytest.approx(ref.ap50, abs=1e-9)


def test_02_rle_by_hand_equals_the_library_encoder():
    from defectlib.data import rle_decode, rle_encode
    from solutions import severstal
    small = np.zeros((4, 6), np.uint8); small[1:3, 1] = 1; small[0, 2:5] = 1; small[3, 5] = 1
    assert severstal.rle_by_hand(small) == rle_encode(small) == "6 2 9 1 13 1 17 1 24 1"
    rng = np.random.default_rng(1)
    for _ in range(10):
        m = (rng.random((16, 40)) > 0.7).astype(np.uint8)
        assert severstal.rle_by_hand(m) == rle_encode(m)
        assert np.array_equal(rle_decode(severstal.rle_by_hand(m), (16, 40)), m)


def test_02_tversky_alpha_decides_which_error_costs_more():
    from solutions import severstal
    # TP 100, FP 20: 1 - 100 / (100 + 0.7 * 20) = 0.1228; TP 80, FN 20: 1 - 80 / (80 + 0.3 * 20) = 0.0698
    paper = severstal.tversky_costs(0.3)
    assert paper["false positives"] == pytest.approx(1 - 100 / 114) and paper["false negatives"] == pytest.approx(1 - 80 / 86)
    flipped = severstal.tversky_costs(0.7)
    assert flipped["false positives"] < flipped["false negatives"]


def test_02_kaggle_and_author_dice_on_a_hand_example():
    from solutions import severstal
    target = np.zeros((2, 2, 4, 4), bool); target[0, 0, :2, :2] = True          # image 0: 4 px of class 0
    nothing = np.zeros_like(target)
    # Kaggle: pairs (0,0) -> 0, (0,1), (1,0), (1,1) empty -> 1: mean 3/4.  Author: image 0 (0 + 1) / (4 + 1), image 1 -> 1
    assert severstal.two_dice(nothing, target) == pytest.approx({"kaggle": 0.75, "author": (0.2 + 1) / 2})
