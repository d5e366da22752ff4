"""Where things live: the repository root, the embedded-default data folder and the run folders.

Data flows one way (parameters -> profile -> dataset + builder -> engine -> metrics -> record ->
report); this module only answers "where", it never reads or writes data itself.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path | None:
    """The course checkout that holds this package (editable install), or None for a wheel install."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() else None


def default_data_dir() -> Path:
    """Folder for generated stand-ins: ``<repo>/data`` in a checkout, else ``~/.cache/defectlib``.

    ``DEFECTLIB_CACHE`` overrides both. The folder is git-ignored; nothing in it is committed.
    """
    if os.environ.get("DEFECTLIB_CACHE"):
        return Path(os.environ["DEFECTLIB_CACHE"]).expanduser()
    root = repo_root()
    return root / "data" if root else Path.home() / ".cache" / "defectlib"


def real_data_root(data_root: str | os.PathLike | None = None) -> Path | None:
    """The folder holding real datasets (``neu-det/``, ``neu-seg/``, ``mtd/``, ``severstal/`` ...).

    An explicit ``data_root`` wins; otherwise ``$DEFECTLIB_DATA`` (used by tests and CI); otherwise
    None, meaning "use the generated stand-ins". Notebooks pass their ``data_root`` parameter
    explicitly and the runner passes None unless ``--data-root`` is given, so ``make run`` always
    uses the embedded default.
    """
    if data_root is not None:
        return Path(data_root).expanduser()
    env = os.environ.get("DEFECTLIB_DATA")
    return Path(env).expanduser() if env else None
