"""Procedural grayscale steel-like textures (float32 in [0, 1]), seeded and vectorised.

Hot-rolled strip (NEU, Severstal) looks like band-limited noise stretched along the rolling
direction, plus slow illumination changes; a rail top (NRSD-MN) is a bright polished band between
dark flanks. Both are built from :func:`fractal_noise`: white noise shaped in the Fourier domain by
a power law ``|f|^-beta`` with different frequency scales along x and y (anisotropy).
"""
from __future__ import annotations

import numpy as np


def fractal_noise(shape, rng: np.random.Generator, beta: float = 2.0, stretch: float = 1.0) -> np.ndarray:
    """Power-law (1/f^beta) noise of ``shape`` (H, W), zero mean, unit std.

    ``stretch`` > 1 elongates structures along x (the rolling direction).
    """
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :] * stretch
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2.0)
    amp[0, 0] = 0.0
    spec = (rng.standard_normal((h, w // 2 + 1)) + 1j * rng.standard_normal((h, w // 2 + 1))) * amp
    out = np.fft.irfft2(spec, s=(h, w)).astype(np.float32)
    out -= out.mean()
    return out / (out.std() + 1e-8)


def steel_texture(shape, rng: np.random.Generator, mean: float | None = None, contrast: float | None = None,
                  stretch: float | None = None, grain: float = 0.04) -> np.ndarray:
    """Hot-rolled steel surface: rolled, low-contrast noise + fine grain + slow shading."""
    h, w = shape
    mean = rng.uniform(0.35, 0.6) if mean is None else mean
    contrast = rng.uniform(0.04, 0.09) if contrast is None else contrast
    stretch = rng.uniform(3.0, 8.0) if stretch is None else stretch
    base = fractal_noise(shape, rng, beta=rng.uniform(2.2, 3.0), stretch=stretch)
    fine = rng.standard_normal(shape).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gy, gx = rng.uniform(-0.08, 0.08, 2)
    shading = gy * (yy / h - 0.5) + gx * (xx / w - 0.5)
    img = mean + contrast * base + grain * fine + shading
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def rail_texture(shape, rng: np.random.Generator, vertical: bool = True) -> np.ndarray:
    """Rail-top view: a bright, polished running band (about 55-75 % of the width) between dark flanks."""
    h, w = shape
    across = w if vertical else h
    c = across * rng.uniform(0.45, 0.55)
    half = across * rng.uniform(0.28, 0.38)
    t = np.arange(across, dtype=np.float32)
    edge = 0.04 * across
    band = 1.0 / (1.0 + np.exp(-(t - (c - half)) / edge)) * 1.0 / (1.0 + np.exp((t - (c + half)) / edge))
    profile = 0.12 + rng.uniform(0.45, 0.6) * band * (1.0 - 0.25 * ((t - c) / half) ** 2).clip(0.6, 1.0)
    profile = profile[None, :] if vertical else profile[:, None]
    streak_shape = (h, w)
    streaks = fractal_noise(streak_shape, rng, beta=2.5, stretch=0.08 if vertical else 12.0)
    img = profile * (1.0 + 0.08 * streaks) + 0.03 * rng.standard_normal(streak_shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)
