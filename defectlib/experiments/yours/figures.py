"""Figures for notebook 05: the folder (a gallery, the defect-pixel shares, the split), the training
(losses and validation learning curves), the threshold curves on the validation images, and the
worst test images of the picked model."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ...viz import draw_masks, error_overlay
from .recipe import LABELS


def _off(axes) -> None:
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])


def gallery_indices(shares: np.ndarray, n: int) -> list[int]:
    """``n`` images to show: defective ones spread from the smallest defect share to the largest,
    and one clean image when the folder has one."""
    defective = np.flatnonzero(shares > 0)
    clean = np.flatnonzero(shares == 0)
    k = n - (1 if len(clean) and n > 1 else 0)
    order = defective[np.argsort(shares[defective], kind="stable")]
    picked = order[np.unique(np.linspace(0, len(order) - 1, k).round().astype(int))].tolist() if len(order) else []
    return picked + clean[:n - len(picked)].tolist()


def plot_gallery(look, n: int = 8):
    """``n`` images of the folder with their masks drawn over them (defect share in the title)."""
    idx = gallery_indices(look.shares, n)
    cols = min(4, max(1, len(idx)))
    rows = -(-len(idx) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    for ax, i in zip(axes.flat, idx):
        image, mask = look.folder[i]
        ax.imshow(draw_masks(image, mask).permute(1, 2, 0).numpy())
        ax.set_title(f"{str(look.folder.ids[i])[:16]}: {100 * look.shares[i]:.2f} %", fontsize=8)
    _off(axes)
    for ax in axes.flat[len(idx):]:
        ax.remove()
    fig.suptitle("the folder: masks drawn over their images (defect-pixel share in %)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_data(data):
    """The defect-pixel share of every defective image (a histogram, log scale) and the split."""
    shares = data.look.shares
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw={"width_ratios": [2, 1]})
    d = shares[shares > 0]
    if len(d):
        ax.hist(100 * d, bins=np.logspace(np.log10(100 * d.min()), np.log10(100 * d.max()) + 1e-9, 30))
        ax.set_xscale("log")
    ax.set(xlabel="defect pixels per image (%)", ylabel="images",
           title=f"{len(d)} defective, {int((shares == 0).sum())} with an empty mask")
    defective = data.look.defective
    names = list(data.parts)
    bx.bar(names, [int(defective[data.parts[p]].sum()) for p in names], label="defective")
    bx.bar(names, [int((~defective[data.parts[p]]).sum()) for p in names],
           bottom=[int(defective[data.parts[p]].sum()) for p in names], label="clean")
    bx.set(ylabel="images", title="the split")
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_training(runs: dict):
    """Each model's training loss per step and its validation IoU (at 0.5) during training: a
    learning curve, drawn, never used to choose."""
    fig, (ax, cx) = plt.subplots(1, 2, figsize=(12, 3.2))
    for i, (key, r) in enumerate(runs.items()):
        h = r["history"]
        ax.plot([s["step"] for s in h.steps], [s["loss"] for s in h.steps], f"C{i}", alpha=0.7, label=LABELS[key])
        pts = [(c["step"], c["val/IoU@0.5"]) for c in h.curve if "val/IoU@0.5" in c]
        if pts:
            cx.plot(*zip(*pts), f"C{i}o-", label=LABELS[key])
    ax.set(xlabel="optimizer step", ylabel="training loss", title="loss (each model its own)")
    cx.set(xlabel="optimizer step", ylabel="validation IoU at 0.5 (%)", title="learning curve (drawn, never used)")
    for a in (ax, cx):
        if a.lines:
            a.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_threshold_curves(rows: dict):
    """Validation IoU and pixel F1 at every fixed threshold, per model; the chosen one marked."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.3))
    for i, (key, r) in enumerate((k, r) for k, r in rows.items() if r.get("curve")):
        c = r["curve"]
        for ax, m in zip(axes, ("IoU", "F1")):
            ax.plot(c["thresholds"], c[m], f"C{i}.-", label=LABELS[key])
            ax.axvline(r["threshold"], color=f"C{i}", ls=":", lw=1)
    for ax, m in zip(axes, ("mean IoU per image", "pixel F1, pooled")):
        ax.set(xlabel="threshold on the probability", ylabel=f"validation {m} (%)", xlim=(0, 1))
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle("the threshold is chosen on the validation images (dotted: each model's choice)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_worst(scores: dict, label: str, threshold: float):
    """The lowest-IoU test images of one model: image, ground truth, its errors (white correct, red
    false positive, green missed)."""
    worst = scores["worst"]
    fig, axes = plt.subplots(len(worst), 3, figsize=(7, 2.3 * len(worst)), squeeze=False)
    for row, (image, prob, mask, iou) in zip(axes, worst):
        row[0].imshow(np.asarray(image).reshape(mask.shape), cmap="gray", vmin=0, vmax=1)
        row[1].imshow(mask, cmap="gray")
        row[2].imshow(error_overlay(prob >= threshold, mask))
        row[0].set_ylabel(f"IoU {iou:.0f} %", fontsize=8)
    for ax, t in zip(axes[0], ("image", "ground truth", f"{label} at {threshold:.2f}")):
        ax.set_title(t, fontsize=9)
    _off(axes)
    fig.suptitle(f"the {len(worst)} lowest-IoU test images of {label}: white correct, red false positive, "
                 "green missed", fontsize=9)
    fig.tight_layout()
    return fig
