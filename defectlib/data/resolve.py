"""``locate(name)``: the real dataset folder when the user has one, else the generated stand-in.

Real data: ``<data_root>/<name>`` (``data_root`` argument, else ``$DEFECTLIB_DATA``). Otherwise the
stand-in is written once to ``default_data_dir()/standins/<name>`` (git-ignored) and reused.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from defectlib.paths import default_data_dir, real_data_root

from .errors import DatasetNotFoundError

NAMES = ("neu-det", "neu-seg", "mtd", "severstal", "nrsd-mn")


def standin_dir(name: str) -> Path:
    return default_data_dir() / "standins" / name


def locate(name: str, data_root: str | os.PathLike | None = None, standin: bool = False,
           **standin_kwargs) -> tuple[Path, bool]:
    """Return ``(path, real)`` for dataset ``name``.

    ``real`` is True when ``<data_root>/<name>`` exists and is not empty. Otherwise the stand-in is
    generated (first call only; ``standin_kwargs`` go to its writer and a change regenerates it) and
    returned with ``real=False``. Every name in :data:`NAMES` has a stand-in. ``standin=True``
    skips the real look-up (to show a stand-in beside the real data).
    """
    from defectlib.synth.writers import STANDIN_VERSION, STANDINS, write_standin

    root = None if standin else real_data_root(data_root)
    if root is not None:
        path = root / name
        if path.is_dir() and any(path.iterdir()):
            return path, True
    if name not in STANDINS:
        where = root / name if root is not None else f"<data_root>/{name} (or set DEFECTLIB_DATA)"
        raise DatasetNotFoundError(where, f"real {name} data not found and no stand-in exists for it; "
                                          "see data/README.md for the layout")
    path = standin_dir(name)
    info_file = path / "STANDIN.json"
    wanted = {k: (list(v) if isinstance(v, tuple) else v) for k, v in standin_kwargs.items()}
    if info_file.is_file():
        info = json.loads(info_file.read_text())
        if info.get("kwargs", {}) == wanted and info.get("version") == STANDIN_VERSION:
            return path, False
    write_standin(name, path, **standin_kwargs)
    info = json.loads(info_file.read_text())
    info["kwargs"] = wanted
    info_file.write_text(json.dumps(info, indent=1))
    return path, False
