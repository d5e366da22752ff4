"""The paper-004 renderer: determinism, exact masks, paper size ranges, shading sanity."""
import math

import pytest
import torch

from defectlib.synth import imprint as I
from defectlib.synth.heightfield import FAMILIES, make_surface, slopes, texture_height, sample_texture
from defectlib.synth.render import Material, RingLight, Sensor, View, defect_mask, render, shade, visible
from defectlib.synth.scene import PRESETS, SynthSurfaces, get_config, make_part, part_generator, render_part

SMALL = dict(size=64)


def test_same_seed_same_images_and_order_independent():
    a_img, a_mask, _ = render_part(get_config("clutch", **SMALL), seed=3, index=5)
    b_img, b_mask, _ = render_part(get_config("clutch", **SMALL), seed=3, index=5)
    assert torch.equal(a_img, b_img) and torch.equal(a_mask, b_mask)
    c_img, _, _ = render_part(get_config("clutch", **SMALL), seed=4, index=5)
    assert not torch.equal(a_img, c_img)
    ds = SynthSurfaces(3, get_config("tile", **SMALL), seed=1, views_per_part=2)
    late = ds[5][0].clone()                       # part 2 rendered first
    fresh = SynthSurfaces(3, get_config("tile", **SMALL), seed=1, views_per_part=2)
    _ = [fresh[i] for i in range(6)]
    assert torch.equal(fresh[5][0], late)


def test_defect_free_render_has_empty_mask_but_minor_defects_change_image():
    cfg = get_config("clutch", **SMALL)
    gen = part_generator(0, 0)
    surf = make_surface(cfg.shape, cfg.px_mm, gen, p_edge=0.0, p_hole=0.0)
    minor = [I.sample_dent(gen, surf.part, cfg.px_mm, significant=False) for _ in range(3)]
    minor += [I.sample_scratch(gen, surf.part, cfg.px_mm, significant=False) for _ in range(3)]
    clean = I.imprint(surf, [])
    with_minor = I.imprint(surf, minor)
    img0, m0 = render(clean, View())
    img1, m1 = render(with_minor, View())
    assert m0.sum() == 0 and m1.sum() == 0
    assert (img0 != img1).any()                   # insignificant defects are seen, never labelled
    for i in range(4):                            # whole clean parts too
        imgs, masks, part = render_part(cfg, seed=0, index=i, defective=False)
        assert masks.sum() == 0 and not any(d.significant for d in part.defects)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_is_exactly_the_visible_footprint_of_significant_defects(seed):
    cfg = get_config("clutch", size=96)
    gen = part_generator(seed, 7)
    surf = make_surface(cfg.shape, cfg.px_mm, gen)
    defects = I.sample_defects(gen, surf, 3, 3, 0)            # significant only
    part = I.imprint(surf, defects)
    changed = part.dents != 0
    view = View(tilt_deg=20.0, azimuth_deg=60.0)
    mask = defect_mask(part, view).bool()
    vis = visible(part, view)
    assert changed.any()
    assert torch.equal(mask, part.footprint & vis)
    assert not (changed & vis & ~mask).any()      # every visible changed pixel is labelled
    assert not (mask & ~changed).any() or (mask & ~changed).sum() <= (mask.sum() * 0.1)
    # a pixel in the mask belongs to some defect's support: its height changed except at the rim
    assert not (mask & ~part.part).any()


def test_hidden_or_background_defects_are_not_labelled():
    cfg = get_config("clutch", **SMALL)
    gen = part_generator(0, 1)
    surf = make_surface(cfg.shape, cfg.px_mm, gen, p_edge=0.0, p_hole=0.0)
    surf.part[:, 32:] = False                     # right half is background
    dent = I.Dent(x_mm=3.2, y_mm=3.2, diameter_mm=2.0, depth_mm=0.3)   # straddles the edge at x=3.2 mm
    part = I.imprint(surf, [dent])
    mask = defect_mask(part, View()).bool()
    assert mask.any() and not mask[:, 32:].any()
    assert (part.dents[:, 32:] == 0).all()


def test_scratch_covers_its_centreline_and_respects_widths():
    shape, px = (128, 128), 0.1
    sc = I.Scratch(x_mm=2.0, y_mm=2.0, angle=0.6, length_mm=8.0, width_mm=0.3, depth_mm=0.2,
                   curve_mm=0.8, curve_freq=1.0)
    surf = make_surface(shape, px, torch.Generator().manual_seed(0), p_edge=0.0, p_hole=0.0)
    part = I.imprint(surf, [sc])
    pts = sc.centreline(200)
    ij = torch.round(pts / px).long()
    assert part.footprint[ij[:, 1], ij[:, 0]].all()
    area_mm2 = float(part.footprint.sum()) * px * px
    arc = float((pts[1:] - pts[:-1]).norm(dim=1).sum())
    assert 0.5 * arc * 0.3 < area_mm2 < 2.5 * arc * 0.3 + 0.2
    # a sub-pixel scratch still leaves a connected 1-2 px trace
    thin = I.imprint(surf, [I.Scratch(2.0, 6.0, 0.0, 6.0, 0.05, 0.03)])
    cols = thin.footprint.any(0).sum()
    assert cols >= 55


def test_dent_size_and_elongation():
    px = 0.05
    surf = make_surface((128, 128), px, torch.Generator().manual_seed(0), p_edge=0.0, p_hole=0.0)
    d = I.Dent(x_mm=3.2, y_mm=3.2, diameter_mm=2.0, depth_mm=0.2, elongation=4.0, angle=0.0)
    part = I.imprint(surf, [d])
    area = float(part.footprint.sum()) * px * px
    assert area == pytest.approx(math.pi * 1.0, rel=0.08)     # elongation keeps the round dent's area
    rows, cols = part.footprint.any(1).sum(), part.footprint.any(0).sum()
    assert cols / rows == pytest.approx(4.0, rel=0.15)
    assert float(part.dents.min()) == pytest.approx(-0.2, rel=0.02)


def test_sampled_defects_follow_the_paper_ranges():
    gen = torch.Generator().manual_seed(0)
    part = torch.ones(64, 64, dtype=torch.bool)
    for _ in range(200):
        d = I.sample_dent(gen, part, 0.1)
        s = I.sample_scratch(gen, part, 0.1)
        assert I.DENT_DIAMETER_MM[0] <= d.diameter_mm <= I.DENT_DIAMETER_MM[1]
        assert I.SCRATCH_WIDTH_MM[0] <= s.width_mm <= I.SCRATCH_WIDTH_MM[1]
        assert d.depth_mm > 0 and s.depth_mm > 0 and d.elongation >= 1.0


@pytest.mark.parametrize("family", FAMILIES)
def test_texture_strength_is_rms_slope(family):
    gen = torch.Generator().manual_seed(1)
    spec = sample_texture(gen, (6.4, 6.4), family)
    t = texture_height(spec, (64, 64), 0.1, gen)
    gx, gy = slopes(t, 0.1)
    assert float(torch.sqrt((gx ** 2 + gy ** 2).mean())) == pytest.approx(spec.strength, rel=1e-3)


def test_shading_dark_background_ambient_and_ring_light():
    gen = torch.Generator().manual_seed(0)
    surf = make_surface((64, 64), 0.1, gen, p_edge=0.0, p_hole=0.0)
    surf.part[:, :16] = False
    part = I.imprint(surf, [])
    rad = shade(part, View(), RingLight(), Material(), ambient=0.03)
    assert (rad[:, :16] == 0).all() and (rad[:, 16:] >= 0.03 * 0.99).all()
    img, _ = render(part, View(), sensor=Sensor(dark_noise=0.0, read_noise=0.0, shot_noise=0.0,
                                                quantize=False))
    assert torch.allclose(img[0, :, :16], torch.full((64, 16), Sensor().background))
    # no light, no ambient: a black image
    dark = shade(part, View(), RingLight(power=0.0), Material(), ambient=0.0)
    assert dark.abs().max() == 0
    # the view changes the shading (multi-view), not the mask
    other = shade(part, View(tilt_deg=35, azimuth_deg=90), RingLight(), Material(), ambient=0.03)
    assert not torch.allclose(rad, other)


def test_presets_and_dataset_shapes():
    for name in PRESETS:
        ds = SynthSurfaces(2, name, seed=0, size=48, views_per_part=2)
        img, mask = ds[3]
        assert img.shape == (1, 48, 48) and mask.shape == (1, 48, 48)
        assert 0 <= float(img.min()) and float(img.max()) <= 1
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="unknown scene preset"):
        get_config("nope")
    with pytest.raises(IndexError):
        SynthSurfaces(1, "clutch", size=32)[99]


def _reference_shade(surface, view, light, material, ambient):
    """The shading equation written out light by light with explicit vectors (module docstring)."""
    from defectlib.synth.render import camera_and_lights, normals
    H, W = surface.shape
    px = surface.px_mm
    cam, lights = camera_and_lights(view, light, ((W - 1) * px / 2, (H - 1) * px / 2))
    n = normals(surface).double()
    z = (surface.height + surface.dents).double()
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float64) * px, torch.arange(W, dtype=torch.float64) * px,
                          indexing="ij")
    p = torch.stack([x, y, z])
    unit = lambda a: a / a.norm(dim=0, keepdim=True)
    v = unit(cam.double()[:, None, None] - p)
    nv = (n * v).sum(0).clamp_min(1e-4)
    a2, k = surface.texture.roughness ** 2, surface.texture.roughness / 2
    occl = 1 - material.cavity_strength * surface.cavity.double()
    total = torch.zeros(H, W, dtype=torch.float64)
    for P in lights.double():
        d = P[:, None, None] - p
        l = unit(d)
        nl = (n * l).sum(0).clamp_min(0)
        h = unit(l + v)
        nh, vh = (n * h).sum(0).clamp(0, 1), (v * h).sum(0).clamp(0, 1)
        D = a2 / (math.pi * (nh * nh * (a2 - 1) + 1) ** 2)
        F = material.f0 + (1 - material.f0) * (1 - vh) ** 5
        G = nv / (nv * (1 - k) + k) * nl / (nl * (1 - k) + k)
        spec = D * F * G / (4 * nl.clamp_min(1e-12) * nv)
        total += (material.diffuse / math.pi * occl + spec) * nl * light.power * view.distance_mm ** 2 / (d * d).sum(0)
    return (ambient * occl + total / light.n_lights) * surface.part


@pytest.mark.parametrize("tilt", [0.0, 30.0])
def test_vectorised_shading_equals_the_light_by_light_equation(tilt):
    cfg = get_config("clutch", size=48)
    part = make_part(cfg, part_generator(0, 2), defective=True)
    view, light, mat = View(tilt_deg=tilt, azimuth_deg=40.0), RingLight(), Material()
    ours = shade(part, view, light, mat, 0.03).double()
    ref = _reference_shade(part, view, light, mat, 0.03)
    assert torch.allclose(ours, ref, rtol=2e-3, atol=1e-4)
