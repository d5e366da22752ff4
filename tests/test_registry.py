"""The one registry (:mod:`defectlib.experiments.registry`): a sixth experiment added in one place,
its own package, is found by the profiles, the runner's pre-run checks, the doctor, the seed
verdicts and the layout rules, with no other file edited (README, "Adding a paper")."""
from __future__ import annotations

import json
import textwrap

import pytest

from defectlib.experiments import registry

TOY = {
    "__init__.py": '''
        """Notebook 06's experiment: a toy paper, added by a test in a package of its own."""
        from ..registry import Experiment
        from .profile import PROFILES
        from .recipe import doctor_probes
        from .results import CLAIMS

        EXPERIMENT = Experiment(
            number="06", title="a toy paper", notebook="06_toy.ipynb", profiles=PROFILES,
            datasets=("neu-det", "mtd"), substitutes={"mtd": ("neu-seg",)}, claims=CLAIMS,
            doctor_probes=doctor_probes, command="python -m defectlib.experiments.toy06", paper="006")
        ''',
    "profile.py": '''
        from dataclasses import dataclass

        from ..registry import NO_GPU, Profile, three


        @dataclass(frozen=True)
        class ToyProfile(Profile):
            width: int = 64
            epochs: int = 30


        PROFILES = three(ToyProfile(), {**NO_GPU, "width": 16, "epochs": 3}, {"width": 4, "epochs": 1})
        ''',
    "recipe.py": '''
        import torch

        from ..registry import Probe


        def doctor_probes(cfg, data_root=None, seed=0):
            return [Probe("06", "toy linear", lambda: torch.nn.Linear(2, cfg.width), lambda: [],
                          lambda model, batch, device: {"loss": torch.zeros(())}, {"optimizer": "sgd"}, 10)]
        ''',
    "results.py": '''
        from ...record.verdict import Claim

        CLAIMS = (Claim("the toy beats its base", "toy/IoU", "base/IoU", ("toy", "base")),)
        ''',
    "data.py": "", "figures.py": "", "main.py": "", "__main__.py": "",
}


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A sixth experiment in its own package (a folder on ``defectlib.experiments.__path__``) and
    its notebook in a notebooks folder."""
    import defectlib.experiments as package
    home = tmp_path / "pkgs" / "toy06"
    home.mkdir(parents=True)
    for name, text in TOY.items():
        (home / name).write_text(textwrap.dedent(text).lstrip())
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "06_toy.ipynb").write_text(json.dumps(
        {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(tmp_path / "pkgs")])
    registry.experiments(refresh=True)
    yield notebooks
    monkeypatch.undo()
    registry.experiments(refresh=True)


def test_a_fifth_experiment_is_found_everywhere_from_its_own_package(toy, tmp_path, capsys):
    from defectlib import profiles
    from defectlib.course import doctor, preflight, seeds
    from defectlib.course import run as runner
    import test_layout

    record = registry.experiment("06")
    assert record.stem == "06_toy" and list(registry.experiments())[-1] == "06"
    # the profiles
    assert profiles.get("06", "cpu").width == 16 and profiles.get("06_toy", "paper", dry_run=True).max_steps == 2
    assert "| width | 4 | 16 | 64 |" in profiles.table("06") and "06" in profiles.TABLES
    with pytest.raises(KeyError, match="has no setting 'widht'"):
        profiles.get("06", "cpu", widht=3)
    # the runner's plan: its notebook, the datasets it reads and their real substitutes
    nb = runner.discover(toy, ["06"])[0]
    assert preflight.notebook_datasets(nb) == ("neu-det", "mtd")
    assert preflight.notebook_substitutes(nb) == {"mtd": ("neu-seg",)}
    empty = tmp_path / "data"
    empty.mkdir()
    with pytest.raises(SystemExit):
        runner.main(["--notebooks", str(toy), "--only", "06", "--data-root", str(empty), "--require-real",
                     "--out", str(tmp_path / "runs")])
    assert "06_toy" in capsys.readouterr().err
    # the doctor's list and its probes
    assert "06" in doctor.measured()
    (probe,) = doctor.probes("06", profiles.get("06", "smoke"))
    assert probe.name == "toy linear" and probe.build().out_features == 4
    # the seed verdicts judge its claims
    assert [c.statement for c in seeds._claims("06_toy")] == ["the toy beats its base"]
    # and the layout rules hold for its home
    test_layout.check_home(__import__("defectlib.experiments.toy06", fromlist=["EXPERIMENT"]), notebooks=toy)


def test_a_record_is_checked_when_it_is_declared():
    from defectlib.experiments.getting_started import PROFILES
    with pytest.raises(ValueError, match="two digits"):
        registry.Experiment(number="5", title="t", notebook="5_x.ipynb", profiles=PROFILES)
    with pytest.raises(ValueError, match="NN_<name>.ipynb"):
        registry.Experiment(number="05", title="t", notebook="06_x.ipynb", profiles=PROFILES)
    with pytest.raises(ValueError, match="profiles"):
        registry.Experiment(number="05", title="t", notebook="05_x.ipynb", profiles={"cpu": PROFILES["cpu"]})
    with pytest.raises(KeyError, match="no experiment for notebook '77'"):
        registry.experiment("77")
