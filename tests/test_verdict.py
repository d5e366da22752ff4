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
                                                      "04_synthetic_data", "05_your_own_data"}


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
            assert c.baseline is None or c.baseline in names, (nb, c.statement, c.baseline)


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
    # notebook 05 on a user's folder: the seeds committed on NEU-Seg are not that folder's verdicts
    assert "Committed" not in report("03_ocinet_nrsd", run, ocinet.CLAIMS, results_dir=tmp_path, committed=False)
    empty = {"profile": "x", "seed": 1, "metrics": []}
    assert "no claim's metrics" in report("03_ocinet_nrsd", empty, ocinet.CLAIMS, tmp_path)


# --- the trivial baseline (issue 29): both arms below it decide nothing ------------------------------
def test_both_arms_below_the_baseline_decide_nothing():
    # differences 0.30, 0.30, 0.35: the t-test alone says holds (p < 0.05); the arms' means 0.50 and
    # 0.1833 are both below the baseline's mean over the same seeds, (0.70 + 0.71 + 0.72) / 3 = 0.71
    a, b, base = [0.40, 0.50, 0.60], [0.10, 0.20, 0.25], {0: 0.70, 1: 0.71, 2: 0.72}
    assert judge("c", a, b, real=True).status == "holds"
    v = judge("A beats B", dict(enumerate(a)), dict(enumerate(b)), real=True, baseline=base,
              baseline_name="predict nothing")
    assert v.status == "decides nothing" and v.below == ("A", "B") and v.baseline == pytest.approx(0.71)
    assert ("DECIDES NOTHING here; both arms below the trivial baseline (predict nothing 0.71): this comparison "
            "decides nothing, whichever arm wins. A 0.5 vs B 0.183") in v.text
    assert "hold" not in v.text.lower() and "p = 0.0" in v.text        # the test's p is still shown
    # lower is better (an error): both arms above the baseline's 4 are both worse than it
    err = judge("A errs less than B", [5, 6, 7], [8, 9, 10], real=True, higher_is_better=False, baseline=4.0)
    assert err.status == "decides nothing" and "both arms above the trivial baseline (trivial baseline 4)" in err.text
    # one seed: still decides nothing (no number of seeds makes two arms below predicting nothing useful)
    assert judge("c", [0.2], [0.1], real=True, baseline=[0.7]).status == "decides nothing"
    # generated stand-in data: "not tested" comes first
    fake = judge("c", a, b, real=False, baseline=0.71)
    assert fake.status == "not tested" and "trivial" not in fake.text


def test_one_arm_below_the_baseline_is_named_and_the_status_kept():
    # means A 0.82, B 0.61 against a constant baseline 0.70: B is below, A is not; differences
    # 0.20, 0.21, 0.22 (mean 0.21, sd 0.01, t = 36.4): holds
    v = judge("A beats B", [0.80, 0.82, 0.84], [0.60, 0.61, 0.62], real=True, baseline=0.70,
              baseline_name="predict nothing")
    assert v.status == "holds" and v.below == ("B",) and v.baseline == pytest.approx(0.70)
    assert "HOLDS here; the difference is beyond the seed spread at alpha 0.05; B (0.61) is below the trivial " \
           "baseline (predict nothing 0.7), A is not." in v.text
    # the other way round, undecided: A below, B not
    u = judge("A beats B", [0.60, 0.75, 0.60], [0.72, 0.71, 0.73], real=True, baseline=[0.70, 0.70, 0.70])
    assert u.status == "undecided" and u.below == ("A",) and "A (0.65) is below the trivial baseline" in u.text


def test_no_arm_below_or_no_baseline_changes_nothing():
    a, b = [0.80, 0.82, 0.84], [0.72, 0.73, 0.74]
    plain = judge("A beats B", a, b, real=True)
    none_below = judge("A beats B", a, b, real=True, baseline=0.70)
    assert plain.status == none_below.status == "holds" and plain.text == none_below.text
    assert none_below.below == () and none_below.baseline == pytest.approx(0.70) and math.isnan(plain.baseline)
    # an arm exactly at the baseline is not below it (the rule is strict)
    at = judge("A beats B", [0.9, 0.9, 0.9], [0.7, 0.7, 0.7], real=True, baseline=0.7)
    assert at.status == "holds" and at.below == ()
    with pytest.raises(ValueError, match="no value for seed"):
        judge("c", {0: 1.0, 1: 2.0}, {0: 0.0, 1: 1.0}, real=True, baseline={0: 0.5})


def test_judge_runs_reads_the_baseline_and_refuses_a_run_without_it():
    from defectlib.experiments.severstal import CLAIMS
    from defectlib.record.verdict import judge_runs
    at_paper = CLAIMS[0]

    def res(seed, two, alone, nothing=0.71):
        ms = [{"name": at_paper.a, "value": two, "real": True}, {"name": at_paper.b, "value": alone, "real": True}]
        if nothing is not None:
            ms.append({"name": at_paper.baseline, "value": nothing, "real": True})
        return {"seed": seed, "metrics": ms}
    (v,) = judge_runs([at_paper], [res(0, 0.5, 0.1), res(1, 0.6, 0.1), res(2, 0.55, 0.05)])
    assert v.status == "decides nothing" and "(predict nothing 0.71)" in v.text
    (v,) = judge_runs([at_paper], [res(0, 0.75, 0.1), res(1, 0.8, 0.1), res(2, 0.78, 0.05)])
    assert v.status == "holds" and v.below == ("U-Net alone",)
    with pytest.raises(ValueError, match="trivial baseline"):
        judge_runs([at_paper], [res(0, 0.5, 0.1), res(1, 0.6, 0.1, nothing=None)])


def _committed_runs(nb):
    """The committed seeds of ``nb`` as results.json dicts, from the per-seed rows of seeds.json."""
    import json
    from pathlib import Path
    seeds = json.loads((Path(__file__).resolve().parents[1] / "results" / nb / "seeds.json").read_text())
    runs = {s: [] for s in seeds["seeds"]}
    for row in seeds["rows"]:
        for s, value in row["values"].items():
            runs[int(s)].append({"name": row["name"], "value": value, "real": True})
    return seeds, [{"seed": s, "metrics": m} for s, m in runs.items()]


def test_committed_verdicts_follow_the_rule():
    """Notebook 02's claim at the paper's thresholds: both arms below predicting nothing (author's
    Dice 0.481 and 0.057 against 0.714), so the committed verdict decides nothing; every committed
    verdict is the one the rule gives on the committed per-seed values."""
    from defectlib.experiments.registry import experiments
    from defectlib.record.verdict import judge_runs
    _, runs = _committed_runs("02_severstal_two_stage")
    at_paper, tuned = judge_runs(experiments()["02"].claims, runs)
    assert at_paper.status == "decides nothing" and at_paper.below == ("two-stage", "U-Net alone")
    assert (at_paper.mean_a, at_paper.mean_b, at_paper.baseline) == pytest.approx((0.4814, 0.0573, 0.7136), abs=1e-4)
    assert "both arms below the trivial baseline (predict nothing 0.714): this comparison decides nothing" in at_paper.text
    assert tuned.status == "undecided" and tuned.below == ("U-Net alone",)
    for e in experiments().values():
        if e.claims:
            committed, runs = _committed_runs(e.stem)
            assert committed["verdicts"] == [{"statement": v.statement, "status": v.status, "text": v.text}
                                             for v in judge_runs(e.claims, runs)], e.stem


def test_readme_claims_table_quotes_the_committed_verdicts():
    """The README's "papers' claims at cpu budgets" table gives each committed verdict as
    ``| NN | statement | **status**: the rest of its text |``, so it cannot keep an old status."""
    import json
    from pathlib import Path

    from defectlib.experiments.registry import experiments
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    for number, e in experiments().items():
        if not e.claims:
            continue
        for v in json.loads((root / "results" / e.stem / "seeds.json").read_text())["verdicts"]:
            head = f"{v['statement']}: {v['status'].upper()} here; "
            assert v["text"].startswith(head)
            row = f"| {number} | {v['statement']} | **{v['status']}**: {v['text'][len(head):]} |"
            assert row in readme, row
