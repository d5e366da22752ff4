"""environment.yml (conda) names exactly the dependencies and pins of pyproject.toml."""
from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def _norm(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name not in out, f"{name} listed twice"
        out[name] = str(req.specifier)
    return out


def _pyproject():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return data["dependencies"], data.get("optional-dependencies", {}).get("dev", [])


def _environment():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    deps = env["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    return conda, pip


def test_python_is_3_11_and_pip_is_there():
    conda, _ = _environment()
    assert "python=3.11" in conda and "pip" in conda
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"


def test_same_dependencies_and_pins_as_pyproject():
    runtime, dev = _pyproject()
    _, pip = _environment()
    reqs = [p for p in pip if not p.startswith("-e")]
    want, got = _norm(runtime + dev), _norm(reqs)
    missing = {k: v for k, v in want.items() if k not in got}
    extra = {k: v for k, v in got.items() if k not in want}
    differ = {k: (want[k], got[k]) for k in want.keys() & got.keys() if want[k] != got[k]}
    assert not missing, f"in pyproject.toml but not environment.yml: {missing}"
    assert not extra, f"in environment.yml but not pyproject.toml: {extra}"
    assert not differ, f"pins differ (pyproject, environment.yml): {differ}"
    assert "-e ." in pip  # the course package itself


def test_torch_pins_are_exact():
    runtime, _ = _pyproject()
    pins = _norm(runtime)
    assert pins["torch"] == "==2.14.1" and pins["torchvision"] == "==0.29.1"
