"""Committed notebooks carry no outputs and follow the course's parameter contract."""
from __future__ import annotations

from pathlib import Path

import ast
import json

import nbformat
import pytest

from defectlib.course.run import NOTEBOOK_RE

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CONTRACT = {"profile": "smoke", "data_root": None, "device": "auto", "seed": 0,
            "output_dir": None, "resume": False, "dry_run": False}


def test_there_are_notebooks_and_all_are_numbered():
    assert NOTEBOOKS, "no notebooks in notebooks/"
    bad = [p.name for p in NOTEBOOKS if not NOTEBOOK_RE.match(p.name)]
    assert not bad, f"notebooks the runner would skip (name them NN_topic.ipynb): {bad}"
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), f"two notebooks share a number: {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts (strip them)"
    leftovers = {"papermill", "widgets", "execution"} & set(nb.metadata)
    leftovers |= {f"cell {i}: {k}" for i, c in enumerate(nb.cells)
                  for k in ("papermill", "execution") if k in c.metadata}
    assert not leftovers, f"{path.name}: execution metadata left in: {sorted(leftovers)}"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_parameters_cell_follows_the_contract(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code"
    first = code[0]
    assert "parameters" in first.metadata.get("tags", []), \
        f"{path.name}: the first code cell must be tagged 'parameters'"
    values = {}
    for node in ast.parse(first.source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, \
            f"{path.name}: the parameters cell holds only simple assignments"
        values[node.targets[0].id] = ast.literal_eval(node.value)
    # the course's parameters, in order, with their defaults; a notebook may add its own (notebook
    # 05: the user's folder and its options)
    common = {k: v for k, v in values.items() if k in CONTRACT}
    assert common == CONTRACT and list(common) == list(CONTRACT), \
        f"{path.name}: parameters {common} differ from the contract"
    # papermill reads the cell with its own parser, which gives up on a line whose comment holds
    # "=" and then warns "Passed unknown parameter" on every run
    from papermill.translators import PythonTranslator
    parsed = [p.name for p in PythonTranslator.inspect(first)]
    assert parsed == list(values), f"{path.name}: papermill parses only {parsed}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_not_a_placeholder(path):
    nb = json.loads(path.read_text())
    md = [c for c in nb["cells"] if c["cell_type"] == "markdown"]
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert md and "".join(md[0]["source"]).lstrip().startswith("# "), \
        f"{path.name}: should open with a '# Title' markdown cell"
    assert len(code) >= 3 and len(md) >= 3, f"{path.name} looks like a placeholder"
    assert any("Recorder(" in "".join(c["source"]) for c in code), \
        f"{path.name}: record results with defectlib.record.Recorder so the report shows them"


def test_throughput_is_measured_on_the_device_it_is_reported_for():
    """A notebook that times a model must time it on the run's device (notebook 03 once timed on
    the CPU and recorded the result as "cuda")."""
    for path in NOTEBOOKS:
        for c in nbformat.read(path, as_version=4).cells:
            if c.cell_type == "code" and "measure_throughput(" in c.source:
                call = c.source[c.source.index("measure_throughput("):]
                call = call[:call.index(")\n") + 1] if ")\n" in call else call
                assert "device=device" in call, f"{path.name}: measure_throughput without the run's device"


#: each paper notebook's results table beside the paper: the experiment's call into defectlib.record.tables
RESULTS_TABLES = {"01": ["E.table3(rec)"], "02": ["ts.pipeline_table(", "ts.gate_table(", "ts.segmentation_table("],
                  "03": ["X.table1(", "X.table3("], "04": ["S.table1("]}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tables_and_recording_come_from_the_library(path):
    """No code cell hand-writes a Markdown table or records a metric per line in a loop: results
    tables are the experiment's calls of ``defectlib.record.tables.results`` (other tables
    ``viz.markdown_table``), so every notebook's look the same and each cell stays short."""
    code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert not [s for s in code if "|---" in s], f"{path.name}: a hand-written Markdown table"
    for call in RESULTS_TABLES.get(path.name[:2], []):
        assert any(call in s for s in code), f"{path.name}: its results table ({call}...) is not shown"
    many = [s.splitlines()[0] for s in code if s.count("rec.metric(") > 3]
    assert not many, f"{path.name}: cells recording metrics one by one (use the experiment's record_*): {many}"
