"""The package's layout rules (README, "Adding a paper"): models are pure, every paper has one home
of the same shape."""
import ast
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "defectlib"
PAPERS = ("danet", "severstal", "ocinet", "synthetic")


def _imports(path: Path) -> set[str]:
    """Absolute names of the defectlib modules ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(PKG.parent).parts[:-1])     # a module's or __init__'s package
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out |= {f"{name}.{a.name}" for a in node.names}
    return {n for n in out if n.startswith("defectlib")}


def test_the_import_resolver_sees_relative_and_absolute_imports():
    assert "defectlib.engine" in _imports(PKG / "experiments" / "ocinet" / "recipe.py")     # from ...engine
    assert "defectlib.metrics" in _imports(PKG / "experiments" / "ocinet" / "figures.py")   # from defectlib.metrics
    assert "defectlib.models.ocinet.ccim" in _imports(PKG / "models" / "ocinet" / "__init__.py")  # from .ccim


@pytest.mark.parametrize("path", sorted((PKG / "models").rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_models_import_no_data_engine_or_metrics(path):
    bad = {n for n in _imports(path)
           if n.split(".")[1:2] and n.split(".")[1] in ("data", "engine", "metrics", "experiments")}
    assert not bad, f"{path.relative_to(PKG)} imports {sorted(bad)}: models stay pure (README, Adding a paper)"


@pytest.mark.parametrize("paper", PAPERS)
def test_every_paper_has_the_same_home(paper):
    home = PKG / "experiments" / paper
    assert all((home / part).is_file() for part in ("data.py", "recipe.py", "results.py", "figures.py"))
    module = importlib.import_module(f"defectlib.experiments.{paper}")
    assert callable(module.doctor_probes) and module.__doc__.startswith("Notebook 0")
