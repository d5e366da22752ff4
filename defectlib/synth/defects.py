"""Defect primitives with exact masks, drawn onto a texture (paper 004's "defects imprinted", in 2-D).

Every primitive takes ``(image, rng, **params)`` -- ``image`` float32 ``[H, W]`` in [0, 1], changed
in place -- and returns the boolean mask of exactly the pixels it changed, so the mask is the
ground truth by construction. Shapes are rasterised with PIL (polylines, ellipses, polygons);
shading is vectorised numpy. Parameters left as ``None`` are drawn from ``rng`` (seeded runs are
deterministic). The look imitates NEU / Severstal / rail defects; it is a teaching stand-in, not a
physical model.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def _canvas(shape) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    im = Image.new("L", (shape[1], shape[0]), 0)
    return im, ImageDraw.Draw(im)


def _mask(im: Image.Image) -> np.ndarray:
    return np.asarray(im) > 0


def _apply(image: np.ndarray, mask: np.ndarray, delta) -> np.ndarray:
    """Add ``delta`` (scalar or field) inside ``mask`` only, then clip; returns ``mask``."""
    if np.isscalar(delta):
        image[mask] += delta
    else:
        image[mask] += delta[mask]
    np.clip(image, 0.0, 1.0, out=image)
    return mask


def _blob(rng, cx, cy, rx, ry, angle, n=18, rough=0.3):
    """Vertices of an irregular closed blob (random radii, smoothed) around (cx, cy)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = 1.0 + rough * rng.standard_normal(n)
    r = (np.roll(r, 1) + r + np.roll(r, -1)) / 3.0
    x, y = rx * r * np.cos(t), ry * r * np.sin(t)
    ca, sa = np.cos(angle), np.sin(angle)
    return list(zip(cx + ca * x - sa * y, cy + sa * x + ca * y))


def _sign(rng, dark_prob=0.75):
    return -1.0 if rng.random() < dark_prob else 1.0


def scratch(image, rng, length=None, width=None, angle=None, curvature=None, contrast=None, start=None):
    """A long thin (slightly curved) line, darker or brighter than the surface."""
    h, w = image.shape
    length = rng.uniform(0.3, 0.9) * max(h, w) if length is None else length
    width = int(rng.integers(1, 4)) if width is None else int(width)
    angle = rng.uniform(0, np.pi) if angle is None else angle
    curvature = rng.uniform(0.0, 0.08) * length if curvature is None else curvature
    contrast = _sign(rng) * rng.uniform(0.12, 0.3) if contrast is None else contrast
    x0, y0 = (rng.uniform(0, w), rng.uniform(0, h)) if start is None else start
    t = np.linspace(0, 1, 40)
    d, n = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    bend = curvature * np.sin(np.pi * t * rng.uniform(0.5, 2.0) + rng.uniform(0, np.pi))
    pts = np.stack([x0 + (t - 0.5) * length * d[0] + bend * n[0], y0 + (t - 0.5) * length * d[1] + bend * n[1]], 1)
    im, draw = _canvas(image.shape)
    draw.line([tuple(p) for p in pts], fill=255, width=width, joint="curve")
    mask = _mask(im)
    return _apply(image, mask, contrast)


def pit(image, rng, center=None, radius=None, depth=None, elongation=None, angle=None):
    """A dent / pit: a small ellipse, dark in the middle with a bright rim on the lit side."""
    h, w = image.shape
    radius = rng.uniform(2.0, 8.0) if radius is None else radius
    depth = rng.uniform(0.15, 0.35) if depth is None else depth
    elongation = rng.uniform(1.0, 2.0) if elongation is None else elongation
    angle = rng.uniform(0, np.pi) if angle is None else angle
    cx, cy = (rng.uniform(radius, w - radius), rng.uniform(radius, h - radius)) if center is None else center
    im, draw = _canvas(image.shape)
    draw.polygon(_blob(rng, cx, cy, radius * elongation, radius, angle, rough=0.1), fill=255)
    mask = _mask(im)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rr = np.clip(((xx - cx) ** 2 + (yy - cy) ** 2) / (radius * elongation) ** 2, 0, 1)
    delta = -depth * (1.0 - rr) + 0.5 * depth * (xx - cx) / (radius * elongation) * rr
    return _apply(image, mask, delta.astype(np.float32))


def inclusion(image, rng, center=None, length=None, width=None, angle=None, contrast=None):
    """A non-metallic inclusion: an irregular streak elongated along the rolling direction."""
    h, w = image.shape
    length = rng.uniform(8.0, 40.0) if length is None else length
    width = rng.uniform(2.0, 6.0) if width is None else width
    angle = rng.normal(0.0, 0.15) + (np.pi / 2 if rng.random() < 0.5 else 0.0) if angle is None else angle
    contrast = _sign(rng, 0.8) * rng.uniform(0.15, 0.35) if contrast is None else contrast
    cx, cy = (rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h) if center is None else center
    im, draw = _canvas(image.shape)
    draw.polygon(_blob(rng, cx, cy, length / 2, width / 2, angle, rough=0.35), fill=255)
    return _apply(image, _mask(im), contrast)


def patch(image, rng, center=None, radius=None, contrast=None, angle=None):
    """A patch: a large irregular region of changed tone (scale, stain), low contrast, soft inside."""
    h, w = image.shape
    radius = rng.uniform(0.08, 0.25) * min(h, w) * (2 if w > 3 * h else 1) if radius is None else radius
    contrast = _sign(rng, 0.85) * rng.uniform(0.12, 0.25) if contrast is None else contrast
    angle = rng.uniform(0, np.pi) if angle is None else angle
    cx, cy = (rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h) if center is None else center
    im, draw = _canvas(image.shape)
    draw.polygon(_blob(rng, cx, cy, radius * rng.uniform(1.0, 2.0), radius, angle, n=24, rough=0.25), fill=255)
    mask = _mask(im)
    tone = contrast * (0.75 + 0.25 * rng.standard_normal(image.shape).astype(np.float32).clip(-1, 1))
    return _apply(image, mask, tone)


def _random_box(rng, shape, lo: float, hi: float) -> tuple[float, float, float, float]:
    """A box whose sides are ``lo..hi`` of the image's, placed uniformly inside it (xyxy)."""
    h, w = shape
    bw, bh = rng.uniform(lo, hi) * w, rng.uniform(lo, hi) * h
    x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    return x0, y0, x0 + bw, y0 + bh


def crazing(image, rng, box=None, n_cracks=None, contrast=None):
    """Crazing: a network of short, thin, jagged cracks filling a region."""
    x0, y0, x1, y1 = _random_box(rng, image.shape, 0.3, 0.9) if box is None else box
    n_cracks = int(rng.integers(15, 40)) if n_cracks is None else n_cracks
    contrast = -rng.uniform(0.08, 0.18) if contrast is None else contrast
    im, draw = _canvas(image.shape)
    seg = 0.06 * max(x1 - x0, y1 - y0) + 3
    for _ in range(n_cracks):
        p = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        a = rng.uniform(0, np.pi) if rng.random() < 0.5 else rng.normal(np.pi / 2, 0.3)
        steps = rng.normal(0, 0.5, int(rng.integers(3, 8))).cumsum() + a
        pts = p + np.cumsum(seg * np.stack([np.cos(steps), np.sin(steps)], 1), 0)
        pts = np.clip(np.vstack([p, pts]), [x0, y0], [x1, y1])
        draw.line([tuple(q) for q in pts], fill=255, width=1)
    return _apply(image, _mask(im), contrast)


def rolled_in_scale(image, rng, box=None, n_flakes=None, contrast=None):
    """Rolled-in scale: a cluster of small flakes pressed in, elongated along the rolling direction."""
    x0, y0, x1, y1 = _random_box(rng, image.shape, 0.2, 0.6) if box is None else box
    n_flakes = int(rng.integers(6, 20)) if n_flakes is None else n_flakes
    contrast = -rng.uniform(0.12, 0.3) if contrast is None else contrast
    im, draw = _canvas(image.shape)
    for _ in range(n_flakes):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        r = rng.uniform(1.5, 4.0)
        draw.polygon(_blob(rng, cx, cy, r * rng.uniform(1.5, 3.0), r, rng.normal(0, 0.2), n=10, rough=0.3),
                     fill=255)
    return _apply(image, _mask(im), contrast)


#: name -> primitive, in NEU-DET's class order where one exists
PRIMITIVES = {
    "crazing": crazing, "inclusion": inclusion, "patches": patch, "pitted_surface": pit,
    "rolled-in_scale": rolled_in_scale, "scratches": scratch,
}


def bbox(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Tight xyxy box (pixel corners, VOC-style exclusive max) of a mask, or None if empty."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
