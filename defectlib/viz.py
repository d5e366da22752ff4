"""Drawing samples: boxes and masks over grey images, and grids of them, for every notebook.

Built on ``torchvision.utils.draw_bounding_boxes`` / ``draw_segmentation_masks``; one fixed colour
per class index, so a class looks the same in every figure of the course.

>>> img = draw_sample(image, target, class_names=NEUDET.CLASSES)   # uint8 [3, H, W]
>>> fig = show_grid([[img, img2], [img3, img4]], row_titles=["real", "stand-in"])
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

#: one colour per class index (1-based for boxes and class-index masks; 0 is background)
PALETTE = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0",
           "#f032e6", "#bcf60c", "#fabebe"]


def color(k: int) -> str:
    return PALETTE[(int(k) - 1) % len(PALETTE)]


def to_uint8(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Grey or RGB image (float in [0, 1] or uint8; ``[H, W]``, ``[1|3, H, W]``) -> uint8 ``[3, H, W]``."""
    t = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    t = t.detach().cpu()
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"expected an image [H, W], [1, H, W] or [3, H, W]; got {tuple(t.shape)}")
    if t.dtype != torch.uint8:
        t = (t.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return t.expand(3, -1, -1).contiguous() if t.shape[0] == 1 else t


def draw_boxes(image, boxes, labels=None, class_names: Sequence[str] | None = None,
               width: int = 2, scores=None) -> torch.Tensor:
    """Boxes ``[N, 4]`` xyxy over ``image``; ``labels`` 1-based, named by ``class_names``, captioned
    with their ``scores`` too when given (detections)."""
    img = to_uint8(image)
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return img
    labels = [1] * len(boxes) if labels is None else [int(v) for v in torch.as_tensor(labels)]
    names = [class_names[v - 1] if class_names else str(v) for v in labels]
    if scores is not None:
        names = [f"{n} {float(sc):.2f}" for n, sc in zip(names, torch.as_tensor(scores))]
    return draw_bounding_boxes(img, boxes, labels=names, colors=[color(v) for v in labels],
                               width=width)


def error_overlay(pred, target) -> np.ndarray:
    """A prediction's errors in colour (OCINet paper's Fig. 6): white = correct defect pixel, red =
    false positive, green = missed, black elsewhere. ``pred`` / ``target`` boolean ``[H, W]``;
    returns uint8 ``[H, W, 3]``."""
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    rgb = np.zeros(pred.shape + (3,), np.uint8)
    rgb[pred & target] = (255, 255, 255)
    rgb[pred & ~target] = (255, 0, 0)
    rgb[~pred & target] = (0, 255, 0)
    return rgb


def draw_masks(image, mask, alpha: float = 0.45) -> torch.Tensor:
    """Overlay a mask: class-index ``[H, W]`` (0 = background), binary ``[1, H, W]`` or
    per-class ``[C, H, W]`` (channel c drawn in the colour of class c + 1)."""
    img = to_uint8(image)
    m = torch.as_tensor(mask).detach().cpu()
    if m.ndim == 2 and m.dtype in (torch.int64, torch.int32, torch.uint8) and m.max() > 1:
        ks = [int(k) for k in torch.unique(m) if k > 0]
        layers, colors = torch.stack([m == k for k in ks]) if ks else None, [color(k) for k in ks]
    else:
        m = m[None] if m.ndim == 2 else m
        layers, colors = m > 0.5, [color(c + 1) for c in range(m.shape[0])]
    if layers is None or not layers.any():
        return img
    return draw_segmentation_masks(img, layers, alpha=alpha, colors=colors)


def draw_sample(image, target, class_names: Sequence[str] | None = None) -> torch.Tensor:
    """A dataset sample with its annotation drawn: ``target`` is a detection dict (``boxes``,
    ``labels``) or a mask tensor (any form :func:`draw_masks` takes)."""
    if isinstance(target, dict):
        return draw_boxes(image, target["boxes"], target.get("labels"), class_names)
    return draw_masks(image, target)


def show_grid(rows: Sequence[Sequence[torch.Tensor]], row_titles: Sequence[str] | None = None,
              titles: Sequence[Sequence[str]] | None = None, width: float = 14.0,
              suptitle: str | None = None):
    """A matplotlib figure with one row per list of images (uint8 ``[3, H, W]`` or anything
    :func:`to_uint8` takes); the height follows the images' aspect ratio. Returns the figure."""
    import matplotlib.pyplot as plt

    rows = [list(r) for r in rows]
    ncols = max(len(r) for r in rows)
    aspect = max(to_uint8(im).shape[1] / to_uint8(im).shape[2] for r in rows for im in r)
    fig, axes = plt.subplots(len(rows), ncols, squeeze=False,
                             figsize=(width, max(1.2, width / ncols * aspect * len(rows) * 1.15)))
    for i, row in enumerate(rows):
        for j in range(ncols):
            ax = axes[i][j]
            ax.set_xticks([]), ax.set_yticks([])
            if j >= len(row):
                ax.axis("off")
                continue
            ax.imshow(to_uint8(row[j]).permute(1, 2, 0).numpy())
            if titles and i < len(titles) and j < len(titles[i]):
                ax.set_title(titles[i][j], fontsize=8)
            if j == 0 and row_titles:
                ax.set_ylabel(row_titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], numeric: Sequence[bool] | None = None) -> str:
    """A Markdown table (``display(Markdown(...))`` renders it in JupyterLab and in executed
    notebooks, and it reflows to the window where fixed-width ``print`` columns wrap). ``rows``
    hold already formatted cells; ``numeric`` right-aligns columns (default: all but the first)."""
    numeric = [i > 0 for i in range(len(header))] if numeric is None else list(numeric)
    if len(numeric) != len(header):
        raise ValueError(f"numeric has {len(numeric)} entries for {len(header)} columns")
    bad = [r for r in rows if len(r) != len(header)]
    if bad:
        raise ValueError(f"a row has {len(bad[0])} cells, the header {len(header)}: {list(bad[0])}")
    cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def seed_spread(rows: Sequence[dict], labels: Sequence[str] | None = None, ax=None, title: str | None = None):
    """A seed spread seen rather than read: each metric's per-seed values (rows of a committed
    ``results/NN/seeds.json``, see ``defectlib.course.seeds``) as one dot per seed, their mean as a black
    bar, and the paper's number, where it printed one in the same unit, as a red cross. Returns
    the axes."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    labels = [r["name"] for r in rows] if labels is None else list(labels)
    if len(labels) != len(rows):
        raise ValueError(f"{len(labels)} labels for {len(rows)} rows")
    data = pd.DataFrame([{"metric": lab, "seed": f"seed {s}", "value": v}
                         for lab, r in zip(labels, rows) for s, v in r["values"].items() if v is not None])
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.6 + 0.5 * len(rows)))
    sns.stripplot(data=data, x="value", y="metric", hue="seed", order=labels, ax=ax, size=7, jitter=False,
                  palette="colorblind")
    paper_label = "paper"
    for i, r in enumerate(rows):
        ax.plot([r["mean"], r["mean"]], [i - 0.3, i + 0.3], "k-", lw=2, label="mean" if i == 0 else None)
        same_unit = r.get("paper_unit", r.get("unit")) == r.get("unit")
        if r.get("paper_value") is not None and same_unit:
            ax.plot(r["paper_value"], i, "rX", ms=9, label=paper_label)
            paper_label = None           # one legend entry
    ax.set(xlabel=rows[0].get("unit") or "value", ylabel="", title=title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax
