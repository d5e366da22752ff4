"""Profiles: the one place that says what ``smoke``, ``cpu`` and ``paper`` mean for each notebook.

- ``smoke``: seconds. Plumbing on tiny generated data; every code path runs, no number means much.
- ``cpu``:   a real, reduced-scale experiment that ends in about 30 minutes on 2 CPU cores.
- ``paper``: the paper's own hyperparameters, for GPU users.

``get(notebook, profile, dry_run=True)`` turns any profile into a dry run: the same configuration,
stopped after 2 optimizer steps and one evaluation batch, so a GPU user learns at once whether the
full run will start. Notebooks read their sizes from here; they never hard-code their own.
"""
from __future__ import annotations

import copy
from typing import Any

PROFILE_NAMES = ("smoke", "cpu", "paper")


class Config(dict):
    """A dict whose keys are also attributes (``cfg.epochs`` == ``cfg["epochs"]``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(f"profile has no setting {name!r}; it has {sorted(self)}") from exc

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


# Settings every profile of every notebook has; notebook tables below override them.
_COMMON = {"max_steps": None, "max_eval_batches": None, "dry_run": False, "num_workers": 0}

# --- 00 getting started --------------------------------------------------------------------------
NB00 = {
    "smoke": {"samples_per_dataset": 2},
    "cpu": {"samples_per_dataset": 4},
    "paper": {"samples_per_dataset": 4},
}

# --- 01 DANet on NEU-DET (paper 000) -------------------------------------------------------------
NB01: dict[str, dict] = {"smoke": {}, "cpu": {}, "paper": {}}

# --- 02 Severstal two-stage (paper 001) ----------------------------------------------------------
NB02: dict[str, dict] = {"smoke": {}, "cpu": {}, "paper": {}}

# --- 03 OCINet on NRSD-MN (paper 003) ------------------------------------------------------------
NB03: dict[str, dict] = {"smoke": {}, "cpu": {}, "paper": {}}

# --- 04 Synthetic data (paper 004) ---------------------------------------------------------------
NB04: dict[str, dict] = {"smoke": {}, "cpu": {}, "paper": {}}

TABLES = {"00": NB00, "01": NB01, "02": NB02, "03": NB03, "04": NB04}


def get(notebook: str, profile: str, dry_run: bool = False) -> Config:
    """The configuration of ``notebook`` (``"01"`` or ``"01_danet_neu_det"``) under ``profile``."""
    key = str(notebook)[:2]
    if key not in TABLES:
        raise KeyError(f"no profiles for notebook {notebook!r}; known: {sorted(TABLES)}")
    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILE_NAMES}")
    cfg = Config(copy.deepcopy(_COMMON))
    cfg.update(copy.deepcopy(TABLES[key][profile]))
    cfg["profile"] = profile
    if dry_run:
        cfg.update(dry_run=True, max_steps=2, max_eval_batches=1)
    return cfg
