"""Scenes: one randomised part instance rendered from several views, and a Dataset of them.

Paper 004, Sec. 3.3: "First, geometry instances are created with defects randomly generated and
applied across the surface. Next, the texture parameters are sampled within defined ranges centered
around their previously optimized values ... Finally, each geometry instance is rendered" from the
inspection plan's viewpoints. Here a *part* is one surface (:mod:`.heightfield`) with its defects
(:mod:`.imprint`); each part is rendered from ``views_per_part`` ring-light views (:mod:`.render`).

Two presets:

- ``"clutch"``: the paper's case, machined aluminium (all four textures, specular, strong curvature
  and part edges against a dark background, views tilted up to 40 degrees).
- ``"tile"``: made to resemble the course's real target, MTD magnetic tiles: matte grey ceramic
  with grinding marks (milled / brushed / blasted), a gently curved tile, a near-axial ring light,
  round pits (blowholes ~ dents) and long thin cracks (~ deep scratches).

Every sample is a pure function of ``(seed, index)``: part ``i`` uses its own generator seeded from
``seed`` and ``i``, so any subset, order or number of workers gives the same images.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch.utils.data import Dataset

from .heightfield import FAMILIES, FAMILY_DEFAULTS, make_surface, sample_texture
from .imprint import imprint, sample_defects
from .render import Material, RingLight, Sensor, View, render


@dataclass
class SceneConfig:
    size: int | tuple[int, int] = 256            # image size (pixels)
    px_mm: float = 0.1                           # pixel size on the surface (mm)
    families: tuple[str, ...] = FAMILIES
    texture_defaults: dict = field(default_factory=lambda: FAMILY_DEFAULTS)
    jitter: float = 0.3                          # +- range of roughness / strength / scale around the defaults
    p_edge: float = 0.6                          # probability of a curved fillet + part edge in view
    p_hole: float = 0.25
    max_tile_curvature: float = 0.0              # 1/mm
    p_defective: float = 0.5                     # share of parts with at least one significant defect
    n_dents: tuple[int, int] = (0, 3)            # inclusive ranges for a defective part
    n_scratches: tuple[int, int] = (0, 3)
    n_minor: tuple[int, int] = (2, 8)            # insignificant irregularities (not in the mask)
    views_per_part: int = 4
    tilt_deg: tuple[float, float] = (0.0, 40.0)
    material: Material = field(default_factory=Material)
    light: RingLight = field(default_factory=RingLight)
    sensor: Sensor = field(default_factory=Sensor)
    min_half_width_px: float = 0.75

    @property
    def shape(self) -> tuple[int, int]:
        return (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)

    def replace(self, **kw) -> "SceneConfig":
        return replace(self, **kw)


_TILE_TEXTURES = {
    "milled": {"strength": 0.15, "scale_mm": 0.8, "roughness": 0.6},
    "brushed": {"strength": 0.25, "scale_mm": 0.3, "roughness": 0.6},
    "blasted": {"strength": 0.12, "scale_mm": 0.15, "roughness": 0.7},
    "turned": FAMILY_DEFAULTS["turned"],
}

PRESETS: dict[str, SceneConfig] = {
    "clutch": SceneConfig(),
    "tile": SceneConfig(
        families=("milled", "brushed", "blasted"), texture_defaults=_TILE_TEXTURES,
        p_edge=0.3, p_hole=0.0, max_tile_curvature=0.06, p_defective=0.6, jitter=0.5,
        n_dents=(0, 3), n_scratches=(0, 2), tilt_deg=(0.0, 15.0),
        material=Material(f0=0.04, diffuse=0.85, cavity_strength=0.9),
        light=RingLight(n_lights=8, radius_mm=25.0),
        sensor=Sensor(ambient=0.06, exposure=1.1, background=0.02, read_noise=0.01,
                      shot_noise=0.015, dark_noise=0.02),
    ),
}


def get_config(config: str | SceneConfig = "clutch", **overrides) -> SceneConfig:
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown scene preset {config!r}; choose one of {sorted(PRESETS)}")
        config = PRESETS[config]
    return replace(config, **overrides) if overrides else config


def part_generator(seed: int, index: int) -> torch.Generator:
    """The generator of part ``index`` in a dataset seeded with ``seed`` (independent of order)."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(index)) % (2 ** 63 - 1))


def _randint(gen, lo, hi) -> int:
    return int(torch.randint(lo, hi + 1, (), generator=gen))


def make_part(cfg: SceneConfig, gen: torch.Generator, defective: bool | None = None):
    """One surface with its defects imprinted (see :func:`defectlib.synth.imprint.imprint`)."""
    size_mm = (cfg.shape[0] * cfg.px_mm, cfg.shape[1] * cfg.px_mm)
    texture = sample_texture(gen, size_mm, None, cfg.families, cfg.jitter, cfg.texture_defaults)
    surface = make_surface(cfg.shape, cfg.px_mm, gen, p_edge=cfg.p_edge, p_hole=cfg.p_hole,
                           max_tile_curvature=cfg.max_tile_curvature, texture=texture)
    if defective is None:
        defective = float(torch.rand((), generator=gen)) < cfg.p_defective
    n_d = n_s = 0
    if defective:
        while n_d + n_s == 0:
            n_d, n_s = _randint(gen, *cfg.n_dents), _randint(gen, *cfg.n_scratches)
    n_minor = _randint(gen, *cfg.n_minor)
    defects = sample_defects(gen, surface, n_d, n_s, n_minor)
    return imprint(surface, defects, cfg.min_half_width_px)


def sample_views(cfg: SceneConfig, gen: torch.Generator, n: int | None = None) -> list[View]:
    """``n`` viewpoints: the first straight on, the rest tilted within ``cfg.tilt_deg`` at spread azimuths."""
    n = cfg.views_per_part if n is None else n
    az0 = 360.0 * float(torch.rand((), generator=gen))
    views = []
    for k in range(n):
        lo, hi = cfg.tilt_deg
        tilt = lo if k == 0 else lo + (hi - lo) * float(torch.rand((), generator=gen))
        views.append(View(tilt_deg=tilt, azimuth_deg=(az0 + 360.0 * k / max(n, 1)) % 360.0))
    return views


def render_part(cfg: SceneConfig | str, seed: int = 0, index: int = 0, n_views: int | None = None,
                noise: bool = True, defective: bool | None = None):
    """Images [V, 1, H, W] and masks [V, 1, H, W] of part ``index``, plus the part itself."""
    cfg = get_config(cfg)
    gen = part_generator(seed, index)
    part = make_part(cfg, gen, defective)
    views = sample_views(cfg, gen, n_views)
    imgs, masks = zip(*(render(part, v, cfg.light, cfg.material, cfg.sensor, gen if noise else None)
                        for v in views))
    return torch.stack(imgs), torch.stack(masks), part


class SynthSurfaces(Dataset):
    """``n_parts`` random parts x ``views_per_part`` views, as (image [1, H, W], mask [1, H, W]) pairs
    in [0, 1] / {0, 1}. Parts are rendered on first access and cached (``cache=True``)."""

    def __init__(self, n_parts: int, config: str | SceneConfig = "clutch", seed: int = 0,
                 cache: bool = True, transforms=None, **overrides):
        self.cfg = get_config(config, **overrides)
        self.n_parts, self.seed, self.cache, self.transforms = int(n_parts), int(seed), cache, transforms
        self._parts: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return self.n_parts * self.cfg.views_per_part

    def part(self, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        if p in self._parts:
            return self._parts[p]
        imgs, masks, _ = render_part(self.cfg, self.seed, p)
        if self.cache:
            self._parts[p] = (imgs, masks)
        return imgs, masks

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} synthetic samples")
        imgs, masks = self.part(i // self.cfg.views_per_part)
        img, mask = imgs[i % self.cfg.views_per_part], masks[i % self.cfg.views_per_part]
        if self.transforms is not None:
            img, mask = self.transforms(img, mask)
        return img, mask


__all__ = ["SceneConfig", "PRESETS", "get_config", "make_part", "sample_views", "render_part",
           "SynthSurfaces", "part_generator"]
