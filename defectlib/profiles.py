"""Profiles: what ``smoke``, ``cpu`` and ``paper`` mean for each notebook.

- ``smoke``: seconds. Plumbing on tiny generated data; every code path runs, no number means much.
- ``cpu``:   a real, reduced-scale experiment that ends in about 30 minutes on 2 CPU cores.
- ``paper``: the paper's own hyperparameters, for GPU users.

Each notebook has one frozen dataclass of settings (:class:`DANetProfile`, :class:`SeverstalProfile`,
:class:`OCINetProfile`, :class:`SyntheticProfile`, :class:`GettingStartedProfile`), declared with its
experiment (``defectlib/experiments/<name>/profile.py``) and found through the course's registry
(:mod:`defectlib.experiments.registry`); its defaults are the ``paper`` profile, and ``cpu`` and
``smoke`` are derived from it with :meth:`Settings.replace`,
which (like the constructor) refuses a setting the notebook does not have and lists the ones it
does: a misspelt key is an error, not a silent default. Settings are read as attributes
(``cfg.epochs``; a profile is also a mapping, so ``dict(cfg)`` and the tables list it), and never
change: change a setting with ``cfg = cfg.replace(epochs=3)``. What a trained model gets from its
profile is one call, :func:`defectlib.experiments.registry.train_config` (the profile's
``training(model)``, then what the run decides).

Every profile fixes the number of optimizer steps, the data seen and the evaluation set from the
profile and the seed alone, never from wall time: the same seed gives the same numbers on the same
machine however busy it is. No profile sets a thread count: a notebook alone uses every core, and
``defectlib run --jobs N`` gives each of N notebooks its share. ``precision="auto"`` (see
:mod:`defectlib.engine.precision`) is bf16 autocast on CPUs with native bf16 and mixed precision on
GPUs; ``num_workers`` / ``pin_memory`` feed a GPU in the ``paper`` profiles.

``get(notebook, profile, dry_run=True)`` turns any profile into a dry run: the same configuration,
stopped after 2 optimizer steps and one evaluation batch, so a GPU user learns at once whether the
full run will start. Notebooks read their sizes from here; they never hard-code their own.
"""
from __future__ import annotations

from .experiments.danet.profile import DANetProfile
from .experiments.getting_started import GettingStartedProfile
from .experiments.ocinet.profile import OCINetProfile
from .experiments.registry import PROFILE_NAMES, Profile, Settings, experiments
from .experiments.registry import profile as get
from .experiments.registry import profile_table as table
from .experiments.severstal.profile import SeverstalProfile
from .experiments.synthetic.profile import StudyProfile, SyntheticProfile

__all__ = ["PROFILE_NAMES", "Profile", "Settings", "get", "table", "DANetProfile",
           "GettingStartedProfile", "OCINetProfile", "SeverstalProfile", "StudyProfile", "SyntheticProfile"]


def __getattr__(name: str):
    if name == "TABLES":  # {"01": {"smoke": ..., "cpu": ..., "paper": ...}, ...}, from the registry
        return {number: e.profiles for number, e in experiments().items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
