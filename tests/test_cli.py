"""The `defectlib` console script: subcommands run, report, data, papers."""
from __future__ import annotations

import subprocess
import sys
import types

import pytest

from defectlib.course import cli


def test_help_lists_the_subcommands(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert all(f"  {c}" in out for c in ("run", "report", "data", "papers"))
    assert cli.main(["frobnicate"]) == 2


def test_papers_lists_numbers_by_prefix(capsys):
    assert cli.main(["papers", "danet/table3/phase5/"]) == 0
    out = capsys.readouterr().out
    assert "danet/table3/phase5/crazing" in out and "51.42" in out and "78.27" in out
    assert cli.main(["papers", "nothing/"]) == 1


def test_data_delegates_to_the_data_cli(monkeypatch):
    seen = {}
    fake = types.ModuleType("defectlib.course.data_cli")
    fake.main = lambda argv: seen.setdefault("argv", argv) and 0
    monkeypatch.setitem(sys.modules, "defectlib.course.data_cli", fake)
    assert cli.main(["data", "locate", "neu-det"]) == 0
    assert seen["argv"] == ["locate", "neu-det"]


def test_run_and_report_route_to_their_modules(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--notebooks", str(tmp_path)])
    assert exc.value.code == 2 and "no NN_*.ipynb" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["report", str(tmp_path / "missing")])
    assert "not a run folder" in capsys.readouterr().err


def test_python_dash_m_entry_points():
    for args in (["-m", "defectlib.course.run", "--help"], ["-m", "defectlib", "--help"]):
        res = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "run" in res.stdout
