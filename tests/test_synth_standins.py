"""Stand-in generators: deterministic, masks exact by construction, real formats, fast."""
from __future__ import annotations

import numpy as np
import pytest

from defectlib.data import NEUDET, NRSDMN, Severstal
from defectlib.synth import PRIMITIVES, steel_texture, write_neu_det, write_nrsd_mn, write_severstal
from defectlib.synth.defects import bbox


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_primitive_mask_is_exactly_the_changed_pixels(name):
    rng = np.random.default_rng(1)
    base = steel_texture((120, 160), rng, grain=0.0)
    base = np.clip(base, 0.35, 0.65)  # room for +-0.35 without clipping
    img = base.copy()
    mask = PRIMITIVES[name](img, np.random.default_rng(2))
    changed = np.abs(img - base) > 1e-7
    assert mask.dtype == bool and mask.any()
    assert not (changed & ~mask).any()          # nothing changed outside the mask
    assert changed[mask].mean() > 0.97          # (almost) every mask pixel visibly changed
    assert bbox(mask) is not None


def test_generators_are_deterministic(tmp_path):
    a = write_nrsd_mn(tmp_path / "a", n_train=3, n_test_man_made=1, n_test_natural=1, seed=5)
    b = write_nrsd_mn(tmp_path / "b", n_train=3, n_test_man_made=1, n_test_natural=1, seed=5)
    c = write_nrsd_mn(tmp_path / "c", n_train=3, n_test_man_made=1, n_test_natural=1, seed=6)
    files = sorted(p.relative_to(a) for p in a.rglob("*.*") if p.suffix in (".jpg", ".png"))
    assert len(files) == 10
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files)


def test_severstal_standin_about_half_clean_all_classes(tmp_path):
    root = write_severstal(tmp_path / "sev", n_images=40, seed=0, fmt="old")
    ds = Severstal(root)
    assert ds.csv_format == "old" and len(ds) == 40 and sum(ds.defective) == 20
    assert {c for lab in ds.labels for c in lab} == {1, 2, 3, 4}


def test_all_three_standins_default_size(tmp_path):
    roots = [write_neu_det(tmp_path / "neu-det"), write_severstal(tmp_path / "severstal"),
             write_nrsd_mn(tmp_path / "nrsd-mn")]
    assert len(NEUDET(roots[0])) == 120 and len(Severstal(roots[1])) == 40
    assert len(NRSDMN(roots[2], "test-natural")) == 8


def test_severstal_standin_has_dark_margins_that_crops_reject(tmp_path):
    from defectlib.data.sampling import RandomCropDataset
    ds = Severstal(write_severstal(tmp_path / "sev", n_images=12, seed=1))
    dark = [i for i in range(len(ds)) if min(float(ds[i][0][..., :100].mean()), float(ds[i][0][..., -100:].mean())) < 0.05]
    assert dark, "expected some strips with a black margin"
    crops = RandomCropDataset(ds, sizes=[(256, 96)], dark_threshold=0.1, max_tries=50)
    assert all(float(crops[i][0].mean()) >= 0.1 for i in dark)
