"""Run folders and results folders: where runs go, finding one by name, reading it in either layout.

- a **run folder** ``runs/<UTC stamp>-<profile>/`` (written by :mod:`.run`): a combined
  ``results.json`` listing every notebook it ran, each with its own results;
- a **results folder** (the committed ``results/``): one ``NN_<name>/`` per notebook holding that
  notebook's own ``results.json`` (seed 0) and a ``seeds.json`` with every metric of every seed
  (written by :mod:`.seeds`); or one such notebook folder.

:func:`load_results` reads any of them into :class:`Results` (metrics per seed, with what each
notebook ran with), which :mod:`.reproduce` compares.
"""
from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from .formats import dataset_label, is_number

Key = tuple  # (notebook, metric name, dataset label)


def default_results_dir() -> Path:
    """The committed ``results/`` folder: what ``--check`` compares a run with by default."""
    root = paths.repo_root()
    return root / "results" if root else Path.cwd() / "results"


def default_notebooks_dir() -> Path:
    root = paths.repo_root()
    return root / "notebooks" if root else Path.cwd() / "notebooks"


def default_out_dir() -> Path:
    root = paths.repo_root()
    return root / "runs" if root else Path.cwd() / "runs"


def resolve_run(run: str | Path, runs_dir: Path | None = None) -> Path:
    """A run folder from a path, a folder name under ``runs/``, or ``latest``."""
    runs_dir = Path(runs_dir) if runs_dir else default_out_dir()
    candidates = [Path(run), runs_dir / str(run)]
    if str(run) == "latest":
        done = [p for p in runs_dir.glob("*/results.json")] if runs_dir.is_dir() else []
        if not done:
            raise FileNotFoundError(f"no runs with a results.json under {runs_dir}")
        return max(done, key=lambda p: (p.stat().st_mtime, p.parent.name)).parent
    for c in candidates:
        if (c / "results.json").is_file():
            return c
    raise FileNotFoundError(f"{run}: not a run folder (no results.json in {candidates[0]} "
                            f"or {candidates[1]})")


def load_run(run_dir: Path) -> dict:
    path = Path(run_dir) / "results.json"
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


@dataclass
class Results:
    """The metrics of a run or of a results folder, per seed, with what each notebook ran with."""
    name: str
    layout: str                                                  # "run", "committed" or "notebook"
    values: dict[Key, dict[Any, Any]] = field(default_factory=dict)  # key -> {seed: value}
    units: dict[Key, str] = field(default_factory=dict)
    seeds: dict[str, list] = field(default_factory=dict)         # notebook -> seeds it was run with
    ran: dict[str, set] = field(default_factory=dict)            # notebook -> seeds that recorded
    settings: dict[str, dict] = field(default_factory=dict)      # notebook -> its own results.json
    meta: dict = field(default_factory=dict)                     # a run's combined results.json

    def spread(self, key: Key) -> dict | None:
        """mean, min, max, sample sd and n of a numeric metric over the seeds; None for fewer
        than 2."""
        vals = [v for v in self.values.get(key, {}).values() if is_number(v)]
        if len(vals) < 2:
            return None
        return {"mean": statistics.fmean(vals), "min": min(vals), "max": max(vals),
                "sd": statistics.stdev(vals), "n": len(vals)}

    def all_seeds(self) -> list:
        return sorted({s for seeds in self.seeds.values() for s in seeds if s is not None})


# --- loading either layout ------------------------------------------------------------------------
def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _seed(value, path: Path):
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: seed {value!r} is not an integer") from None


def _add_metrics(res: Results, nb: str, seed, metrics, path: Path) -> None:
    if not isinstance(metrics, list):
        raise ValueError(f"{path}: 'metrics' must be a list, found {type(metrics).__name__}")
    for i, m in enumerate(metrics):
        if not isinstance(m, dict) or "name" not in m or "value" not in m:
            raise ValueError(f"{path}: metric #{i} needs a 'name' and a 'value', found {m!r}")
        key = (nb, m["name"], dataset_label(m))
        res.values.setdefault(key, {})[seed] = m["value"]
        res.units.setdefault(key, m.get("unit") or "")
    res.ran.setdefault(nb, set()).add(seed)


def _add_notebook_dir(res: Results, folder: Path) -> None:
    """One notebook's folder: its ``results.json`` (one seed) and/or ``seeds.json`` (every seed)."""
    own_path, seeds_path = folder / "results.json", folder / "seeds.json"
    if not own_path.is_file() and not seeds_path.is_file():
        raise FileNotFoundError(f"{folder}: neither results.json nor seeds.json")
    nb, own = folder.name, None
    if own_path.is_file():
        own = _read(own_path)
        if "metrics" not in own:
            raise ValueError(f"{own_path}: not a notebook's results.json (no 'metrics')")
        nb = own.get("notebook") or nb
        res.settings[nb] = own
    seeds: list = []
    if seeds_path.is_file():
        spread = _read(seeds_path)
        if not isinstance(spread.get("rows"), list):
            raise ValueError(f"{seeds_path}: not a seeds.json (no list of 'rows')")
        seeds = [_seed(s, seeds_path) for s in spread.get("seeds", [])]
        for i, row in enumerate(spread["rows"]):
            if not isinstance(row, dict) or "name" not in row or not isinstance(row.get("values"),
                                                                                   dict):
                raise ValueError(f"{seeds_path}: row #{i} needs a 'name' and a 'values' dict")
            key = (row.get("notebook") or nb, row["name"], row.get("dataset") or "-")
            for s, v in row["values"].items():
                res.values.setdefault(key, {})[_seed(s, seeds_path)] = v
                res.ran.setdefault(key[0], set()).add(_seed(s, seeds_path))
            res.units.setdefault(key, row.get("unit") or "")
    if own is not None:  # the notebook's own results.json wins for its seed
        seed = _seed(own.get("seed"), own_path)
        _add_metrics(res, nb, seed, own["metrics"], own_path)
        seeds.append(seed)
    res.seeds[nb] = sorted(set(seeds), key=lambda s: (s is None, s or 0))


def from_run(results: dict, name: str | None = None, path: Path | None = None) -> Results:
    """A run's combined ``results.json`` (already loaded)."""
    where = path or "results.json"
    if not isinstance(results.get("notebooks"), list):
        raise ValueError(f"{where}: not a run's results.json (no list of 'notebooks')")
    res = Results(name or results.get("run") or "?", "run", meta=results)
    for i, nb in enumerate(results["notebooks"]):
        if not isinstance(nb, dict) or "notebook" not in nb:
            raise ValueError(f"{where}: notebooks[{i}] has no 'notebook' name")
        source = nb.get("source") or re.sub(r"-seed\d+$", "", nb["notebook"])
        own = nb.get("results")
        seed = nb.get("seed")
        if seed is None:  # runs written before the runner stored each notebook's seed
            seed = (own or {}).get("seed")
        if seed is None and not isinstance(results.get("seed"), list):
            seed = results.get("seed")
        seed = _seed(seed, Path(str(where)))
        res.seeds.setdefault(source, []).append(seed)
        if isinstance(own, dict):
            res.settings.setdefault(source, own)
            _add_metrics(res, source, seed, own.get("metrics", []), Path(str(where)))
    return res


def layout(path: Path) -> str | None:
    """``run``, ``notebook`` or ``committed`` for a folder holding results; None otherwise."""
    path = Path(path)
    if (path / "results.json").is_file():
        return "notebook" if not _is_run(path / "results.json") else "run"
    if (path / "seeds.json").is_file():
        return "notebook"
    if path.is_dir() and any((p / "results.json").is_file() or (p / "seeds.json").is_file()
                             for p in path.iterdir() if p.is_dir()):
        return "committed"
    return None


def _is_run(path: Path) -> bool:
    data = _read(path)
    if "notebooks" not in data and "metrics" not in data:
        raise ValueError(f"{path}: neither a run's combined results.json (no 'notebooks') nor a "
                         "notebook's own (no 'metrics')")
    return "notebooks" in data


def resolve(ref: str | Path, runs_dir: Path | None = None) -> Path:
    """A reference folder from a path (results folder, notebook folder or run), a run name under
    ``runs/``, or ``latest``."""
    if str(ref) != "latest" and layout(Path(ref)):
        return Path(ref)
    try:
        return resolve_run(ref, runs_dir)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{ref}: not a results folder (no results.json or seeds.json in it, nor in a "
            f"subfolder) and not a run's name under the runs folder") from None


def load_results(path: str | Path) -> Results:
    """Load a reference or a run folder in whichever layout it has (see the module docstring)."""
    path = Path(path)
    kind = layout(path)
    if kind is None:
        raise FileNotFoundError(f"{path}: no results.json or seeds.json in it or in its subfolders")
    if kind == "run":
        return from_run(_read(path / "results.json"), path.name, path / "results.json")
    res = Results(path.resolve().name, kind)
    folders = [path] if kind == "notebook" else sorted(
        p for p in path.iterdir() if p.is_dir() and layout(p) == "notebook")
    if not folders:
        raise FileNotFoundError(f"{path}: its subfolders hold runs, not notebook results; "
                                "pass one run folder")
    for folder in folders:
        _add_notebook_dir(res, folder)
    return res
