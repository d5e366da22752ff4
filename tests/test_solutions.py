"""The exercises' solutions (solutions/): each checked against the library it re-derives."""
from __future__ import annotations

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
