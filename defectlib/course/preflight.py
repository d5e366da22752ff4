"""What ``defectlib run`` checks before any notebook starts: the output folder and the data.

- ``--out`` must be a folder this process can create files in; otherwise the run stops with one
  line naming the folder and the reason (not a traceback after the first notebook).
- With ``--data-root``, each notebook's datasets (its experiment's record, or the notebook's own
  ``metadata.defectlib.datasets``) are looked up there as :func:`defectlib.synth.locate` would. A
  dataset that is not there is replaced by its generated stand-in, so a wrong ``--data-root`` used
  to pass unnoticed: the runner now names the missing datasets in the notebook's progress line and
  in ``report.md``, and ``--require-real`` makes them an error before anything runs.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

def _record(path: str | os.PathLike):
    """The registered experiment of notebook ``path`` (by its number), or None."""
    from ..experiments.registry import experiment
    try:
        return experiment(Path(path).name[:2])
    except KeyError:
        return None


def notebook_substitutes(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """Datasets notebook ``path`` replaces by other *real* data when they are absent (its
    experiment's ``substitutes``: notebook 02 trains on NEU-Seg and MTD in place of Severstal,
    notebook 03 tests on them in place of NRSD-MN): with those present no stand-in is used."""
    record = _record(path)
    return dict(record.substitutes) if record is not None else {}


def check_out_dir(out: str | os.PathLike) -> Path:
    """Create ``out`` (with parents) and prove a file can be written in it; ValueError naming
    ``--out`` and the reason otherwise (a file in the way, no permission, read-only disk)."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return out


def notebook_datasets(path: str | os.PathLike) -> tuple[str, ...]:
    """The datasets notebook ``path`` reads: ``metadata.defectlib.datasets`` if the notebook says,
    else its experiment's ``datasets`` (:mod:`defectlib.experiments.registry`), else none known."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text()).get("metadata", {})
    except (OSError, ValueError):
        meta = {}
    own = (meta.get("defectlib") or {}).get("datasets")
    if own is not None:
        return tuple(own)
    record = _record(path)
    return tuple(record.datasets) if record is not None else ()


def _present(root: Path, name: str) -> bool:
    """``<root>/<name>`` is a non-empty folder; ValueError when the dataset's layout sits one
    folder too deep there (``neu-det/neu-det/IMAGES``): the notebook's loader would fail on it."""
    from ..synth.standins import layout_problem
    p = root / name
    problem = layout_problem(name, p, nested_only=True) if p.is_dir() else None
    if problem:
        raise ValueError(f"--data-root {root}: {problem}")
    return p.is_dir() and any(p.iterdir())


def missing_datasets(names, data_root: str | os.PathLike | None,
                     substitutes: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Which of ``names`` have no non-empty ``<data_root>/<name>`` folder (what ``locate`` calls
    real data) and no real ``substitutes`` all present (see :func:`notebook_substitutes`): the
    ones that will run on a generated stand-in. ``[]`` without a data root, where stand-ins are
    the documented default."""
    if not data_root:
        return []
    root = Path(data_root).expanduser()
    subs = substitutes or {}
    return [n for n in names if not _present(root, n)
            and not (n in subs and all(_present(root, s) for s in subs[n]))]


def substituted(names, data_root: str | os.PathLike | None,
                substitutes: dict[str, tuple[str, ...]] | None = None) -> dict[str, tuple[str, ...]]:
    """Which of ``names`` are absent from ``data_root`` but replaced by real data: name -> the
    real datasets in its place."""
    if not data_root or not substitutes:
        return {}
    root = Path(data_root).expanduser()
    return {n: substitutes[n] for n in names if n in substitutes and not _present(root, n)
            and all(_present(root, s) for s in substitutes[n])}


def require_real(jobs_missing: dict[str, list[str]], data_root) -> None:
    """ValueError listing every notebook whose datasets are not all under ``data_root``."""
    bad = {nb: miss for nb, miss in jobs_missing.items() if miss}
    if not data_root:
        raise ValueError("--require-real needs --data-root DIR (the folder holding neu-det/, neu-seg/, ...)")
    if bad:
        listing = "; ".join(f"{nb}: {', '.join(miss)}" for nb, miss in bad.items())
        raise ValueError(f"--require-real: not in --data-root {data_root}: {listing} "
                         "(these would run on generated stand-ins)")
