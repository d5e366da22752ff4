"""The package's layout rules (README, "Adding a paper"): models are pure, every paper has one home
of the same shape, found through the one registry; the imports form layers (no circle, no private
name of another module, data below synth and engine)."""
import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

from defectlib.experiments import registry

PKG = Path(__file__).resolve().parents[1] / "defectlib"
REPO = PKG.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, private: bool = False) -> set[str]:
    """Absolute names of the defectlib modules ``path`` imports (relative imports resolved, imports
    inside functions included); ``private``: only the ``_names`` it takes from another module."""
    package = ".".join(path.relative_to(PKG.parent).parts[:-1])     # a module's or __init__'s package
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and not private:
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if private:
                out |= {f"{name}.{a.name}" for a in node.names if a.name.startswith("_")}
                continue
            out.add(name)
            out |= {f"{name}.{a.name}" for a in node.names}
    return {n for n in out if n.startswith("defectlib")}


def _graph() -> dict[str, set[str]]:
    """defectlib module -> the defectlib modules it imports (a package counts as its __init__; a
    module's own enclosing packages, which Python imports before it anyway, do not count)."""
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        graph[name] = {t for t in _imports(path) if t in files and t != name and not name.startswith(t + ".")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports in ``graph``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None
    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _room(module: str) -> str:
    """What the structure drawing shows as one room: a sub-package of defectlib, or a root module."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_the_import_resolver_sees_relative_and_absolute_imports():
    assert "defectlib.engine" in _imports(PKG / "experiments" / "ocinet" / "recipe.py")     # from ...engine
    assert "defectlib.metrics" in _imports(PKG / "experiments" / "ocinet" / "figures.py")   # from defectlib.metrics
    assert "defectlib.models.ocinet.ccim" in _imports(PKG / "models" / "ocinet" / "__init__.py")  # from .ccim


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_module_imports_itself_back():
    """No circle of imports between modules (function-level imports count: a circle held together
    by an import inside a function is still a circle)."""
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_no_arrow_runs_back_up_between_the_package_rooms():
    """Between the package's rooms (data, synth, engine, experiments, course, root modules...), the
    imports form layers: no circle at that level either."""
    rooms: dict[str, set[str]] = {}
    for src, targets in _graph().items():
        rooms.setdefault(_room(src), set()).update(_room(t) for t in targets if _room(t) != _room(src))
    assert _cycle(rooms) is None, " -> ".join(_cycle(rooms))


def test_no_module_takes_another_modules_private_names():
    bad = {f"{_module_name(p)} imports {name}" for p in PKG.rglob("*.py") for name in _imports(p, private=True)
           if not name.rsplit(".", 1)[0].startswith(_module_name(p))}
    assert not bad, sorted(bad)


def test_data_imports_neither_engine_nor_synth():
    bad = {f"{p.relative_to(PKG)} -> {n}" for p in (PKG / "data").rglob("*.py") for n in _imports(p)
           if n.split(".")[1:2] and n.split(".")[1] in ("engine", "synth", "experiments", "course", "models")}
    assert not bad, sorted(bad)


@pytest.mark.parametrize("path", sorted((PKG / "models").rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_models_import_no_data_engine_or_metrics(path):
    bad = {n for n in _imports(path)
           if n.split(".")[1:2] and n.split(".")[1] in ("data", "engine", "metrics", "experiments")}
    assert not bad, f"{path.relative_to(PKG)} imports {sorted(bad)}: models stay pure (README, Adding a paper)"


# --- one registry ----------------------------------------------------------------------------------
def experiment_modules() -> list:
    """Every package of defectlib.experiments that declares an ``EXPERIMENT``."""
    import defectlib.experiments as package
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"defectlib.experiments.{info.name}") if info.ispkg else None
        if module is not None and hasattr(module, "EXPERIMENT"):
            found.append(module)
    return found


def check_home(module, notebooks: Path = REPO / "notebooks") -> None:
    """A paper's home has the README's parts and a record the course can use."""
    home, record = Path(module.__file__).parent, module.EXPERIMENT
    missing = [part for part in ("data.py", "recipe.py", "results.py", "figures.py", "profile.py", "main.py",
                                 "__main__.py") if not (home / part).is_file()]
    assert not missing, f"{home.name}: no {missing} (README, Adding a paper)"
    assert module.__doc__.startswith(f"Notebook {record.number}"), module.__doc__[:40]
    assert callable(record.doctor_probes) and record.claims and record.datasets
    assert record.command == f"python -m {module.__name__}", record.command
    assert (notebooks / record.notebook).is_file(), record.notebook


def test_the_registry_holds_every_notebook_once():
    found = registry.experiments()
    notebooks = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(e.notebook for e in found.values()) == notebooks
    assert list(found) == sorted(found) and found["00"].paper is None
    assert {m.EXPERIMENT.number for m in experiment_modules()} == set(found)


@pytest.mark.parametrize("module", [m for m in experiment_modules() if m.EXPERIMENT.paper],
                         ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_paper_has_the_same_home(module):
    check_home(module)


def test_the_readme_course_table_lists_the_registry():
    text = (REPO / "README.md").read_text()
    table = text[text.index("## The course"):text.index("### Adding a paper")]
    linked = [line.split("](notebooks/")[1].split(")")[0] for line in table.splitlines() if line.startswith("| [")]
    assert linked == [e.notebook for e in registry.experiments().values()]
