"""The course's one registry: every notebook's experiment, as its own package declares it.

Each ``defectlib/experiments/<name>/__init__.py`` ends with one :class:`Experiment` record,
``EXPERIMENT = Experiment(...)``: the notebook's number, title and file, its three profiles, the
datasets it reads (and the real ones that stand in for a missing one), the paper's claims its
verdicts judge, the models ``defectlib doctor`` measures and its command. Everything that names the
notebooks reads them here (:func:`experiments`): :mod:`defectlib.profiles`, the doctor, the pre-run
checks, the seed verdicts, the runner and the tests. Adding a paper is adding a package.

Profiles (the settings every experiment reads):

- ``smoke``: seconds. Plumbing on tiny generated data; every code path runs, no number means much.
- ``cpu``:   a real, reduced-scale experiment that ends in about 30 minutes on 2 CPU cores.
- ``paper``: the paper's own hyperparameters, for GPU users.

Each notebook has one frozen dataclass of settings (a :class:`Profile`); its defaults are the
``paper`` profile, and ``cpu`` and ``smoke`` are derived from it with :meth:`Settings.replace`,
which (like the constructor) refuses a setting the notebook does not have and lists the ones it
does: a misspelt key is an error, not a silent default. A profile never changes: change a setting
with ``cfg = cfg.replace(epochs=3)``.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

PROFILE_NAMES = ("smoke", "cpu", "paper")


class Settings(Mapping):
    """Frozen settings, read as attributes or as a mapping; :meth:`replace` makes a changed copy."""

    def _names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self)]

    def _unknown(self, names) -> str:
        return f"{type(self).__name__} has no setting {', '.join(map(repr, names))}; it has {sorted(self._names())}"

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(self._unknown([key]))
        return getattr(self, key)

    def __iter__(self):
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __getattr__(self, name: str) -> Any:  # only for names that are not settings
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(self._unknown([name]))

    def replace(self, **changes: Any) -> "Settings":
        """A copy with ``changes``; a name that is not a setting is a KeyError listing the settings."""
        unknown = sorted(set(changes) - set(self._names()))
        if unknown:
            raise KeyError(self._unknown(unknown))
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (nested settings as dicts), e.g. for JSON."""
        return {k: v.to_dict() if isinstance(v, Settings) else v for k, v in self.items()}

    def training(self, model: str | None = None) -> dict[str, Any]:
        """The engine's :class:`~defectlib.engine.TrainConfig` fields these settings give the trained
        ``model`` (a notebook that trains several names them), under the engine's names. Read
        through :func:`train_config`, the one road from a profile to the engine."""
        raise NotImplementedError(f"{type(self).__name__} trains nothing")


@dataclass(frozen=True)
class Profile(Settings):
    """What every profile of every notebook has."""
    profile: str = "paper"
    max_steps: int | None = None             # dry runs: optimizer steps per training run
    max_eval_batches: int | None = None      # dry runs: evaluation batches
    dry_run: bool = False
    num_workers: int = 0                     # data-loader worker processes
    pin_memory: bool = False
    precision: str = "fp32"                  # engine numerics: fp32 | bf16 | fp16 | auto
    channels_last: bool = False
    sync_bn: bool = False                    # under torchrun on GPUs: BatchNorm over the global batch
    # checkpoints (see :func:`checkpointing`): every trained model writes ``last.pt`` every
    # ``checkpoint_every`` epochs (0: never) into ``<checkpoint_dir>/<its name>/``; the run decides
    # the folder (the runner: ``<run>/<notebook>/checkpoints``) and whether to ``resume`` from it
    checkpoint_every: int = 0
    checkpoint_dir: str | None = None
    resume: bool = False

    def numerics(self) -> dict[str, Any]:
        """The TrainConfig fields every profile sets the same way: numerics, SyncBN, a dry run's cut."""
        return {"precision": self.precision, "channels_last": self.channels_last, "sync_bn": self.sync_bn,
                "max_steps": self.max_steps, "max_eval_batches": self.max_eval_batches}


# what the paper profiles add for a GPU: mixed precision, loader workers so JPEG decoding keeps up, and
# SyncBN, so that a global batch split over N GPUs still normalises over the whole batch (paper runs
# are single-GPU in the papers; on one GPU, or on CPU, sync_bn changes nothing)
GPU = {"num_workers": 4, "pin_memory": True, "precision": "auto", "channels_last": True, "sync_bn": True,
       "checkpoint_every": 1}
# what the cpu profiles add: bf16 autocast where the CPU has it natively, channels_last
CPU = {"precision": "auto", "channels_last": True}
# the other profiles start from the paper's GPU settings: back to one process and exact numerics
NO_GPU = {"num_workers": 0, "pin_memory": False, "precision": "fp32", "channels_last": False, "sync_bn": False}


def three(paper: Profile, cpu: dict, smoke: dict) -> dict[str, Profile]:
    """A notebook's three profiles: ``paper``, and ``cpu`` / ``smoke`` as changes of it. Checkpoints
    (unless a profile says otherwise): the paper runs, hours long, write them (every epoch, fewer
    when a write would cost more than 1 % of the time); a cpu run of 30 minutes is run again
    rather than resumed (its checkpoints would fill gigabytes); the smoke runs write them, so that
    the suite's kill-and-resume tests go through the same road as a paper run."""
    return {"paper": paper, "cpu": paper.replace(profile="cpu", **{"checkpoint_every": 0, **cpu}),
            "smoke": paper.replace(profile="smoke", **{"checkpoint_every": 1, **smoke})}


def train_config(settings: Settings, model: str | None = None, *, name: str | None = None, **run: Any):
    """The engine's :class:`~defectlib.engine.TrainConfig` for one trained ``model`` of a profile:
    what the profile sets (``settings.training(model)``), its checkpoints (:func:`checkpointing`:
    ``name`` is the trained model's own folder, unique in the run, e.g. ``"phase5"`` or
    ``"severstal/unet-resnet34/bce_dice"``), then what the run decides (``run``: the seed,
    progress bars, the grid point being trained...). Every notebook, command and the doctor build
    their TrainConfig here; a key the engine does not have raises."""
    from ..engine import TrainConfig
    return TrainConfig.from_dict({**settings.training(model), **checkpointing(settings, name), **run})


CHECKPOINT_SHARE = 0.01   # at most 1 % of a run's time goes to writing last.pt (the engine widens the interval)


def checkpointing(settings: Settings, name: str | None) -> dict[str, Any]:
    """The engine's checkpoint fields for the trained model ``name``: ``last.pt`` (and ``best.pt``)
    in ``<checkpoint_dir>/<name>/`` every ``checkpoint_every`` epochs, read back when ``resume``
    (a model whose ``last.pt`` says it finished is loaded, not trained again; that file keeps the
    weights, not the optimizer state: ``slim_last``). Nothing when the
    settings have no ``checkpoint_dir`` or ``checkpoint_every`` is 0. A profile that checkpoints
    needs every trained model named: two models sharing a folder would resume each other."""
    folder, every = getattr(settings, "checkpoint_dir", None), getattr(settings, "checkpoint_every", 0)
    if not folder or not every:
        return {}
    if not name:
        raise ValueError(f"{type(settings).__name__} checkpoints into {folder}: pass train_config(..., name=) "
                         "a name for the trained model, unique in the run (its checkpoint folder)")
    if name.startswith("/") or ".." in name.split("/"):
        raise ValueError(f"checkpoint name {name!r} must be a relative folder inside {folder}")
    return {"checkpoint_dir": Path(folder) / name, "checkpoint_every": int(every), "checkpoint_share": CHECKPOINT_SHARE,
            "slim_last": True, "resume": bool(getattr(settings, "resume", False))}


# --- the record ------------------------------------------------------------------------------------
@dataclass
class Probe:
    """One model of one notebook, as its profile trains it (what ``defectlib doctor`` measures)."""
    notebook: str
    name: str
    build: Callable[[], Any]                  # the model, freshly initialised
    loader: Callable[[], Any]                 # the training loader the notebook builds
    loss_fn: Callable
    train: Any                                # the TrainConfig the run trains it with (train_config)
    planned_steps: int                        # optimizer steps of this model in the profile's full run
    dataset: str = ""
    upper_bound: bool = False                 # planned_steps is a ceiling (early stopping)
    notes: list[str] = field(default_factory=list)   # e.g. whether the run's pretrained weights are here


@dataclass(frozen=True)
class Experiment:
    """A notebook's experiment, declared by its package (``EXPERIMENT = Experiment(...)``)."""
    number: str                               # "03": the notebook's prefix, the key everywhere
    title: str
    notebook: str                             # its file in notebooks/, e.g. "03_ocinet_nrsd.ipynb"
    profiles: Mapping[str, Profile]           # "smoke", "cpu", "paper" (see :func:`three`)
    datasets: tuple[str, ...] = ()            # names of defectlib.synth.locate, as the notebook reads them
    substitutes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # missing -> real ones used instead
    claims: tuple = ()                        # defectlib.record.verdict.Claim: the paper's claims judged
    doctor_probes: Callable[..., list[Probe]] | None = None   # (cfg, data_root, seed) -> the models it trains
    command: str | None = None                # "python -m defectlib.experiments.ocinet"
    paper: str | None = None                  # "003": the paper file's number, None for the tour

    def __post_init__(self) -> None:
        if len(self.number) != 2 or not self.number.isdigit():
            raise ValueError(f"Experiment.number={self.number!r}: two digits, e.g. '05'")
        if not self.notebook.startswith(self.number + "_") or not self.notebook.endswith(".ipynb"):
            raise ValueError(f"Experiment.notebook={self.notebook!r}: NN_<name>.ipynb with NN = {self.number}")
        if set(self.profiles) != set(PROFILE_NAMES):
            raise ValueError(f"Experiment {self.number}: profiles {sorted(self.profiles)}, need {PROFILE_NAMES}")

    @property
    def stem(self) -> str:
        """``03_ocinet_nrsd``: the notebook's name without ``.ipynb`` (results folders use it)."""
        return self.notebook.removesuffix(".ipynb")


_FOUND: dict[str, Experiment] | None = None


def experiments(refresh: bool = False) -> dict[str, Experiment]:
    """Every experiment, by number (``"00"``, ``"01"``...): the ``EXPERIMENT`` of each package in
    :mod:`defectlib.experiments` (a folder added to its ``__path__`` counts too). Cached; ``refresh``
    looks again."""
    global _FOUND
    if _FOUND is None or refresh:
        package = importlib.import_module("defectlib.experiments")
        found: dict[str, Experiment] = {}
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if not info.ispkg:
                continue
            record = getattr(importlib.import_module(f"defectlib.experiments.{info.name}"), "EXPERIMENT", None)
            if record is None:
                continue
            if record.number in found:
                raise ValueError(f"experiments {found[record.number].notebook} and {record.notebook} "
                                 f"both have number {record.number}")
            found[record.number] = record
        _FOUND = dict(sorted(found.items()))
    return _FOUND


def experiment(notebook: str) -> Experiment:
    """The experiment of ``notebook``: ``"03"``, ``"03_ocinet_nrsd"`` or its file name."""
    key = str(notebook).rsplit("/", 1)[-1][:2]
    found = experiments()
    if key not in found:
        raise KeyError(f"no experiment for notebook {notebook!r}; known: {sorted(found)}")
    return found[key]


# --- profiles --------------------------------------------------------------------------------------
def profile(notebook: str, name: str, dry_run: bool = False, *, output_dir: Any = None, resume: bool = False,
            **changes: Any) -> Profile:
    """The configuration of ``notebook`` (``"01"`` or ``"01_danet_neu_det"``) under profile ``name``,
    with ``changes`` (known settings only); ``dry_run``: stopped after 2 steps and one evaluation
    batch (the same configuration otherwise). ``output_dir`` (a run's folder for this notebook):
    where a profile that checkpoints (``checkpoint_every`` > 0) keeps them, ``<output_dir>/checkpoints``,
    unless ``changes`` name a ``checkpoint_dir``; ``resume``: continue from them."""
    try:
        table = experiment(notebook).profiles
    except KeyError:
        raise KeyError(f"no profiles for notebook {notebook!r}; known: {sorted(experiments())}") from None
    if name not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {name!r}; choose one of {PROFILE_NAMES}")
    cfg = table[name].replace(**changes)
    if dry_run:
        cfg = cfg.replace(dry_run=True, max_steps=2, max_eval_batches=1)
    if output_dir is not None and "checkpoint_dir" not in changes and "checkpoint_dir" in cfg:
        cfg = cfg.replace(checkpoint_dir=str(Path(output_dir) / "checkpoints"))
    if resume:
        cfg = cfg.replace(resume=True)
    return cfg


def profile_table(notebook: str, dry_run: bool = False) -> str:
    """The three profiles of ``notebook`` side by side, as a markdown table (for notebooks/README)."""
    cfgs = {p: profile(notebook, p, dry_run=dry_run) for p in PROFILE_NAMES}
    names = [k for k in cfgs["paper"] if k not in ("profile", "checkpoint_dir", "resume")]  # the run's, not a profile's

    def cell(value: Any) -> str:
        value = value.to_dict() if isinstance(value, Settings) else value
        text = "-" if value is None else repr(value) if isinstance(value, str) else str(value)
        return text if len(text) <= 40 else text[:37] + "..."

    lines = ["| setting | " + " | ".join(PROFILE_NAMES) + " |", "|---" * (len(PROFILE_NAMES) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(cell(cfgs[p][k]) for p in PROFILE_NAMES) + " |" for k in names]
    return "\n".join(lines)
