"""Shading a height field under a ring light around the camera, with sensor noise and exact masks.

Paper 004, Sec. 3.2-3.3: a grayscale camera with "a diffuse ring light mounted around it", moved by a
robot to many viewpoints (multi-view); the synthetic images reproduce that: "the lightpoint geometry
has the ring light shape and is positioned around the viewpoint", "a small amount of constant
illumination" stands in for inter-reflections, the background is dark "with addition of uniform
noise ... to resemble sensor dark shot noise", and masks are rendered for visible defects only.

Model (per pixel ``p`` on the surface, camera at ``C``, ``K`` lights ``P_k`` on a ring of radius
``R`` around the camera axis):

    n   = normalize(-(dz/dx), -(dz/dy), 1)            z = geometry + defects, slopes + texture bump
    L   = ambient * (1 - c * cavity) + (1/K) sum_k E / |P_k - p|^2 * (n.l_k) *
          [ kd / pi * (1 - c * cavity) + D_GGX(n.h; alpha) F_Schlick(v.h) G_Smith / (4 (n.l)(n.v)) ]
    img = clip(exposure * L + noise, 0, 1), quantised to 8 bits; background = dark level + noise

``alpha`` is the texture's roughness. Images are in rectified surface coordinates: a view changes
where the camera and its ring light stand (so highlights, shading and defect contrast change
with the grazing angle, the effect the paper's Fig. 2 shows), not the projection.

The mask is the significant defects' footprint (:func:`defectlib.synth.imprint.imprint`) restricted
to pixels the camera sees: on the part and facing it (``n_geom . v > min_cos_view``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .heightfield import Surface, slopes


_BLOCK = 16384          # pixels shaded at once


@dataclass
class View:
    """Camera pose: tilt from the surface normal and azimuth (degrees), distance (mm) to the view centre."""
    tilt_deg: float = 0.0
    azimuth_deg: float = 0.0
    distance_mm: float = 120.0


@dataclass
class RingLight:
    n_lights: int = 8
    radius_mm: float = 35.0         # ring radius around the camera axis
    power: float = 1.0              # irradiance scale (E times distance^2 at the reference distance)


@dataclass
class Material:
    f0: float = 0.9                 # Schlick reflectance at normal incidence (aluminium ~0.9)
    diffuse: float = 0.08           # Lambertian albedo
    cavity_strength: float = 0.7    # how much enclosed pits/grooves darken the diffuse+ambient terms


@dataclass
class Sensor:
    ambient: float = 0.03           # constant illumination (inter-reflections)
    exposure: float = 0.6
    background: float = 0.015       # dark background level
    read_noise: float = 0.006       # Gaussian std
    shot_noise: float = 0.012       # std grows as shot_noise * sqrt(signal)
    dark_noise: float = 0.02        # uniform [0, dark_noise) added everywhere (dark shot noise)
    quantize: bool = True


def _basis(view: View) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit camera axis (towards the camera) and two unit vectors spanning the ring's plane."""
    t, a = math.radians(view.tilt_deg), math.radians(view.azimuth_deg)
    w = torch.tensor([math.sin(t) * math.cos(a), math.sin(t) * math.sin(a), math.cos(t)])
    helper = torch.tensor([0.0, 0.0, 1.0]) if abs(w[2]) < 0.9 else torch.tensor([1.0, 0.0, 0.0])
    e1 = torch.linalg.cross(helper, w)
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(w, e1)
    return w, e1, e2


def camera_and_lights(view: View, light: RingLight, centre: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera position [3] and light positions [K, 3] (mm) for a view centred on ``centre`` (x, y)."""
    w, e1, e2 = _basis(view)
    c0 = torch.tensor([centre[0], centre[1], 0.0])
    cam = c0 + view.distance_mm * w
    beta = torch.arange(light.n_lights, dtype=torch.float32) * (2 * math.pi / light.n_lights)
    lights = cam[None] + light.radius_mm * (torch.cos(beta)[:, None] * e1 + torch.sin(beta)[:, None] * e2)
    return cam, lights


def _normalize(v: torch.Tensor) -> torch.Tensor:
    """Unit vectors along dim 0 of a [3, ...] tensor (explicit sum of squares: linalg.vector_norm
    over a leading dim of 3 is ~10x slower on CPU)."""
    return v * torch.rsqrt((v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).clamp_min(1e-24))


def normals(surface: Surface, with_texture: bool = True, with_defects: bool = True) -> torch.Tensor:
    """Unit normals [3, H, W] of geometry (+ defects) (+ texture bump)."""
    z = surface.height
    if with_defects and surface.dents is not None:
        z = z + surface.dents
    gx, gy = slopes(z, surface.px_mm)
    if with_texture:
        bx, by = slopes(surface.bump, surface.px_mm)
        gx, gy = gx + bx, gy + by
    return _normalize(torch.stack([-gx, -gy, torch.ones_like(gx)]))


def shade(surface: Surface, view: View, light: RingLight, material: Material,
          ambient: float = 0.03) -> torch.Tensor:
    """Radiance [H, W] of the part (0 on the background), before exposure and noise."""
    H, W = surface.shape
    px = surface.px_mm
    centre = ((W - 1) * px / 2, (H - 1) * px / 2)
    cam, lights = camera_and_lights(view, light, centre)
    n = normals(surface).reshape(3, -1)                               # [3, N]
    z = surface.height if surface.dents is None else surface.height + surface.dents
    y = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W) * px
    x = torch.arange(W, dtype=torch.float32)[None, :].expand(H, W) * px
    p = torch.stack([x, y, z]).reshape(3, -1)                        # [3, N] surface points
    v = _normalize(cam[:, None] - p)
    nv = (n * v).sum(0).clamp_min(1e-4)
    # All K lights at once without forming the [K, 3, N] light vectors: with d_k = P_k - p,
    #   |d_k|^2 = |P_k|^2 - 2 P_k.p + |p|^2,  n.l_k = (P_k.n - p.n) / |d_k|,  l_k.v = (P_k.v - p.v) / |d_k|,
    #   |l_k + v| = sqrt(2 + 2 l_k.v),  n.h_k = (n.l_k + n.v) / |l_k + v|,  v.h_k = (1 + l_k.v) / |l_k + v|
    # and the three P_k.(p, n, v) are one [K, 3] x [3, 3B] matrix product per block of B pixels (blocks
    # keep the [K, B] temporaries in cache: the shading is memory-bound).
    pp, pn, pv = (p * p).sum(0), (p * n).sum(0), (p * v).sum(0)
    PP = (lights * lights).sum(1, keepdim=True)
    r = surface.texture.roughness
    alpha2, k = r * r, r / 2
    power = light.power * view.distance_mm ** 2
    diff_sum, spec_sum = torch.empty(H * W), torch.empty(H * W)
    for s in range(0, H * W, _BLOCK):
        sl = slice(s, s + _BLOCK)
        b = p[:, sl].shape[1]
        Pp, Pn, Pv = (lights @ torch.cat([p[:, sl], n[:, sl], v[:, sl]], 1)).split(b, 1)   # each [K, B]
        inv = Pp.mul_(-2).add_(pp[sl]).add_(PP).clamp_min_(1e-12).rsqrt_()               # 1 / |d_k|
        nl_raw = Pn.sub_(pn[sl]).mul_(inv)
        lv = Pv.sub_(pv[sl]).mul_(inv)
        inv_h = (lv * 2 + 2).clamp_min_(1e-12).rsqrt_()
        nh = (nl_raw + nv[sl]).mul_(inv_h).clamp_(0.0, 1.0)
        vh = lv.add_(1).mul_(inv_h).clamp_(0.0, 1.0)
        nl = nl_raw.clamp_min_(0.0)
        falloff = inv.mul_(inv).mul_(power)                                              # E / |d_k|^2
        D = nh.mul_(nh).mul_(alpha2 - 1).add_(1).square_().reciprocal_().mul_(alpha2 / math.pi)
        one_m = vh.neg_().add_(1)
        F = (one_m * one_m).square_().mul_(one_m).mul_(1 - material.f0).add_(material.f0)
        # GGX x Schlick x Smith-Schlick G / (4 (n.l)(n.v)), times n.l: one n.l cancels
        G1 = nl / (nl * (1 - k) + k)
        spec_nl = D.mul_(F).mul_(G1).div_(4 * (nv[sl] * (1 - k) + k))
        diff_sum[sl] = (nl * falloff).sum(0)
        spec_sum[sl] = spec_nl.mul_(falloff).sum(0)
    occl = torch.ones(H * W) if surface.cavity is None else 1.0 - material.cavity_strength * surface.cavity.reshape(-1)
    total = diff_sum * (material.diffuse / math.pi) * occl + spec_sum
    radiance = ambient * occl + total / light.n_lights
    return (radiance * surface.part.reshape(-1)).reshape(H, W)


def visible(surface: Surface, view: View, light: RingLight | None = None, min_cos_view: float = 0.1) -> torch.Tensor:
    """Pixels the camera sees: on the part and with the part's (geometry-only) normal facing it."""
    H, W = surface.shape
    px = surface.px_mm
    cam, _ = camera_and_lights(view, light or RingLight(), ((W - 1) * px / 2, (H - 1) * px / 2))
    n = normals(surface, with_texture=False, with_defects=False)
    y = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W) * px
    x = torch.arange(W, dtype=torch.float32)[None, :].expand(H, W) * px
    v = _normalize(cam[:, None, None] - torch.stack([x, y, surface.height]))
    return surface.part & ((n * v).sum(0) > min_cos_view)


def defect_mask(surface: Surface, view: View, min_cos_view: float = 0.1) -> torch.Tensor:
    """Exact mask [H, W] bool: significant defects' footprint, visible in ``view``."""
    if surface.footprint is None:
        return torch.zeros(surface.shape, dtype=torch.bool)
    return surface.footprint & visible(surface, view, min_cos_view=min_cos_view)


def expose(radiance: torch.Tensor, part: torch.Tensor, sensor: Sensor,
           gen: torch.Generator | None = None) -> torch.Tensor:
    """Exposure, dark background, sensor noise (read + shot + uniform dark), clipping, 8-bit quantisation."""
    img = sensor.exposure * radiance + sensor.background * (~part)
    if gen is not None:
        shape = img.shape
        noise = torch.randn(shape, generator=gen) * torch.sqrt(
            sensor.read_noise ** 2 + sensor.shot_noise ** 2 * img.clamp(0, 1))
        img = img + noise + sensor.dark_noise * torch.rand(shape, generator=gen)
    img = img.clamp(0.0, 1.0)
    if sensor.quantize:
        img = torch.round(img * 255.0) / 255.0
    return img


def render(surface: Surface, view: View, light: RingLight | None = None, material: Material | None = None,
           sensor: Sensor | None = None, gen: torch.Generator | None = None,
           min_cos_view: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(image [1, H, W] float in [0, 1], mask [1, H, W] float {0, 1}) of ``surface`` seen from ``view``.
    ``gen=None`` renders without noise."""
    light, material, sensor = light or RingLight(), material or Material(), sensor or Sensor()
    rad = shade(surface, view, light, material, sensor.ambient)
    img = expose(rad, surface.part, sensor, gen)
    mask = defect_mask(surface, view, min_cos_view)
    return img[None], mask[None].float()
