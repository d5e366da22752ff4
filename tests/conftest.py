"""Shared fixtures.

- ``real_data``: the folder of real datasets from ``$DEFECTLIB_DATA`` (``.ci/run`` exports it when
  ``../shared/datasets`` exists); tests that use it skip with a reason when it is absent.
- ``real_dataset("neu-det")``: one real dataset folder, or a skip naming what is missing.
- ``make_notebook(path, cells)``: writes a small notebook with the course's ``parameters`` cell.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")  # tests draw without a display

REPO = Path(__file__).resolve().parents[1]
PARAMETERS_CELL = ('profile = "smoke"\ndata_root = None\ndevice = "auto"\nseed = 0\n'
                   'output_dir = None\ndry_run = False')


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def real_data() -> Path:
    env = os.environ.get("DEFECTLIB_DATA")
    if not env:
        pytest.skip("real datasets not available: set DEFECTLIB_DATA to a folder holding "
                    "neu-det/, neu-seg/, mtd/ (for example ../shared/datasets)")
    path = Path(env).expanduser()
    if not path.is_dir():
        pytest.skip(f"DEFECTLIB_DATA={env} is not a folder")
    return path


@pytest.fixture(scope="session")
def real_dataset(real_data):
    def get(name: str) -> Path:
        path = real_data / name
        if not path.is_dir():
            pytest.skip(f"real dataset {name!r} not in DEFECTLIB_DATA={real_data}")
        return path
    return get


def write_notebook(path: Path, cells: list[str], markdown: str = "# test notebook",
                   parameters: str = PARAMETERS_CELL) -> Path:
    """A notebook: one markdown cell, the tagged ``parameters`` cell, then ``cells`` (code)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), params]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="session")
def make_notebook():
    """``make_notebook(path, cells)`` -> path (see :func:`write_notebook`)."""
    return write_notebook
