"""Verdicts on a paper's claim: the paired t-test against scipy's, and the cases it must refuse."""
from __future__ import annotations

import math

import pytest
from scipy import stats

from defectlib.record.verdict import judge


def test_p_value_equals_scipy_paired_t_test():
    a, b = [18.5, 20.3, 7.5, 12.0], [14.8, 7.0, 17.9, 9.5]
    v = judge("A beats B", a, b, real=True)
    ref = stats.ttest_rel(a, b, alternative="greater")
    assert v.p == pytest.approx(ref.pvalue, rel=1e-12)
    lower = judge("A is lower than B", a, b, real=True, higher_is_better=False)
    assert lower.p == pytest.approx(stats.ttest_rel(a, b, alternative="less").pvalue, rel=1e-12)


def test_hand_computed_case():
    # differences 2, 4, 6: mean 4, sd 2, t = 4 / (2 / sqrt 3) = 3.4641 > 2.920 (df 2, one-sided 5 %)
    v = judge("phase 5 beats phase 2", {0: 12, 1: 14, 2: 16}, {0: 10, 1: 10, 2: 10}, real=True)
    assert (v.status, v.n, v.mean_diff, v.sd_diff) == ("holds", 3, 4.0, 2.0)
    assert v.p == pytest.approx(stats.t.sf(4 / (2 / math.sqrt(3)), 2))
    assert "HOLDS" in v.text and "p = 0.037" in v.text


def test_each_status():
    clear_a, clear_b = [50, 52, 51], [40, 41, 40]
    assert judge("c", clear_a, clear_b, real=True).status == "holds"
    assert judge("c", clear_b, clear_a, real=True).status == "does not hold"
    assert judge("c", clear_a, clear_b, real=True, higher_is_better=False).status == "does not hold"
    # notebook 04's three seeds: SynthTile (FT) vs real-only F1
    assert judge("c", [14.8, 7.0, 17.9], [18.5, 20.3, 7.5], real=True).status == "undecided"
    one = judge("c", [60.0], [40.0], real=True)
    assert one.status == "cannot decide" and math.isnan(one.p) and "one seed" in one.text
    fake = judge("c", clear_a, clear_b, real=False)
    assert fake.status == "not tested" and "HOLD" not in fake.text
    assert judge("c", [3, 3, 3], [1, 1, 1], real=True).status == "holds"          # no spread at all
    assert judge("c", [3, 4, 5], [3, 4, 5], real=True).status == "undecided"


def test_pairs_by_seed_and_refuses_what_cannot_be_paired():
    v = judge("c", {2: 5.0, 0: 1.0, 1: 3.0}, {0: 0.0, 1: 1.0, 2: 2.0, 7: 100.0}, real=True)
    assert v.n == 3 and v.mean_diff == pytest.approx(2.0)          # seed 7 has no partner
    with pytest.raises(ValueError, match="share no seed"):
        judge("c", {0: 1.0}, {1: 1.0}, real=True)
    with pytest.raises(ValueError, match="one value per seed"):
        judge("c", [1.0, 2.0], [1.0], real=True)
    with pytest.raises(ValueError, match="mappings or both as sequences"):
        judge("c", {0: 1.0}, [1.0], real=True)


def test_judge_runs_reads_each_claim_from_results():
    from defectlib.experiments.registry import experiments
    from defectlib.record.verdict import judge_runs
    claims = {e.stem: e.claims for e in experiments().values()}

    def res(seed, synth, real_only, real=True):
        return {"seed": seed, "metrics": [{"name": "unet/synth_ft/F1", "value": synth, "real": real},
                                          {"name": "unet/real/F1", "value": real_only, "real": real}]}
    (v,) = judge_runs(claims["04_synthetic_data"], [res(0, 14.8, 18.5), res(1, 7.0, 20.3), res(2, 17.9, 7.5)])
    assert v.status == "undecided" and v.n == 3 and v.mean_a == pytest.approx((14.8 + 7.0 + 17.9) / 3)
    (v,) = judge_runs(claims["04_synthetic_data"], [res(0, 30.0, 10.0)])
    assert v.status == "cannot decide"
    assert judge_runs(claims["04_synthetic_data"], [{"seed": 0, "metrics": []}]) == []      # another profile's metrics
    assert judge_runs(claims["00_getting_started"], [res(0, 1.0, 2.0)]) == []                 # no claim there
    assert {nb for nb, c in claims.items() if c} == {"01_danet_neu_det", "02_severstal_two_stage", "03_ocinet_nrsd",
                                                      "04_synthetic_data"}


def test_every_claim_names_metrics_the_committed_results_have():
    """A renamed metric would silently drop its claim from every verdict: check the names against
    the committed cpu results of each notebook."""
    import json
    from pathlib import Path

    from defectlib.experiments.registry import experiments
    root = Path(__file__).resolve().parents[1] / "results"
    for nb, claims in ((e.stem, e.claims) for e in experiments().values() if e.claims):
        names = {m["name"] for m in json.loads((root / nb / "results.json").read_text())["metrics"]}
        for c in claims:
            assert {c.a, c.b} <= names, (nb, c.statement)


def test_report_shows_this_run_then_the_committed_seeds(tmp_path):
    import json

    from defectlib.experiments import ocinet
    from defectlib.record.verdict import report
    run = {"profile": "smoke", "seed": 0, "metrics": [{"name": "full/NEU-Seg test/IoU", "value": 5.0, "real": False},
                                                      {"name": "base/NEU-Seg test/IoU", "value": 4.0, "real": False}]}
    text = report("03_ocinet_nrsd", run, ocinet.CLAIMS, results_dir=tmp_path)
    assert "profile `smoke`, seed 0" in text and "NOT TESTED" in text and "Committed" not in text
    (tmp_path / "03_ocinet_nrsd").mkdir()
    (tmp_path / "03_ocinet_nrsd" / "seeds.json").write_text(json.dumps(
        {"profile": "cpu", "seeds": [0, 1, 2], "verdicts": [{"statement": "s", "status": "undecided", "text": "T"}]}))
    text = report("03_ocinet_nrsd", run, ocinet.CLAIMS, results_dir=tmp_path)
    assert text.endswith("profile `cpu`, seeds 0, 1, 2):\n\n- T")
    empty = {"profile": "x", "seed": 1, "metrics": []}
    assert "no claim's metrics" in report("03_ocinet_nrsd", empty, ocinet.CLAIMS, tmp_path)
