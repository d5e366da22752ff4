"""``locate(name)``: the real dataset folder when the user has one, else the generated stand-in.

Real data: ``<data_root>/<name>`` (``data_root`` argument, else ``$DEFECTLIB_DATA``). Otherwise the
stand-in is written once to ``default_data_dir()/standins/<name>`` (git-ignored) and reused.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from ..paths import default_data_dir, real_data_root

from ..data.errors import DatasetNotFoundError
from .writers import STANDIN_VERSION, STANDINS, write_standin

NAMES = ("neu-det", "neu-seg", "mtd", "severstal", "nrsd-mn")

#: what each loader needs to find in ``<data_root>/<name>`` (data/README.md)
LAYOUTS = {
    "neu-det": "IMAGES/ + ANNOTATIONS/, or train|validation/{images,annotations}/",
    "neu-seg": "images/{training,test}/ + annotations/{training,test}/",
    "mtd": "MT_<class>/Imgs/ folders",
    "severstal": "train.csv + train_images/",
    "nrsd-mn": "2086/{img,gt}/ (or train/{img,gt}/ ...)",
}


def _has_layout(name: str, path: Path) -> bool:
    """Whether ``path`` holds what ``name``'s loader looks for."""
    if name == "neu-det":
        return ((path / "IMAGES").is_dir() and (path / "ANNOTATIONS").is_dir()) or any(
            (path / s / "images").is_dir() and (path / s / "annotations").is_dir()
            for s in ("train", "validation", "val", "test"))
    if name == "neu-seg":
        return any((path / "images" / s).is_dir() and (path / "annotations" / s).is_dir()
                   for s in ("training", "test"))
    if name == "mtd":
        return any(p.is_dir() and p.name.startswith("MT_") and (p / "Imgs").is_dir() for p in path.iterdir())
    if name == "severstal":
        return (path / "train.csv").is_file() and (path / "train_images").is_dir()
    if name == "nrsd-mn":
        from ..data.nrsd_mn import SPLITS, split_dirs
        for split in SPLITS:
            try:
                split_dirs(path, split)
                return True
            except DatasetNotFoundError:
                continue
        return False
    return True  # a dataset without a known layout: any non-empty folder


def layout_problem(name: str, path: str | os.PathLike, nested_only: bool = False) -> str | None:
    """None when ``path`` is in ``name``'s layout (what its loader reads), else one sentence
    saying what was expected and, when the layout sits one folder down (``neu-det/neu-det/``),
    where it is. ``nested_only=True`` reports only that case (a folder in no layout at all is
    then left to the loader)."""
    path = Path(path)
    if name not in LAYOUTS or not path.is_dir() or _has_layout(name, path):
        return None
    nested = [p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")
              and _has_layout(name, p)]
    if nested:
        return (f"{path} is not in {name}'s layout ({LAYOUTS[name]}): it is one folder down, in "
                f"{nested[0]}; move its content up (or point the data root at a folder whose {name}/ "
                "holds the layout itself)")
    if nested_only:
        return None
    return f"{path} is not in {name}'s layout: expected {LAYOUTS[name]} (see data/README.md)"


def standin_dir(name: str) -> Path:
    return default_data_dir() / "standins" / name


def locate(name: str, data_root: str | os.PathLike | None = None, standin: bool = False,
           **standin_kwargs) -> tuple[Path, bool]:
    """Return ``(path, real)`` for dataset ``name``.

    ``real`` is True when ``<data_root>/<name>`` exists and is not empty. Otherwise the stand-in is
    generated (first call only; ``standin_kwargs`` go to its writer, and each distinct set of them
    gets its own folder ``<name>-<hash>``) and returned with ``real=False``. Every name in :data:`NAMES` has a stand-in. ``standin=True``
    skips the real look-up (to show a stand-in beside the real data). An explicit ``data_root``
    that is not a folder is a DatasetNotFoundError: a typo must not quietly mean "stand-ins";
    so is a real folder that is not in the dataset's layout (:func:`layout_problem`), e.g. one
    folder too deep: the error says where the layout is, before any loader runs.
    """
    root = None if standin else real_data_root(data_root)
    if data_root is not None and not standin and not root.is_dir():
        raise DatasetNotFoundError(root, f"data_root for {name!r} is not a folder (give the folder that "
                                         f"holds {name}/, or no data_root for the generated stand-in)")
    if root is not None:
        path = root / name
        if path.is_dir() and any(path.iterdir()):
            problem = layout_problem(name, path)
            if problem:
                raise DatasetNotFoundError(None, problem)
            return path, True
    if name not in STANDINS:
        where = root / name if root is not None else f"<data_root>/{name} (or set DEFECTLIB_DATA)"
        raise DatasetNotFoundError(where, f"real {name} data not found and no stand-in exists for it; "
                                          "see data/README.md for the layout")
    wanted = {k: (list(v) if isinstance(v, tuple) else v) for k, v in standin_kwargs.items()}
    path = standin_dir(name)
    if wanted:  # each size gets its own folder, so notebooks asking for different sizes coexist
        digest = hashlib.sha1(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:8]
        path = path.with_name(f"{path.name}-{digest}")
    if _is_current(path, wanted, STANDIN_VERSION):
        return path, False
    # Write into a private folder, then rename it into place: two notebooks that ask for the same
    # stand-in at once never see each other's half-written files, and a reader is never deleted under.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    write_standin(name, tmp, **standin_kwargs)
    info_file = tmp / "STANDIN.json"
    info = json.loads(info_file.read_text())
    info["kwargs"] = wanted
    info_file.write_text(json.dumps(info, indent=1))
    if path.exists() and not _is_current(path, wanted, STANDIN_VERSION):  # an older generator's
        stale = path.with_name(f".{path.name}.stale-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        try:
            os.rename(path, stale)
            shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass
    try:
        os.rename(tmp, path)
    except OSError:  # another process put a complete copy there first: use it
        shutil.rmtree(tmp, ignore_errors=True)
        if not _is_current(path, wanted, STANDIN_VERSION):
            raise
    return path, False


def _is_current(path: Path, wanted: dict, version) -> bool:
    info_file = path / "STANDIN.json"
    if not info_file.is_file():
        return False
    info = json.loads(info_file.read_text())
    return info.get("kwargs", {}) == wanted and info.get("version") == version
