"""Segmentation metrics against scikit-learn, OpenCV and hand-computed cases."""
import numpy as np
import pytest
import torch

from defectlib.metrics import segmentation as seg

sk = pytest.importorskip("sklearn.metrics")


def random_masks(rng, n=12, size=24, p=0.2):
    pred = rng.random((n, size, size)) < p
    target = rng.random((n, size, size)) < p
    pred[0] = target[0] = False  # empty / empty
    pred[1] = False  # target only
    target[2] = False  # prediction only
    pred[3] = target[3]  # perfect
    return pred, target


def test_per_image_and_pooled_scores_equal_sklearn():
    rng = np.random.default_rng(0)
    pred, target = random_masks(rng)
    per = seg.segmentation_scores(pred, target, reduction="none")
    refs = {"pixel_accuracy": lambda g, p: sk.accuracy_score(g, p),
            "foreground_recall": lambda g, p: sk.recall_score(g, p, zero_division=1.0),
            "precision": lambda g, p: sk.precision_score(g, p, zero_division=1.0),
            "iou": lambda g, p: sk.jaccard_score(g, p, zero_division=1.0),
            "dice": lambda g, p: sk.f1_score(g, p, zero_division=1.0)}
    for name, ref in refs.items():
        expected = [ref(g.ravel(), p.ravel()) for p, g in zip(pred, target)]
        np.testing.assert_allclose(per[name], expected, rtol=0, atol=1e-12, err_msg=name)
        mean = seg.segmentation_scores(pred, target)[name]
        assert mean == pytest.approx(np.mean(expected), abs=1e-12)
        pooled = seg.segmentation_scores(pred, target, reduction="pooled")[name]
        assert pooled == pytest.approx(ref(target.ravel(), pred.ravel()), abs=1e-12)
    assert per["iou"][0] == 1.0 and per["iou"][1] == 0.0 and per["iou"][3] == 1.0


def test_ocinet_pa_is_not_pixel_accuracy():
    target = np.zeros((1, 10, 10), bool)
    target[0, :2] = True  # 20 defect pixels
    pred = np.zeros_like(target)
    pred[0, 0] = True  # finds half of them, no false alarm
    s = seg.segmentation_scores(pred, target)
    assert s["pixel_accuracy"] == pytest.approx(0.9)  # Eq. 5: 90 of 100 pixels right
    assert s["foreground_recall"] == pytest.approx(0.5)  # the authors' code's "PA"
    assert s["iou"] == pytest.approx(0.5) and s["dice"] == pytest.approx(2 / 3)


def test_kaggle_dice_against_sklearn_f1_and_empty_pairs():
    rng = np.random.default_rng(1)
    pred = rng.random((5, 4, 8, 16)) < 0.1
    target = rng.random((5, 4, 8, 16)) < 0.1
    pred[:, 2] = False
    target[:, 2] = False  # class 2 absent everywhere and never predicted: scores 1
    pred[1, 3] = True
    target[1, 3] = False  # false alarm on a clean pair: 0
    expected = [sk.f1_score(target[i, c].ravel(), pred[i, c].ravel(), zero_division=1.0)
                for i in range(5) for c in range(4)]
    total, per_class = seg.kaggle_dice(torch.from_numpy(pred), torch.from_numpy(target), per_class=True)
    assert total == pytest.approx(np.mean(expected), abs=1e-12)
    assert per_class[2] == 1.0
    # predicting nothing on mostly-clean data already scores the share of empty pairs
    empty_pred = np.zeros_like(target)
    t2 = np.zeros_like(target)
    t2[0, 0, 0, 0] = True
    assert seg.kaggle_dice(empty_pred, t2) == pytest.approx(19 / 20)


def test_severstal_author_dice_pools_channels_and_smooths():
    pred = np.zeros((2, 4, 2, 2))
    target = np.zeros((2, 4, 2, 2))
    pred[0, 0, 0, 0] = pred[0, 1, 0, 0] = 1
    target[0, 0, 0, 0] = target[0, 2, 0, 0] = 1  # image 0: I=1, |S|=2, |G|=2 -> (2+1)/(4+1)
    # image 1: both empty -> (0+1)/(0+1) = 1
    assert seg.severstal_author_dice(pred, target) == pytest.approx((3 / 5 + 1) / 2)
    assert seg.severstal_author_dice(pred, target, smooth=1e-9) == pytest.approx((2 / 4 + 1) / 2)
    # differs from the Kaggle metric on the same masks
    assert seg.kaggle_dice(pred > 0, target > 0) != pytest.approx(seg.severstal_author_dice(pred, target))


def test_otsu_equals_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(2)
    maps = np.concatenate([rng.beta(0.5, 0.5, (6, 40, 50)), 0.3 + 0.2 * rng.random((2, 40, 50))])
    maps[6, :20] += 0.5  # bimodal with an offset: min-max normalisation matters
    ours = seg.otsu_binarize(torch.from_numpy(maps))
    for i, m in enumerate(maps):
        norm = (m - m.min()) / (m.max() - m.min() + 1e-8)
        u8 = (norm * 255).astype(np.uint8)
        _, ref = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        np.testing.assert_array_equal(ours[i], ref > 0, err_msg=f"map {i}")
    constant = seg.otsu_binarize(np.full((1, 5, 5), 0.7))
    assert not constant.any()


def test_precision_recall_curve_equals_sklearn_and_best_f1():
    rng = np.random.default_rng(3)
    target = rng.random((4, 30, 30)) < 0.15
    scores = np.clip(0.35 * target + rng.random(target.shape) * 0.8, 0, 1)
    scores = np.round(scores, 2)  # many tied scores
    p, r, t = seg.precision_recall_curve(target, scores)
    rp, rr, rt = sk.precision_recall_curve(target.ravel(), scores.ravel())
    np.testing.assert_array_equal(t, rt)
    np.testing.assert_allclose(p, rp, rtol=0, atol=1e-15)
    np.testing.assert_allclose(r, rr, rtol=0, atol=1e-15)
    thr, f1, prec, rec = seg.best_f1_threshold(target, scores)
    f1_ref = np.nan_to_num(2 * rp * rr / (rp + rr))[:-1]
    assert f1 == pytest.approx(f1_ref.max(), abs=1e-12) and thr == rt[np.argmax(f1_ref)]
    prf = seg.pixel_prf(target, scores, thr)
    ref = sk.precision_recall_fscore_support(target.ravel(), scores.ravel() >= thr, average="binary")
    np.testing.assert_allclose([prf["precision"], prf["recall"], prf["f1"]], ref[:3], atol=1e-12)
    assert prf["f1"] == pytest.approx(f1, abs=1e-12)


def test_multiclass_confusion_and_iou_equal_sklearn():
    rng = np.random.default_rng(4)
    pred = rng.integers(0, 4, (3, 20, 20))
    target = rng.integers(0, 3, (3, 20, 20))  # class 3 never in the target
    cm = seg.multiclass_confusion(torch.from_numpy(pred), target, 4)
    np.testing.assert_array_equal(cm, sk.confusion_matrix(target.ravel(), pred.ravel(), labels=range(4)))
    np.testing.assert_allclose(seg.per_class_iou(cm), sk.jaccard_score(target.ravel(), pred.ravel(),
                                                                      average=None, labels=range(4)))
    with pytest.raises(ValueError, match="labels must lie"):
        seg.multiclass_confusion(pred, target + 4, 4)


def test_input_checks():
    with pytest.raises(ValueError, match="binary"):
        seg.segmentation_scores(np.full((1, 2, 2), 0.3), np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="shape"):
        seg.segmentation_scores(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)))


def test_840_neu_seg_sized_masks_at_once():
    rng = np.random.default_rng(5)
    target = rng.integers(0, 8, (840, 200, 200), dtype=np.uint8) == 0
    pred = torch.from_numpy(rng.integers(0, 8, (840, 200, 200), dtype=np.uint8) == 0)
    per_image = seg.segmentation_scores(pred, target)
    pooled = seg.segmentation_scores(pred, target, reduction="pooled")
    assert 0 < per_image["iou"] < 1 and 0 < pooled["dice"] < 1


def test_ocinet_evaluation_protocol():
    cv2 = pytest.importorskip("cv2")
    psm = pytest.importorskip("py_sod_metrics")
    rng = np.random.default_rng(6)
    target = np.zeros((3, 32, 32), bool)
    target[:, 8:20, 10:24] = True
    logits = 4 * (target - 0.5) + rng.normal(0, 1.5, target.shape)
    prob = torch.sigmoid(torch.from_numpy(logits))
    out = seg.ocinet_evaluation(prob, target)
    ious, wfms = [], []
    for p, g in zip(prob.numpy(), target):
        norm = (p - p.min()) / (p.max() - p.min() + 1e-8)
        _, b = cv2.threshold((norm * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        ious.append(sk.jaccard_score(g.ravel(), b.ravel() > 0))
        m = psm.WeightedFmeasure()
        m.step(pred=np.round(norm * 255).astype(np.uint8), gt=g.astype(np.uint8) * 255)
        wfms.append(m.get_results()["wfm"])
    assert out["IoU"] == pytest.approx(np.mean(ious), abs=1e-12)
    assert out["wFm"] == pytest.approx(np.mean(wfms), abs=5e-3)  # oracle sees an 8-bit map
    assert set(out) == {"PA", "foreground_recall", "wFm", "IoU", "Dice"}


def test_ocinet_evaluation_per_image_matches_one_image_at_a_time():
    rng = np.random.default_rng(7)
    target = rng.random((5, 24, 24)) < 0.2
    target[4] = False  # an image without defect: IoU/Dice of an empty prediction score 1, wFm 0
    prob = rng.random((5, 24, 24)).astype(np.float32)
    per_image = seg.ocinet_evaluation(prob, target, reduction="none")
    assert all(v.shape == (5,) for v in per_image.values())
    for i in range(5):
        one = seg.ocinet_evaluation(prob[i:i + 1], target[i:i + 1])
        # 5 maps at once vs 1: numpy reductions over other shapes need not sum in the same order
        assert {k: v[i] for k, v in per_image.items()} == pytest.approx(one, abs=1e-12)
    assert {k: v.mean() for k, v in per_image.items()} == pytest.approx(seg.ocinet_evaluation(prob, target))
    with pytest.raises(ValueError, match="reduction"):
        seg.ocinet_evaluation(prob, target, reduction="pooled")
