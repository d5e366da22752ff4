"""defectlib.record.tables: the results table every notebook renders (ours beside the paper's)."""
from __future__ import annotations

import pytest

from defectlib import papers
from defectlib.record import Recorder
from defectlib.record.tables import Col, Row, Table, results


def _rec():
    rec = Recorder(None, "01_test", "cpu")
    rec.metrics({"AP50/crazing": 41.25, "mAP50": 60.0}, prefix="phase5", dataset="NEU-DET", real=True,
                unit="%", paper={"mAP50": "danet/table3/phase5/mAP"}, note={"mAP50": "mean over classes"})
    rec.metric("phase5/AP", float("nan"), dataset="NEU-DET", real=True, unit="%")
    return rec


def test_metrics_records_a_group_in_order_with_paper_keys_and_notes():
    m = _rec().data["metrics"]
    assert [(x["name"], x["value"], x["paper"], x["note"]) for x in m[:2]] == [
        ("phase5/AP50/crazing", 41.25, None, ""),
        ("phase5/mAP50", 60.0, "danet/table3/phase5/mAP", "mean over classes")]
    with pytest.raises(KeyError):   # a paper key that does not exist fails at once, as metric() does
        Recorder(None, "x", "cpu").metrics({"a": 1.0}, paper={"a": "danet/table3/phase9/mAP"},
                                           dataset="d", real=True)


def test_grid_puts_ours_under_the_papers_line():
    rows = [Row("phase 2", ours="phase2", paper="danet/table3/phase2"),
            Row("phase 5", ours="phase5", paper="danet/table3/phase5")]
    cols = [Col("crazing", "AP50/crazing", "crazing", "{:.2f}"), Col("mAP", "mAP50", "mAP"),
            Col("AP", "AP", None)]
    table = results(_rec(), rows, cols, title="T3")
    lines = str(table).splitlines()
    assert isinstance(table, Table) and table._repr_markdown_() == str(table)
    assert lines[0] == "**T3**" and lines[2] == "|  | source | crazing | mAP | AP |"
    assert lines[3] == "|---|---|---:|---:|---:|"
    p2 = papers.lookup("danet/table3/phase2/crazing"), papers.lookup("danet/table3/phase2/mAP")
    assert lines[4] == f"| phase 2 | paper | {p2[0]:.2f} | {p2[1]:.1f} | - |"
    assert lines[5] == "| phase 2 | ours (cpu) | not run |  |  |"     # nothing recorded for phase 2
    assert lines[7] == "| phase 5 | ours (cpu) | 41.25 | 60.0 | - |"  # NaN prints as '-'


def test_rows_with_only_one_side_and_bad_keys():
    rows = [Row("ours only", ours="phase5"), Row("paper only", paper="danet/table3/phase5")]
    lines = str(results(_rec(), rows, [Col("mAP", "mAP50", "mAP")], ours="ours")).splitlines()
    assert lines[2:] == ["| ours only | ours | 60.0 |",
                         f"| paper only | paper | {papers.lookup('danet/table3/phase5/mAP'):.1f} |"]
    with pytest.raises(KeyError):   # a typo in a paper key must not print '-'
        results(_rec(), [Row("x", paper="danet/table3/phase5")], [Col("m", "mAP50", "mAPP")])
    with pytest.raises(ValueError, match="both rows and cols"):
        results(_rec(), rows, None)


def test_without_layout_every_metric_is_listed_with_the_papers_number():
    lines = str(results(_rec())).splitlines()
    assert lines[0] == "| metric | ours | paper | dataset |"
    assert lines[3] == f"| phase5/mAP50 | 60.000 | {papers.lookup('danet/table3/phase5/mAP')} | NEU-DET |"
    assert lines[4] == "| phase5/AP | - |  | NEU-DET |"
