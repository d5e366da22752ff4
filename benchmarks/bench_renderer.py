"""Renderer throughput (paper 004 generator): defectlib.synth vs the NumPy/SciPy renderer a user
would write first, same model, same image sizes, measured in one run.

The baseline does the same work per image: an anisotropic filtered-noise texture
(``scipy.ndimage.gaussian_filter``), a fillet geometry, 2 dents and 2 scratches computed over the
whole frame (scratch distance by ``scipy.ndimage.distance_transform_edt`` of the rasterised centre
line), float64 GGX + Lambert shading for an 8-light ring, noise and 8-bit quantisation.
defectlib computes defects in their bounding boxes only, the texture by one FFT multiply, the
shading in float32 torch.

    python benchmarks/bench_renderer.py [--sizes 256 1024] [--threads 1]
Prints images/s for both and the speed-up ratio at each size.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from scipy import ndimage

from defectlib.synth.scene import get_config, render_part


def baseline_render(size: int, rng: np.random.Generator, px: float = 0.1, n_lights: int = 8) -> tuple[np.ndarray, np.ndarray]:
    H = W = size
    y, x = np.mgrid[0:H, 0:W].astype(np.float64) * px
    # texture: brushed streaks, RMS slope 0.14
    tex = ndimage.gaussian_filter(rng.standard_normal((H, W)), sigma=(0.12 / px, 3.0 / px), mode="wrap")
    gy, gx = np.gradient(tex, px)
    tex *= 0.14 / np.sqrt((gx ** 2 + gy ** 2).mean())
    # geometry: fillet across the view
    c = (size - 1) * px / 2
    u = (x - c) - 0.2 * size * px
    R = 0.4 * size * px
    u_end = R * math.sin(math.radians(75))
    height = -(R - np.sqrt(R * R - np.clip(u, 0, u_end) ** 2))
    part = u < u_end
    dents = np.zeros((H, W))
    mask = np.zeros((H, W), bool)
    for _ in range(2):                                        # dents, whole frame
        cx, cy, r = rng.uniform(0, size * px, 2).tolist() + [rng.uniform(0.1, 1.0)]
        rho2 = ((x - cx) ** 2 + (y - cy) ** 2) / (r * r)
        dents -= 0.2 * r * np.clip(1 - rho2, 0, None) ** 2
        mask |= rho2 < 1
    for _ in range(2):                                        # scratches: distance transform of the line
        p0 = rng.uniform(0, size * px, 2)
        ang, L, hw = rng.uniform(0, 2 * np.pi), rng.uniform(1.5, 12), 0.1
        t = np.linspace(0, 1, 400)
        cx = p0[0] + L * t * np.cos(ang) - 0.5 * np.sin(2 * np.pi * t) * np.sin(ang)
        cy = p0[1] + L * t * np.sin(ang) + 0.5 * np.sin(2 * np.pi * t) * np.cos(ang)
        line = np.ones((H, W), bool)
        i, j = np.round(cy / px).astype(int), np.round(cx / px).astype(int)
        ok = (i >= 0) & (i < H) & (j >= 0) & (j < W)
        line[i[ok], j[ok]] = False
        d = ndimage.distance_transform_edt(line) * px
        dents -= 0.1 * np.clip(1 - (d / hw) ** 2, 0, None)
        mask |= d < hw
    z = height + dents
    gy, gx = np.gradient(z, px)
    ty, tx = np.gradient(tex, px)
    n = np.stack([-(gx + tx), -(gy + ty), np.ones_like(gx)])
    n /= np.linalg.norm(n, axis=0, keepdims=True)
    p = np.stack([x, y, z])
    cam = np.array([c, c, 120.0])
    v = cam[:, None, None] - p
    v /= np.linalg.norm(v, axis=0, keepdims=True)
    nv = np.clip((n * v).sum(0), 1e-4, None)
    alpha2, k = 0.32 ** 2, 0.16
    total = np.zeros((H, W))
    for b in np.arange(n_lights) * 2 * np.pi / n_lights:
        P = cam + 35.0 * np.array([np.cos(b), np.sin(b), 0.0])
        d = P[:, None, None] - p
        dist2 = (d * d).sum(0)
        l = d / np.sqrt(dist2)
        nl = np.clip((n * l).sum(0), 0, None)
        h = l + v
        h /= np.linalg.norm(h, axis=0, keepdims=True)
        nh, vh = np.clip((n * h).sum(0), 0, None), np.clip((v * h).sum(0), 0, None)
        D = alpha2 / (np.pi * (nh * nh * (alpha2 - 1) + 1) ** 2)
        F = 0.9 + 0.1 * (1 - vh) ** 5
        G = nv / (nv * (1 - k) + k) * nl / (nl * (1 - k) + k)
        total += (0.08 / np.pi + D * F * G / (4 * np.clip(nl, 1e-4, None) * nv)) * nl * 14400.0 / dist2
    img = 0.6 * (0.03 + total / n_lights) * part + 0.015 * ~part
    img += rng.normal(0, 0.006, (H, W)) + 0.02 * rng.random((H, W))
    return np.round(np.clip(img, 0, 1) * 255) / 255, mask & part


def images_per_s(fn, n: int) -> float:
    fn(0)                                                     # warm-up
    t0 = time.perf_counter()
    for i in range(n):
        fn(i + 1)
    return n / (time.perf_counter() - t0)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (NumPy/SciPy here are single-threaded)")
    ap.add_argument("--n", type=int, default=None, help="images per measurement (default 20 at 256, 3 at 1024)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = {}
    for size in args.sizes:
        n = args.n or max(2, int(20 * (256 / size) ** 2))
        cfg = get_config("clutch", size=size, views_per_part=1, n_dents=(2, 2), n_scratches=(2, 2), p_defective=1.0)
        ours = images_per_s(lambda i: render_part(cfg, seed=0, index=i), n)
        base = images_per_s(lambda i: baseline_render(size, np.random.default_rng(i)), n)
        out[size] = {"defectlib_img_s": ours, "numpy_scipy_img_s": base, "speedup": ours / base}
        print(f"{size}x{size}: defectlib {ours:6.2f} img/s | NumPy/SciPy baseline {base:6.2f} img/s | "
              f"ratio {ours / base:4.2f}x  ({n} images each, {args.threads} torch thread(s))")
    return out


if __name__ == "__main__":
    main()
