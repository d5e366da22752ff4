"""profiles.get: the one place that defines smoke / cpu / paper for every notebook."""
from __future__ import annotations

import pytest

from defectlib import profiles


def test_get_merges_common_settings_and_names_the_profile():
    cfg = profiles.get("00_getting_started", "cpu")
    assert cfg.profile == "cpu" and cfg["profile"] == "cpu"
    assert cfg.max_steps is None and cfg.dry_run is False
    with pytest.raises(AttributeError, match="no setting 'nope'"):
        cfg.nope


def test_dry_run_stops_after_two_steps_and_one_eval_batch():
    for nb in profiles.TABLES:
        cfg = profiles.get(nb, "paper", dry_run=True)
        assert (cfg.max_steps, cfg.max_eval_batches, cfg.dry_run) == (2, 1, True)
        full = profiles.get(nb, "paper")
        assert {k: v for k, v in cfg.items() if k not in ("max_steps", "max_eval_batches", "dry_run")} \
            == {k: v for k, v in full.items() if k not in ("max_steps", "max_eval_batches", "dry_run")}


def test_profiles_are_frozen_and_replace_makes_a_changed_copy():
    import dataclasses
    a = profiles.get("00", "smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.samples_per_dataset = 99
    b = a.replace(samples_per_dataset=99)
    assert (a.samples_per_dataset, b.samples_per_dataset, b["samples_per_dataset"]) == (2, 99, 99)
    assert profiles.get("01", "cpu", epochs=3).epochs == 3 and profiles.get("01", "cpu").epochs == 8


@pytest.mark.parametrize("call", [
    lambda: profiles.get("01", "cpu", epoch=3),                            # misspelt
    lambda: profiles.get("01", "cpu").replace(lr=0.01, batchsize=2),
    lambda: profiles.get("04", "cpu").study.replace(crops=64),             # a nested setting
    lambda: profiles.get("03", "cpu")["input_szie"],
])
def test_a_misspelt_setting_is_an_error_listing_the_real_ones(call):
    with pytest.raises(KeyError, match="has no setting") as info:
        call()
    assert "it has [" in str(info.value)


def test_the_paper_profile_is_the_default_and_the_others_derive_from_it():
    for nb, cls in (("01", profiles.DANetProfile), ("02", profiles.SeverstalProfile), ("03", profiles.OCINetProfile),
                    ("04", profiles.SyntheticProfile), ("00", profiles.GettingStartedProfile)):
        paper = profiles.get(nb, "paper")
        assert type(paper) is cls and all(type(profiles.get(nb, p)) is cls for p in profiles.PROFILE_NAMES)
        # apart from the GPU feeding, the paper profile's values are the class's own defaults
        gpu = {"num_workers", "pin_memory", "precision", "channels_last", "sync_bn", "weights", "checkpoint_every"}
        assert {k: v for k, v in paper.items() if k not in gpu} == {k: v for k, v in cls().items() if k not in gpu}


def test_unknown_notebook_or_profile_is_a_clear_error():
    with pytest.raises(KeyError, match="known"):
        profiles.get("09", "smoke")
    with pytest.raises(ValueError, match="smoke"):
        profiles.get("01", "fast")


@pytest.mark.parametrize("nb", sorted(profiles.TABLES))
def test_every_profile_defines_the_same_settings(nb):
    """A notebook reads cfg.X under every profile, so each profile must define X."""
    table = profiles.TABLES[nb]
    assert set(table) == set(profiles.PROFILE_NAMES)
    names = {p: set(profiles.get(nb, p)) for p in profiles.PROFILE_NAMES}
    union = set().union(*names.values())
    missing = {p: sorted(union - n) for p, n in names.items() if union - n}
    assert not missing, f"notebook {nb}: settings missing from some profiles: {missing}"


def test_table_shows_the_three_profiles_side_by_side():
    text = profiles.table("00")
    assert text.splitlines()[0] == "| setting | smoke | cpu | paper |"
    assert "| samples_per_dataset | 2 | 4 | 4 |" in text


def _keys(value, prefix=""):
    from collections.abc import Mapping
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield f"{prefix}{k}"
            yield from _keys(v, f"{prefix}{k}.")


@pytest.mark.parametrize("nb", sorted(profiles.TABLES))
def test_no_profile_pins_threads_or_spends_wall_time(nb):
    """Steps are fixed by the profile and the seed (never by a clock), and the runner, not a
    profile, decides how many threads a notebook gets."""
    for p in profiles.PROFILE_NAMES:
        keys = set(_keys(dict(profiles.get(nb, p))))
        bad = {k for k in keys if any(w in k.split(".")[-1] for w in ("thread", "budget", "reserve_s"))}
        assert not bad, f"notebook {nb}, profile {p}: {sorted(bad)}"


def test_cpu_and_paper_profiles_use_the_fast_numerics():
    for nb in ("02", "03", "04"):
        cpu = profiles.get(nb, "cpu")
        assert cpu.precision == "auto" and cpu.channels_last
    for nb in ("01", "02", "03", "04"):
        paper = profiles.get(nb, "paper")
        assert paper.precision == "auto" and paper.num_workers > 0 and paper.pin_memory


# --- one road from a profile to the engine ---------------------------------------------------------
TRAINED = {"01": (None,), "02": ("unet", "tversky", "gate"), "03": (None,)}


@pytest.mark.parametrize("name", profiles.PROFILE_NAMES)
def test_every_trained_model_gets_its_train_config_from_the_profile(name):
    """registry.train_config is the one road: what the profile says is what the engine gets, and
    the profile's precision (the table's row) is what every model trains in, notebook 04 included."""
    from defectlib.experiments.registry import train_config
    from defectlib.experiments.synthetic import study_config
    for nb, models in TRAINED.items():
        cfg = profiles.get(nb, name)
        for model in models:
            if model == "tversky" and not cfg.tversky_epochs:
                continue
            t = train_config(cfg, model, seed=7)
            assert (t.precision, t.channels_last, t.max_steps, t.seed) == (cfg.precision, cfg.channels_last,
                                                                          cfg.max_steps, 7), (nb, model)
    cfg = profiles.get("04", name)
    t = train_config(study_config(cfg), lr=1e-3, weight_decay=1e-4)
    assert (t.precision, t.channels_last, t.optimizer) == (cfg.precision, cfg.channels_last, "adamw")
    assert f"| precision | " in profiles.table("04")
    assert profiles.get("01", name).epochs == train_config(profiles.get("01", name)).epochs
    assert train_config(profiles.get("02", name), "gate").epochs == profiles.get("02", name).cls_epochs


def test_a_misspelt_key_raises_on_every_road():
    from defectlib.experiments.command import parse_changes
    from defectlib.experiments.registry import train_config
    cfg = profiles.get("03", "cpu")
    with pytest.raises(KeyError, match="TrainConfig has no field 'lr_'"):
        train_config(cfg, lr_=1e-3)                              # a run-time setting
    with pytest.raises(KeyError, match="has no setting 'lrr'"):
        parse_changes("03", "cpu", ["lrr=1e-3"])                 # --set on a command
    with pytest.raises(KeyError, match="has no setting 'lrr'"):
        profiles.get("03", "cpu", lrr=1e-3)                      # a notebook's profile
    with pytest.raises(KeyError, match="trains 'unet', 'tversky' and 'gate', not 'unett'"):
        train_config(profiles.get("02", "cpu"), "unett")
    with pytest.raises(NotImplementedError, match="trains nothing"):
        train_config(profiles.get("00", "cpu"))


def test_settings_are_read_as_attributes_everywhere():
    """One way to read a setting: ``cfg.lr``, never ``cfg["lr"]`` or ``cfg.get("lr", default)``
    (a default there hides a missing setting)."""
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"""\b(cfg|sc|study|profile)(\[["']|\.get\()""")
    found = [f"{p.relative_to(root)}:{i}" for folder in ("defectlib", "notebooks", "solutions")
             for p in (root / folder).rglob("*") if p.suffix in (".py", ".ipynb")
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, found
