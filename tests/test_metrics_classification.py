"""Confusion matrix, precision/recall and the defect gate against scikit-learn and paper 001."""
import numpy as np
import pytest
import torch

from defectlib.metrics.classification import confusion_matrix, gate_report, precision_recall

sk = pytest.importorskip("sklearn.metrics")


def test_confusion_matrix_and_precision_recall_equal_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 5, 200))  # class 4 only predicted
    cm = confusion_matrix(torch.from_numpy(y), p, num_classes=5)
    np.testing.assert_array_equal(cm, sk.confusion_matrix(y, p, labels=range(5)))
    prec, rec = precision_recall(cm)
    np.testing.assert_allclose(prec, sk.precision_score(y, p, labels=range(5), average=None, zero_division=0))
    np.testing.assert_allclose(rec[:4], sk.recall_score(y, p, labels=range(4), average=None))
    assert np.isnan(rec[4])  # no true sample of class 4: recall undefined, not 0
    with pytest.raises(ValueError, match="labels must lie"):
        confusion_matrix(y, p, num_classes=3)


def test_gate_reproduces_paper_001_resnet50_matrix():
    # paper 001, ResNet-50 gate: rows real (defective, clean), columns predicted: [[695, 21], [365, 719]]
    y = np.r_[np.ones(716, bool), np.zeros(1084, bool)]
    prob = np.r_[np.full(695, 0.9), np.full(21, 0.2), np.full(365, 0.7), np.full(719, 0.1)]
    r = gate_report(y, torch.from_numpy(prob))
    np.testing.assert_array_equal(r.matrix, [[695, 21], [365, 719]])
    assert r.false_negative_rate == pytest.approx(21 / 716)
    assert r.recall == pytest.approx(sk.recall_score(y, prob >= 0.5))
    assert r.precision == pytest.approx(sk.precision_score(y, prob >= 0.5))
    assert r.false_positive_rate == pytest.approx(365 / 1084)
    assert r.accuracy == pytest.approx((695 + 719) / 1800)
    assert gate_report(y, prob, threshold=0.95).false_negative_rate == 1.0  # the gate passes nothing
    assert set(r.as_dict()) >= {"tp", "fn", "false_negative_rate"}


def test_gate_threshold_is_inclusive():
    r = gate_report([True, False], [0.5, 0.5])  # p >= 0.5 goes to the segmenter
    assert (r.tp, r.fp, r.fn, r.tn) == (1, 1, 0, 0)


def test_roc_auc_equals_scikit_learn_with_ties_and_checks_input():
    from sklearn.metrics import roc_auc_score

    from defectlib.metrics.classification import roc_auc

    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.3
    score = np.round(rng.random(300) * 0.6 + 0.4 * y, 1)          # rounded: many ties
    assert roc_auc(y, torch.from_numpy(score)) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert roc_auc([True, False], [0.9, 0.1]) == 1.0
    assert roc_auc([True, False], [0.1, 0.9]) == 0.0
    assert roc_auc([True, False, True, False], [0.5, 0.5, 0.5, 0.5]) == 0.5
    with pytest.raises(ValueError, match="defective and clean"):
        roc_auc([True, True], [0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([True, False], [np.nan, 0.3])
    with pytest.raises(ValueError, match="3 labels but 2 scores"):
        roc_auc([True, False, True], [0.2, 0.3])
