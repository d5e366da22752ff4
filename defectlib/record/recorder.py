"""Recording what a notebook measured, so notebooks never hand-write JSON.

A notebook creates one :class:`Recorder` from its parameters, calls :meth:`Recorder.metric` for every
number it reports and :meth:`Recorder.figure` for every plot worth keeping, and :meth:`Recorder.save`
at the end. The runner collects each notebook's ``results.json`` into the run's combined
``results.json`` and ``report.md`` (see :mod:`defectlib.course.report`), where every metric that names a
``paper`` key is put beside the paper's own number from :mod:`defectlib.papers`; in the notebook,
:func:`defectlib.record.tables.results` lays them out beside the paper's table.
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from importlib import metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..paths import PACKAGE_DIR
from ..runtime import machine

LIBRARIES = ("torch", "torchvision", "timm", "numpy", "scipy", "papermill", "defectlib")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_DIR,
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return res.stdout.strip() + ("-dirty" if dirty else "")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, Mapping):          # dicts, and the profiles' frozen settings
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class Recorder:
    """Collects a notebook's metrics, timings and figures and writes ``<output_dir>/results.json``.

    >>> rec = Recorder(output_dir, notebook="01_danet_neu_det", profile="cpu", config=cfg,
    ...                seed=0, device="cpu")
    >>> rec.metric("phase5/AP50/crazing", 41.2, paper="danet/table3/phase5/crazing",
    ...            dataset="NEU-DET", real=True, unit="%")
    >>> rec.figure(fig, "pr_curves")
    >>> rec.save()
    """

    def __init__(self, output_dir: str | Path | None, notebook: str, profile: str,
                 config: dict | None = None, seed: int | None = None, device: Any = None,
                 data_root: str | Path | None = None):
        self.output_dir = Path(output_dir) if output_dir else None
        self.notebook = notebook
        self.started = time.time()
        self.data = {
            "notebook": notebook,
            "profile": profile,
            # the settings, less the run's own checkpoint folder (beside this file: <output_dir>/checkpoints)
            "config": _jsonable({k: v for k, v in dict(config or {}).items() if k != "checkpoint_dir"}),
            "seed": seed,
            "device": str(device) if device is not None else None,
            "data_root": str(data_root) if data_root else None,
            "git_commit": git_commit(),
            "versions": library_versions(),
            "machine": machine(),      # refreshed by save(): the thread count the work ran with
            "command": " ".join(sys.argv[:1]),
            "metrics": [],
            "timings": {},
            "figures": [],
            "notes": [],
        }

    def metric(self, name: str, value: float, *, paper: str | None = None, dataset: str,
               real: bool, unit: str = "", note: str = "") -> float:
        """Record one number. ``paper`` is a key into :data:`defectlib.papers.TABLES` (or None);
        ``dataset`` names what produced it and ``real`` says whether that data is real or a
        generated stand-in. Returns ``value`` so it can be used inline. An unknown ``paper`` key
        raises KeyError at once, naming the nearest keys."""
        if paper is not None:
            from .. import papers
            paper = papers.canonical(paper)
            papers.ref(paper)
        self.data["metrics"].append({"name": name, "value": _jsonable(value), "paper": paper,
                                     "dataset": dataset, "real": bool(real), "unit": unit,
                                     "note": note})
        return value

    def metrics(self, values: Mapping[str, float], *, prefix: str = "",
                paper: Mapping[str, str | None] | None = None, dataset: str, real: bool,
                unit: str = "", note: str | Mapping[str, str] = "") -> None:
        """Record a group of numbers in one call: ``<prefix>/<name>`` for each ``name`` of
        ``values`` (in its order), the paper key ``paper[name]`` where given, ``note`` one text
        for all or one per name.

        >>> rec.metrics({"AP50/crazing": 41.2, "mAP50": 60.3}, prefix="phase5", dataset="NEU-DET",
        ...             real=True, unit="%", paper={"mAP50": "danet/table3/phase5/mAP"})
        """
        paper = paper or {}
        for name, value in values.items():
            self.metric(f"{prefix}/{name}" if prefix else name, value, paper=paper.get(name),
                        dataset=dataset, real=real, unit=unit,
                        note=note.get(name, "") if isinstance(note, Mapping) else note)

    def timing(self, name: str, seconds: float) -> None:
        self.data["timings"][name] = float(seconds)

    def note(self, text: str) -> None:
        self.data["notes"].append(text)

    def figure(self, fig, name: str, dpi: int = 110) -> Path | None:
        """Save a matplotlib figure as ``<output_dir>/figures/<name>.png`` and list it."""
        if self.output_dir is None:
            return None
        path = self.output_dir / "figures" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        self.data["figures"].append(str(path.relative_to(self.output_dir)))
        return path

    def save(self) -> Path | None:
        """Write ``results.json`` (total wall time included) and return its path."""
        self.data["timings"]["notebook_total_s"] = time.time() - self.started
        self.data["machine"] = machine()
        if self.output_dir is None:
            return None
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / "results.json"
        path.write_text(json.dumps(self.data, indent=2))
        return path
