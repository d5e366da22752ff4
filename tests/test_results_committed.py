"""The measurements committed under results/ are what the README says they are: cpu-profile runs
(not dry runs) on the real datasets, every dataset-bound metric marked real, every paper key known."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectlib import papers

RESULTS = sorted((Path(__file__).resolve().parents[1] / "results").glob("*/results.json"))


def test_every_notebook_with_experiments_has_committed_results():
    assert [p.parent.name[:2] for p in RESULTS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.parent.name)
def test_committed_results_are_real_cpu_runs(path):
    d = json.loads(path.read_text())
    assert d["notebook"] == path.parent.name and d["profile"] == "cpu" and not d["config"]["dry_run"]
    assert d["data_root"], "committed results must come from the real datasets (--data-root)"
    assert d["git_commit"] and d["metrics"]
    for m in d["metrics"]:
        assert m["dataset"] == "-" or m["real"], f"{m['name']} was measured on a stand-in"
        if m.get("paper"):
            papers.lookup(m["paper"])  # KeyError if the paper key is unknown


@pytest.mark.parametrize("path", sorted(p.parent / "seeds.json" for p in RESULTS if (p.parent / "seeds.json").is_file()),
                         ids=lambda p: p.parent.name)
def test_seed_spreads_hold_together(path):
    import statistics
    d = json.loads(path.read_text())
    assert len(d["seeds"]) >= 2 and d["rows"]
    seeds = {str(s) for s in d["seeds"]}
    for r in d["rows"]:
        # a metric can be undefined in a seed (a gate that calls nothing defective has no precision):
        # the seeds tool leaves that seed out of the row, never fills it in
        assert set(r["values"]) <= seeds and r["n"] == len(r["values"]) >= 1, r["name"]
        vals = list(r["values"].values())
        assert r["mean"] == pytest.approx(statistics.fmean(vals))
        if len(vals) > 1:
            assert r["sd"] == pytest.approx(statistics.stdev(vals))
    complete = sum(len(r["values"]) == len(seeds) for r in d["rows"])
    assert complete >= 0.9 * len(d["rows"]), "most metrics must be measured in every seed"
