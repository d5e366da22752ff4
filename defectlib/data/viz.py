"""Draw boxes and overlay masks for notebooks (wraps ``torchvision.utils`` drawing + matplotlib)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

PALETTE = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6"]


def _rgb_uint8(image: torch.Tensor) -> torch.Tensor:
    img = image.detach().cpu().float()
    if img.ndim == 2:
        img = img[None]
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return (img[:3].clamp(0, 1) * 255).round().to(torch.uint8)


def draw_boxes(image, boxes, labels=None, classes=None, scores=None, width: int = 2) -> torch.Tensor:
    """``[3, H, W]`` uint8 with xyxy ``boxes`` drawn, coloured and captioned by class (and score)."""
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    labels = [] if labels is None else [int(x) for x in labels]
    names = [(classes[lab - 1] if classes else str(lab)) for lab in labels] or None
    if names and scores is not None:
        names = [f"{n} {float(s):.2f}" for n, s in zip(names, scores)]
    colors = [PALETTE[(lab - 1) % len(PALETTE)] for lab in labels] or "red"
    return draw_bounding_boxes(_rgb_uint8(image), boxes, labels=names, colors=colors, width=width)


def overlay_mask(image, mask, alpha: float = 0.45, colors=None) -> torch.Tensor:
    """``[3, H, W]`` uint8 with a mask overlaid: ``[C, H, W]`` binary channels or ``[H, W]`` class indices
    (0 = background)."""
    mask = torch.as_tensor(mask).detach().cpu()
    if mask.ndim == 2 or (mask.ndim == 3 and mask.shape[0] == 1 and mask.dtype == torch.int64):
        idx = mask.reshape(mask.shape[-2:])
        n = int(idx.max())
        masks = torch.stack([idx == k for k in range(1, n + 1)]) if n > 0 else torch.zeros((1, *idx.shape), dtype=torch.bool)
    else:
        masks = mask.reshape(-1, *mask.shape[-2:]) > 0.5
    colors = colors or PALETTE[: masks.shape[0]]
    return draw_segmentation_masks(_rgb_uint8(image), masks, alpha=alpha, colors=colors)


def show(images, titles=None, ncols: int = 4, size: float = 3.0):
    """Grid of ``[3, H, W]`` / ``[1, H, W]`` tensors or arrays with titles; returns the figure."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    first = images[0]
    aspect = first.shape[-1] / first.shape[-2]
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols * min(aspect, 3), size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, img in enumerate(images):
        arr = torch.as_tensor(img).detach().cpu()
        arr = arr.permute(1, 2, 0).numpy() if arr.ndim == 3 and arr.shape[0] == 3 else arr.reshape(arr.shape[-2:]).numpy()
        ax = axes.flat[k]
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=255 if arr.dtype == np.uint8 else 1)
        if titles:
            ax.set_title(titles[k], fontsize=9)
    fig.tight_layout()
    return fig
