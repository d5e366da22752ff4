"""Notebook 00, getting started: the map of the course (every dataset real beside its stand-in, the
profiles, the reports). It trains nothing, so its experiment is its record and its profile."""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import Experiment, Profile, three


@dataclass(frozen=True)
class GettingStartedProfile(Profile):
    samples_per_dataset: int = 4


PROFILES = three(GettingStartedProfile(), {}, {"samples_per_dataset": 2})

EXPERIMENT = Experiment(
    number="00", title="getting started: the map (data, profiles, reports)",
    notebook="00_getting_started.ipynb", profiles=PROFILES,
    datasets=("neu-det", "neu-seg", "mtd", "severstal", "nrsd-mn"))
