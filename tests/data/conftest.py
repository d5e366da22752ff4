"""Fixtures for the data-layer tests: stand-ins written once per session into a temp folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from defectlib.synth import write_standin

SMALL = {
    "neu-det": dict(per_class=6),
    "severstal": dict(n_images=8),
    "nrsd-mn": dict(n_train=6, n_test_man_made=3, n_test_natural=3, size=(96, 96)),
    "neu-seg": dict(n_training=6, n_test=4),
    "mtd": dict(n_free=4, per_defect_class=2),
}


@pytest.fixture(scope="session")
def standins(tmp_path_factory) -> dict[str, Path]:
    """Small stand-ins of all five datasets (read-only: copy before damaging one)."""
    root = tmp_path_factory.mktemp("standins")
    return {name: write_standin(name, root / name, **kw) for name, kw in SMALL.items()}


@pytest.fixture
def copy_of(standins, tmp_path):
    """``copy_of("neu-det")`` -> a private copy you may break."""
    def make(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(standins[name], dst)
        return dst
    return make
