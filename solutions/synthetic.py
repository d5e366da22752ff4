"""Notebook 04 (synthetic data, paper 004): solutions to the exercises at the end of the notebook."""
from __future__ import annotations

import numpy as np
import torch

from defectlib.data.sampling import exposure_stack, intensity_biased_crop, random_crop_box
from defectlib.synth import imprint as I
from defectlib.synth.heightfield import make_surface
from defectlib.synth.render import View, render


def visible_mask(surface, defects, view: View | None = None, min_change: float = 4 / 255) -> torch.Tensor:
    """Exercise 1 (the paper's Sec. 6 caveat): the significant defects' mask [H, W] kept only where
    the defects change the rendered (noise-free) image by more than ``min_change``."""
    view = view or View()
    image, mask = render(I.imprint(surface, defects), view)
    clean, _ = render(I.imprint(surface, [d for d in defects if not d.significant]), view)
    return mask[0].bool() & ((image - clean).abs()[0] > min_change)


def dent_visibility(depths_mm=(0.002, 0.01, 0.05, 0.25), n: int = 128, seed: int = 0) -> list[tuple[float, int, int]]:
    """Exercise 1: ``(depth, mask pixels, visible mask pixels)`` of one 1.5 mm dent of each depth
    on a flat brushed part, seen from straight above."""
    out = []
    for depth in depths_mm:
        gen = torch.Generator().manual_seed(seed)
        surf = make_surface((n, n), 0.1, gen, family="brushed", p_edge=0.0, p_hole=0.0)
        dent = I.Dent(n * 0.05, n * 0.05, diameter_mm=1.5, depth_mm=depth)
        _, mask = render(I.imprint(surf, [dent]), View())
        out.append((depth, int(mask.sum()), int(visible_mask(surf, [dent]).sum())))
    return out


def crop_hit_rate(image: torch.Tensor, size=(64, 64), n: int = 200, threshold: float = 10 / 255,
                  seed: int = 0) -> dict[str, float]:
    """Exercise 2: the share of ``n`` crops that show any of the part (a pixel brighter than
    ``threshold``), uniform random crops against intensity-biased ones (paper Sec. 4.2)."""
    rng = np.random.default_rng(seed)
    ch, cw = size
    uniform = biased = 0
    for _ in range(n):
        y, x = random_crop_box(image.shape[-2:], size, rng)
        uniform += bool((image[..., y:y + ch, x:x + cw] > threshold).any())
        biased += bool((intensity_biased_crop(image, size=size, threshold=threshold, rng=rng) > threshold).any())
    return {"uniform": uniform / n, "intensity-biased": biased / n}


def stacked(value: float, exponents=(0, 1, 2)) -> list[float]:
    """Exercise 3: the exposure-stacked channels of one pixel of intensity ``value``."""
    return exposure_stack(torch.full((1, 1, 1), float(value)), exponents).flatten().tolist()
