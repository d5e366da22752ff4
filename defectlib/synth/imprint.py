"""Defects imprinted into the height field: dents and scratches, significant or not.

Paper 004, Sec. 3.3: "The defects are modeled as dents and scratches, imprinted directly into the
object geometry ... Dents are defined by their size, depth and elongation, while scratches are
defined by their depth, length, and curving strength and frequency." Sizes are "comparable to
defects present in real samples": circular dents of diameter 0.2-2 mm and scratches 0.05-0.3 mm
wide (docs/papers.md#synthetic-data). "Additionally, we apply insignificant defects which do not contribute
to the masks, but simulate minor irregularities present in the real data which may resemble defects but
should be ignored."

Profiles have compact support, so a defect's *footprint* (the pixels whose height it changes) is
known exactly; the segmentation mask is the union of the footprints of the significant defects on
the part (the renderer then keeps only what the camera sees). Depths are in mm, like the heights.

- Dent: ellipse with semi-axes ``r*sqrt(e)`` and ``r/sqrt(e)`` (``r`` = diameter/2, ``e`` =
  elongation >= 1, area of the round dent kept), depth profile ``-depth * (1 - rho^2)^2``.
- Scratch: centre line ``p(t) = p0 + L t d + A (sin(2 pi f t + phi) - sin phi) n``, ``t`` in [0, 1]
  (``A`` = curving strength in mm, ``f`` = curving frequency in waves per scratch), a parabolic
  groove ``-depth * (1 - (dist / half_width)^2) * taper(t)`` with ``taper = 0.35 + 0.65 sin(pi t)``.
  A groove narrower than the pixel grid would vanish between pixel centres, so the half-width is
  raised to at least ``min_half_width_px`` pixels and the depth lowered to keep the cross-section.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .heightfield import Surface

# The paper's size ranges (mm) and ours where the paper gives none (marked "ours").
DENT_DIAMETER_MM = (0.2, 2.0)          # paper
SCRATCH_WIDTH_MM = (0.05, 0.3)         # paper
DENT_DEPTH_RATIO = (0.05, 0.25)        # ours: depth / diameter
DENT_ELONGATION = (1.0, 3.0)           # ours
SCRATCH_LENGTH_MM = (1.5, 12.0)        # ours
SCRATCH_DEPTH_RATIO = (0.3, 1.5)       # ours: depth / width
SCRATCH_CURVE_MM = (0.0, 1.5)          # ours: curving strength (amplitude of the sideways wave)
SCRATCH_CURVE_FREQ = (0.2, 1.5)        # ours: curving frequency (waves per scratch)
# Insignificant irregularities: small and shallow, changing the image but never the mask (ours).
MINOR_DENT_DIAMETER_MM = (0.1, 0.8)
MINOR_DENT_DEPTH_RATIO = (0.005, 0.02)
MINOR_SCRATCH_WIDTH_MM = (0.02, 0.08)
MINOR_SCRATCH_DEPTH_RATIO = (0.02, 0.08)


@dataclass
class Dent:
    x_mm: float
    y_mm: float
    diameter_mm: float
    depth_mm: float
    elongation: float = 1.0
    angle: float = 0.0
    significant: bool = True


@dataclass
class Scratch:
    x_mm: float                 # start point
    y_mm: float
    angle: float                # main direction
    length_mm: float
    width_mm: float
    depth_mm: float
    curve_mm: float = 0.0       # curving strength
    curve_freq: float = 0.5     # curving frequency
    phase: float = 0.0
    significant: bool = True

    def centreline(self, n: int) -> torch.Tensor:
        """``n`` points (mm) along the centre line, [n, 2] as (x, y)."""
        t = torch.linspace(0.0, 1.0, n)
        c, s = math.cos(self.angle), math.sin(self.angle)
        side = self.curve_mm * (torch.sin(2 * math.pi * self.curve_freq * t + self.phase) - math.sin(self.phase))
        x = self.x_mm + self.length_mm * t * c - side * s
        y = self.y_mm + self.length_mm * t * s + side * c
        return torch.stack([x, y], dim=1)


def _u(gen, lo, hi):
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def _loguniform(gen, lo, hi):
    return math.exp(_u(gen, math.log(lo), math.log(hi)))


def _where(gen, part: torch.Tensor, px_mm: float) -> tuple[float, float]:
    """A point (mm) drawn uniformly over the part's pixels (anywhere if the part is empty)."""
    flat = part.reshape(-1)
    for _ in range(64):                      # rejection sampling: cheap when the part covers the view
        k = int(torch.randint(flat.numel(), (), generator=gen))
        if flat[k]:
            break
    else:
        w = flat.float() if flat.any() else torch.ones(flat.numel())
        k = int(torch.multinomial(w, 1, generator=gen))
    W = part.shape[1]
    return ((k % W) + _u(gen, -0.5, 0.5)) * px_mm, ((k // W) + _u(gen, -0.5, 0.5)) * px_mm


def sample_dent(gen, part, px_mm, significant: bool = True) -> Dent:
    dia_rng, depth_rng = (DENT_DIAMETER_MM, DENT_DEPTH_RATIO) if significant else \
        (MINOR_DENT_DIAMETER_MM, MINOR_DENT_DEPTH_RATIO)
    x, y = _where(gen, part, px_mm)
    d = _loguniform(gen, *dia_rng)
    return Dent(x, y, d, d * _u(gen, *depth_rng), _u(gen, *DENT_ELONGATION),
                _u(gen, 0, math.pi), significant)


def sample_scratch(gen, part, px_mm, significant: bool = True) -> Scratch:
    w_rng, depth_rng = (SCRATCH_WIDTH_MM, SCRATCH_DEPTH_RATIO) if significant else \
        (MINOR_SCRATCH_WIDTH_MM, MINOR_SCRATCH_DEPTH_RATIO)
    x, y = _where(gen, part, px_mm)
    w = _loguniform(gen, *w_rng)
    length = _loguniform(gen, *SCRATCH_LENGTH_MM) * (1.0 if significant else 0.4)
    return Scratch(x, y, _u(gen, 0, 2 * math.pi), length, w, w * _u(gen, *depth_rng),
                   _u(gen, *SCRATCH_CURVE_MM) * min(1.0, length / 6), _u(gen, *SCRATCH_CURVE_FREQ),
                   _u(gen, 0, 2 * math.pi), significant)


def sample_defects(gen: torch.Generator, surface: Surface, n_dents: int, n_scratches: int,
                   n_minor: int = 0) -> list:
    """``n_dents`` + ``n_scratches`` significant defects and ``n_minor`` insignificant ones (half
    dents, half scratches), centred on the part."""
    out = [sample_dent(gen, surface.part, surface.px_mm) for _ in range(n_dents)]
    out += [sample_scratch(gen, surface.part, surface.px_mm) for _ in range(n_scratches)]
    for i in range(n_minor):
        fn = sample_dent if i % 2 == 0 else sample_scratch
        out.append(fn(gen, surface.part, surface.px_mm, significant=False))
    return out


def _box(cx, cy, rx, ry, px_mm, shape):
    """Pixel bounds (i0, i1, j0, j1) covering the mm rectangle centre +- radius, clipped to the image."""
    H, W = shape
    j0 = max(0, int(math.floor((cx - rx) / px_mm)) - 1)
    j1 = min(W, int(math.ceil((cx + rx) / px_mm)) + 2)
    i0 = max(0, int(math.floor((cy - ry) / px_mm)) - 1)
    i1 = min(H, int(math.ceil((cy + ry) / px_mm)) + 2)
    return i0, i1, j0, j1


def _local_grid(i0, i1, j0, j1, px_mm):
    y = torch.arange(i0, i1, dtype=torch.float32) * px_mm
    x = torch.arange(j0, j1, dtype=torch.float32) * px_mm
    return x[None, :].expand(i1 - i0, j1 - j0), y[:, None].expand(i1 - i0, j1 - j0)


def dent_profile(d: Dent, shape, px_mm, min_half_width_px: float = 0.75):
    """(box, depth [h, w] <= 0, inside [h, w] bool, cavity [h, w]) of one dent, in its bounding box."""
    r = d.diameter_mm / 2
    a = max(r * math.sqrt(d.elongation), min_half_width_px * px_mm)
    b = max(r / math.sqrt(d.elongation), min_half_width_px * px_mm)
    depth = d.depth_mm * (r * r) / (a * b)              # same volume if the footprint was widened
    box = _box(d.x_mm, d.y_mm, a, a, px_mm, shape)
    x, y = _local_grid(*box, px_mm)
    c, s = math.cos(d.angle), math.sin(d.angle)
    u = (x - d.x_mm) * c + (y - d.y_mm) * s
    v = -(x - d.x_mm) * s + (y - d.y_mm) * c
    rho2 = (u / a) ** 2 + (v / b) ** 2
    inside = rho2 < 1.0
    prof = ((1.0 - rho2).clamp_min(0.0)) ** 2
    cavity = prof * min(1.0, 2.0 * d.depth_mm / d.diameter_mm * 4.0)
    return box, -depth * prof, inside, cavity


def scratch_profile(sc: Scratch, shape, px_mm, min_half_width_px: float = 0.75):
    """(box, depth, inside, cavity) of one scratch: distance to the centre polyline, vectorised over
    the bounding-box pixels x polyline segments."""
    hw = max(sc.width_mm / 2, min_half_width_px * px_mm)
    depth = sc.depth_mm * (sc.width_mm / 2) / hw
    n = int(min(256, max(8, math.ceil(sc.length_mm / px_mm / 2)))) + 1
    pts = sc.centreline(n)                                   # [n, 2]
    lo, hi = pts.min(0).values, pts.max(0).values
    cx, cy = float(lo[0] + hi[0]) / 2, float(lo[1] + hi[1]) / 2
    box = _box(cx, cy, float(hi[0] - lo[0]) / 2 + hw, float(hi[1] - lo[1]) / 2 + hw, px_mm, shape)
    x, y = _local_grid(*box, px_mm)
    p = torch.stack([x.reshape(-1), y.reshape(-1)], 1)       # [M, 2]
    a, seg = pts[:-1], pts[1:] - pts[:-1]                    # [S, 2]
    seg_len2 = (seg ** 2).sum(1).clamp_min(1e-12)
    rel = p[:, None, :] - a[None]                            # [M, S, 2]
    tau = ((rel * seg[None]).sum(-1) / seg_len2).clamp(0.0, 1.0)
    dist2 = ((rel - tau[..., None] * seg[None]) ** 2).sum(-1)
    best, k = dist2.min(1)
    t = (k.float() + tau.gather(1, k[:, None])[:, 0]) / (n - 1)   # arc parameter of the nearest point
    dist = best.sqrt().reshape(x.shape)
    t = t.reshape(x.shape)
    inside = dist < hw
    taper = 0.35 + 0.65 * torch.sin(math.pi * t)
    prof = (1.0 - (dist / hw) ** 2).clamp_min(0.0) * taper
    cavity = prof * min(1.0, sc.depth_mm / sc.width_mm)
    return box, -depth * prof, inside, cavity


def imprint(surface: Surface, defects: list, min_half_width_px: float = 0.75) -> Surface:
    """Imprint ``defects`` into ``surface`` (on the part only) and return the surface with its defect
    depth layer, cavity map and the exact footprint of the significant defects."""
    shape = surface.shape
    px = surface.px_mm
    dz = torch.zeros(shape, dtype=torch.float32)
    cavity = torch.zeros(shape, dtype=torch.float32)
    foot = torch.zeros(shape, dtype=torch.bool)
    for d in defects:
        fn = dent_profile if isinstance(d, Dent) else scratch_profile
        (i0, i1, j0, j1), depth, inside, cav = fn(d, shape, px, min_half_width_px)
        if i1 <= i0 or j1 <= j0:
            continue
        on = surface.part[i0:i1, j0:j1]
        dz[i0:i1, j0:j1] += depth * on
        cavity[i0:i1, j0:j1] = torch.maximum(cavity[i0:i1, j0:j1], cav * on)
        if d.significant:
            foot[i0:i1, j0:j1] |= inside & on
    return surface.with_defects(dz, cavity.clamp_(0.0, 1.0), foot, defects)
