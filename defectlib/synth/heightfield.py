"""Surfaces as height fields: part geometry with curved regions and four machining textures.

Paper 004 (Fulir et al., "Synthetic Data for Defect Segmentation on Complex Metal Surfaces",
CVPRW 2023), Sec. 3.3: textures "are modeled using procedural methods that perturb surface
normals"; per image "we randomize the surface roughness, normal perturbation strength and texture
scale" within ranges centred on values fitted to the real part. The clutch shows four textures
(Fig. 1): turned, milled, brushed and a rough one; we add a blasted/rough family for the last.

Conventions used by the whole renderer (:mod:`defectlib.synth.imprint`, :mod:`.render`):

- The image grid *is* the surface grid (rectified view): pixel ``(i, j)`` is the surface point
  ``x = j * px_mm``, ``y = i * px_mm`` (mm). Heights ``z`` are in mm, ``+z`` points to the camera.
- Geometry (the part's shape, defects) lives in a height field ``H``; a texture is a second height
  field ``T`` used only through its gradient (bump mapping), so it perturbs normals without moving
  the surface: ``n = normalize(-(dH/dx + dT/dx), -(dH/dy + dT/dy), 1)``.
- A texture is scaled so that its RMS slope equals the family's *perturbation strength*; *scale*
  is its period or correlation length in mm; *roughness* is the GGX alpha the shader uses.

Everything is vectorised torch on one ``torch.Generator``: the same seed gives the same surface.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

FAMILIES = ("turned", "milled", "brushed", "blasted")

# Per-family centre values (the paper fits these to the real part; ours are chosen by eye so the
# four look distinct at 0.1 mm/px). strength = RMS slope, scale = period / correlation length (mm).
FAMILY_DEFAULTS: dict[str, dict[str, float]] = {
    "turned": {"strength": 0.10, "scale_mm": 0.45, "roughness": 0.22},
    "milled": {"strength": 0.12, "scale_mm": 0.90, "roughness": 0.28},
    "brushed": {"strength": 0.14, "scale_mm": 0.12, "roughness": 0.32},
    "blasted": {"strength": 0.18, "scale_mm": 0.10, "roughness": 0.45},
}


@dataclass
class TextureSpec:
    """One sampled texture: the family and the three randomised knobs of the paper, plus pose."""
    family: str = "brushed"
    strength: float = 0.14          # RMS slope of the normal perturbation (dimensionless)
    scale_mm: float = 0.12          # period (turned/milled) or correlation length across (brushed/blasted)
    roughness: float = 0.32         # GGX alpha used by the shader
    angle: float = 0.0              # orientation of lines / feed direction (radians)
    centre_mm: tuple[float, float] = (0.0, 0.0)   # turning centre (turned) or cutter path origin (milled)
    cutter_radius_mm: float = 40.0  # milled: radius of the cutter whose arcs form the marks
    anisotropy: float = 25.0        # brushed: correlation length along / across the brushing


@dataclass
class GeometrySpec:
    """Part shape over the view: a flat region bending into a fillet (curved region) and ending at an
    edge, an optional hole, and a gentle cylindrical tile curvature over everything."""
    edge: bool = True               # a fillet + part edge crosses the view
    edge_angle: float = 0.0         # direction (radians) along which the fillet falls away
    edge_offset_mm: float = 5.0     # where the fillet starts, measured from the view centre along edge_angle
    fillet_radius_mm: float = 8.0   # radius of the curved region
    fillet_max_deg: float = 75.0    # the part ends where the fillet reaches this slope
    hole: bool = False
    hole_centre_mm: tuple[float, float] = (0.0, 0.0)
    hole_radius_mm: float = 3.0
    tile_curvature: float = 0.0     # 1/mm, cylinder across the whole view (magnetic tiles are curved)
    tile_angle: float = 0.0


def _u(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def _logjitter(gen: torch.Generator, centre: float, jitter: float) -> float:
    """A value log-uniform in [centre / (1 + jitter), centre * (1 + jitter)]."""
    return centre * math.exp(_u(gen, -1.0, 1.0) * math.log1p(jitter))


def sample_texture(gen: torch.Generator, size_mm: tuple[float, float], family: str | None = None,
                   families: tuple[str, ...] = FAMILIES, jitter: float = 0.3,
                   defaults: dict[str, dict[str, float]] | None = None) -> TextureSpec:
    """Draw a family (uniformly from ``families`` unless given) and its knobs around the family's
    centre values (log-uniform, +-``jitter``), as the paper randomises roughness, perturbation
    strength and scale around fitted values."""
    if family is None:
        family = families[int(torch.randint(len(families), (), generator=gen))]
    if family not in FAMILY_DEFAULTS:
        raise ValueError(f"unknown texture family {family!r}; choose one of {FAMILIES}")
    d = (defaults or FAMILY_DEFAULTS)[family]
    h, w = size_mm
    spec = TextureSpec(
        family=family,
        strength=_logjitter(gen, d["strength"], jitter),
        scale_mm=_logjitter(gen, d["scale_mm"], jitter),
        roughness=min(0.9, _logjitter(gen, d["roughness"], jitter)),
        angle=_u(gen, 0.0, math.pi),
    )
    if family == "turned":   # turning centre somewhere around the view: rings curve visibly
        r = _u(gen, 0.3, 2.0) * max(h, w)
        a = _u(gen, 0.0, 2 * math.pi)
        spec.centre_mm = (w / 2 + r * math.cos(a), h / 2 + r * math.sin(a))
    elif family == "milled":
        spec.cutter_radius_mm = _u(gen, 0.6, 3.0) * max(h, w)
        spec.centre_mm = (_u(gen, -0.5, 0.5) * w, _u(gen, -0.5, 0.5) * h)
    elif family == "brushed":
        spec.anisotropy = _u(gen, 12.0, 40.0)
    return spec


def sample_geometry(gen: torch.Generator, size_mm: tuple[float, float], p_edge: float = 0.6,
                    p_hole: float = 0.25, max_tile_curvature: float = 0.0) -> GeometrySpec:
    h, w = size_mm
    g = GeometrySpec()
    g.edge = float(torch.rand((), generator=gen)) < p_edge
    g.edge_angle = _u(gen, 0.0, 2 * math.pi)
    g.edge_offset_mm = _u(gen, 0.05, 0.45) * min(h, w)
    g.fillet_radius_mm = _u(gen, 0.15, 0.6) * min(h, w)
    g.fillet_max_deg = _u(gen, 60.0, 85.0)
    g.hole = float(torch.rand((), generator=gen)) < p_hole
    g.hole_centre_mm = (_u(gen, 0.1, 0.9) * w, _u(gen, 0.1, 0.9) * h)
    g.hole_radius_mm = _u(gen, 0.05, 0.15) * min(h, w)
    g.tile_curvature = _u(gen, 0.0, max_tile_curvature)
    g.tile_angle = _u(gen, 0.0, math.pi)
    return g


def grid_mm(shape: tuple[int, int], px_mm: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Surface coordinates (x, y) in mm of every pixel, each [H, W] float32."""
    H, W = shape
    y = torch.arange(H, dtype=torch.float32, device=device) * px_mm
    x = torch.arange(W, dtype=torch.float32, device=device) * px_mm
    return x.expand(H, W), y[:, None].expand(H, W)


def geometry_height(spec: GeometrySpec, shape: tuple[int, int], px_mm: float,
                    device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Height field of the part (mm) and the boolean part mask (False = background), both [H, W]."""
    x, y = grid_mm(shape, px_mm, device)
    H, W = shape
    cx, cy = (W - 1) * px_mm / 2, (H - 1) * px_mm / 2
    height = torch.zeros(shape, dtype=torch.float32, device=device)
    part = torch.ones(shape, dtype=torch.bool, device=device)
    if spec.tile_curvature > 0:
        v = -(x - cx) * math.sin(spec.tile_angle) + (y - cy) * math.cos(spec.tile_angle)
        height = height - 0.5 * spec.tile_curvature * v ** 2
    if spec.edge:
        u = (x - cx) * math.cos(spec.edge_angle) + (y - cy) * math.sin(spec.edge_angle) - spec.edge_offset_mm
        R = spec.fillet_radius_mm
        u_end = R * math.sin(math.radians(spec.fillet_max_deg))
        uc = u.clamp(0.0, u_end)
        height = height - (R - torch.sqrt(R * R - uc * uc))      # circular fillet: slope grows to the edge
        part &= u < u_end
    if spec.hole:
        hx, hy = spec.hole_centre_mm
        part &= (x - hx) ** 2 + (y - hy) ** 2 > spec.hole_radius_mm ** 2
    return height, part


def _filtered_noise(gen: torch.Generator, shape: tuple[int, int], px_mm: float, sigma_u_mm: float,
                    sigma_v_mm: float, angle: float, device=None) -> torch.Tensor:
    """White noise low-passed by an (anisotropic) Gaussian of std sigma_u along ``angle`` and sigma_v
    across it, done as one FFT multiply (periodic boundary)."""
    H, W = shape
    noise = torch.randn(shape, generator=gen, dtype=torch.float32).to(device)
    fy = torch.fft.fftfreq(H, d=px_mm, device=device)[:, None]
    fx = torch.fft.rfftfreq(W, d=px_mm, device=device)[None, :]
    fu = fx * math.cos(angle) + fy * math.sin(angle)
    fv = -fx * math.sin(angle) + fy * math.cos(angle)
    filt = torch.exp(-2 * math.pi ** 2 * ((fu * sigma_u_mm) ** 2 + (fv * sigma_v_mm) ** 2))
    return torch.fft.irfft2(torch.fft.rfft2(noise) * filt, s=shape)


def slopes(height: torch.Tensor, px_mm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """dz/dx, dz/dy by central differences (one-sided at the border), same shape as ``height``."""
    gy, gx = torch.gradient(height, spacing=px_mm)
    return gx, gy


def texture_height(spec: TextureSpec, shape: tuple[int, int], px_mm: float, gen: torch.Generator,
                   device=None) -> torch.Tensor:
    """Bump height field of one texture, scaled so its RMS slope equals ``spec.strength``.

    turned  - concentric rings around ``centre_mm`` with period ``scale_mm`` and a wobbling phase;
    milled  - face-milling arcs: circles of ``cutter_radius_mm`` repeated every ``scale_mm`` of feed;
    brushed - noise stretched ``anisotropy`` times along ``angle`` (long fine streaks);
    blasted - isotropic noise of correlation length ``scale_mm`` with sharpened pits (|noise|).
    """
    x, y = grid_mm(shape, px_mm, device)
    s = spec.scale_mm
    if spec.family == "turned":
        r = torch.sqrt((x - spec.centre_mm[0]) ** 2 + (y - spec.centre_mm[1]) ** 2)
        wobble = _filtered_noise(gen, shape, px_mm, 3 * s, 3 * s, 0.0, device)
        wobble = wobble / wobble.std().clamp_min(1e-8)
        phase = 2 * math.pi * r / s + 0.6 * wobble
        t = torch.sin(phase) + 0.35 * torch.sin(2 * phase + 1.0)      # asymmetric tool-mark profile
        n = _filtered_noise(gen, shape, px_mm, s / 4, s / 4, 0.0, device)
        t = t + 0.3 * n / n.std().clamp_min(1e-8)
    elif spec.family == "milled":
        c, sn = math.cos(spec.angle), math.sin(spec.angle)
        u = (x - spec.centre_mm[0]) * c + (y - spec.centre_mm[1]) * sn          # feed direction
        v = -(x - spec.centre_mm[0]) * sn + (y - spec.centre_mm[1]) * c
        Rc = spec.cutter_radius_mm
        arc = Rc - torch.sqrt((Rc * Rc - v * v).clamp_min(0.0))               # arc sagitta
        t = torch.sin(2 * math.pi * (u + arc) / s)
        n = _filtered_noise(gen, shape, px_mm, s / 3, s / 3, 0.0, device)
        t = t + 0.5 * n / n.std().clamp_min(1e-8)
    elif spec.family == "brushed":
        t = _filtered_noise(gen, shape, px_mm, s * spec.anisotropy, s, spec.angle, device)
    elif spec.family == "blasted":
        t = _filtered_noise(gen, shape, px_mm, s, s, 0.0, device)
        t = -t.abs()                                                          # pits, sharp ridges
    else:
        raise ValueError(f"unknown texture family {spec.family!r}; choose one of {FAMILIES}")
    gx, gy = slopes(t, px_mm)
    rms = torch.sqrt((gx ** 2 + gy ** 2).mean()).clamp_min(1e-12)
    return t * (spec.strength / rms)


@dataclass
class Surface:
    """Everything the shader needs about one part instance.

    ``height`` is the part geometry alone; defects live in their own layer ``dents`` (added to the
    height by the shader) so visibility can be judged on the part's shape, not on a dent's walls."""
    height: torch.Tensor            # [H, W] mm, part geometry
    bump: torch.Tensor              # [H, W] mm, texture height used only through its slopes
    part: torch.Tensor              # [H, W] bool
    px_mm: float
    texture: TextureSpec
    geometry: GeometrySpec
    dents: torch.Tensor | None = None      # [H, W] mm, imprinted defect depth (<= 0), see imprint
    cavity: torch.Tensor | None = None     # [H, W] in [0, 1], how enclosed a groove/pit is (darkens it)
    footprint: torch.Tensor | None = None  # [H, W] bool, where significant defects changed the surface
    defects: list = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.height.shape)

    def with_defects(self, dents, cavity, footprint, defects) -> "Surface":
        return replace(self, dents=dents, cavity=cavity, footprint=footprint, defects=list(defects))


def make_surface(shape: tuple[int, int], px_mm: float, gen: torch.Generator, family: str | None = None,
                 families: tuple[str, ...] = FAMILIES, jitter: float = 0.3, p_edge: float = 0.6,
                 p_hole: float = 0.25, max_tile_curvature: float = 0.0,
                 texture: TextureSpec | None = None, geometry: GeometrySpec | None = None,
                 device=None) -> Surface:
    """Sample (or take) a texture and a geometry and build the surface's height fields."""
    size_mm = (shape[0] * px_mm, shape[1] * px_mm)
    tex = texture or sample_texture(gen, size_mm, family, families, jitter)
    geo = geometry or sample_geometry(gen, size_mm, p_edge, p_hole, max_tile_curvature)
    height, part = geometry_height(geo, shape, px_mm, device)
    bump = texture_height(tex, shape, px_mm, gen, device)
    return Surface(height=height, bump=bump, part=part, px_mm=px_mm, texture=tex, geometry=geo)
