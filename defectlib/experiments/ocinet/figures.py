"""Figures for notebook 03: the variants' training losses and learning curves; what CCIM, CSIM and
CPIM do to the features, Fig. 6-style maps, and fixed thresholds against Otsu (threshold curves).

The feature figures take what :func:`~defectlib.models.ocinet.capture_attention` and
:meth:`OCINet.forward_features` return for ONE image (batch index 0) and return a matplotlib figure.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from defectlib.metrics import otsu_binarize
from defectlib.models.ocinet import VARIANTS
from defectlib.viz import error_overlay

STAGES = ("basic", "ccim", "csim", "cpim", "final")
STAGE_TITLES = {"basic": "f_b (PVT + conv)", "ccim": "after CCIM", "csim": "after CSIM",
                "cpim": "after CPIM", "final": "to the reasoner"}


def curve_points(history) -> tuple[str, list[tuple[int, float]]] | None:
    """The learning curve of a :func:`defectlib.engine.fit` history (profiles with
    ``curve_every``): the measured name and its ``(step, value)`` points, or None."""
    if not history.curve:
        return None
    name = [k for k in history.curve[0] if k not in ("step", "epoch")][0]
    return name, [(c["step"], c[name]) for c in history.curve]


def plot_training(runs: dict):
    """Each variant's loss (Eq. 1) per step and, where recorded, its learning curve (test IoU
    during training: drawn, never used to choose)."""
    fig, (ax, cax) = plt.subplots(1, 2, figsize=(12, 3.2))
    for i, (key, r) in enumerate(runs.items()):
        h, label = r["history"], VARIANTS[key].label
        ax.plot([s["step"] for s in h.steps], [s["loss"] for s in h.steps], f"C{i}", alpha=0.7, label=label)
        curve = curve_points(h)
        if curve:
            name, pts = curve
            cax.plot(*zip(*pts), f"C{i}o-", label=label)
            cax.set(xlabel="optimizer step", ylabel=f"{name} (%)", title="learning curve (drawn, never used to choose)")
            cax.legend(fontsize=8)
    ax.set(xlabel="optimizer step", ylabel="loss, Eq. (1)")
    ax.legend()
    if not cax.lines:
        cax.remove()
    return fig


def _np(t) -> np.ndarray:
    return t.detach().float().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def plot_feature_energy(image, feats: dict, levels: Sequence[int] = (0, 1)):
    """Mean |activation| over channels of each pyramid stage (rows: levels, columns: stages)."""
    stages = [s for s in STAGES if s in feats]
    fig, axes = plt.subplots(len(levels), len(stages) + 1, figsize=(2.2 * (len(stages) + 1), 2.3 * len(levels)),
                             squeeze=False)
    for r, lvl in enumerate(levels):
        axes[r, 0].imshow(_np(image).squeeze(), cmap="gray")
        axes[r, 0].set_title("input" if r == 0 else "")
        axes[r, 0].set_ylabel(f"level {lvl + 1}")
        for c, s in enumerate(stages, start=1):
            axes[r, c].imshow(_np(feats[s][lvl][0]).__abs__().mean(0), cmap="magma")
            if r == 0:
                axes[r, c].set_title(STAGE_TITLES[s], fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("mean |feature| per stage (brighter = stronger response)")
    fig.tight_layout()
    return fig


def channel_weights(att: dict, pair: str = "pair12", stage: str = "ccim") -> np.ndarray:
    """CCIM's channel weights of one pair as ``[2, c]``: row 0 the high-res level, row 1 the low-res."""
    gates = sorted(k for k in att if k.startswith(f"{stage}.{pair}.units.") and k.endswith("gate"))
    hi, lo = [], []
    for k in gates:
        ca = _np(att[k][0]).reshape(-1)
        hi.append(ca[: len(ca) // 2])
        lo.append(ca[len(ca) // 2:])
    return np.stack([np.concatenate(hi), np.concatenate(lo)])


def plot_channel_weights(att: dict, pairs=("pair12", "pair23", "pair34")):
    """Heat maps of CCIM's channel weights ca (sigmoid outputs) for each pair of levels."""
    fig, axes = plt.subplots(len(pairs), 1, figsize=(10, 1.7 * len(pairs) + 0.4), squeeze=False,
                             layout="constrained", sharex=True)
    for ax, pair in zip(axes[:, 0], pairs):
        w = channel_weights(att, pair)
        im = ax.imshow(w, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        lv = {"pair12": (1, 2), "pair23": (2, 3), "pair34": (3, 4)}[pair]
        ax.set_yticks([0, 1], [f"f^{lv[0]}", f"f^{lv[1]}"])
        for g in range(1, 4):
            ax.axvline(g * w.shape[1] / 4 - 0.5, color="red", lw=1.5)
        ax.set_title(f"CCIM^{lv[0]}: channel weights of both scales; red lines separate the 4 groups",
                     fontsize=9)
    axes[-1, 0].set_xlabel("channel")
    fig.colorbar(im, ax=axes[:, 0].tolist(), fraction=0.02)
    return fig


def spatial_maps(att: dict, pair: str = "pair12") -> tuple[np.ndarray, np.ndarray]:
    """CSIM's attention maps of one pair, re-assembled: (high-res map, map of the upsampled low-res)."""
    halves = [_np(att[f"csim.{pair}.units.{i}.attention.gate"][0, 0]) for i in range(2)]
    h = halves[0].shape[0] // 2
    return (np.concatenate([halves[0][:h], halves[1][:h]]), np.concatenate([halves[0][h:], halves[1][h:]]))


def plot_spatial_attention(image, att: dict, pairs=("pair12", "pair23", "pair34")):
    """CSIM's spatial attention sa for both scales of each pair (top and bottom halves re-joined)."""
    fig, axes = plt.subplots(1, 1 + 2 * len(pairs), figsize=(2.1 * (1 + 2 * len(pairs)), 2.4))
    axes[0].imshow(_np(image).squeeze(), cmap="gray")
    axes[0].set_title("input", fontsize=9)
    for i, pair in enumerate(pairs):
        hi, lo = spatial_maps(att, pair)
        lv = {"pair12": (1, 2), "pair23": (2, 3), "pair34": (3, 4)}[pair]
        for j, (m, name) in enumerate(((hi, lv[0]), (lo, lv[1]))):
            ax = axes[1 + 2 * i + j]
            ax.imshow(m, cmap="inferno", vmin=0, vmax=1)
            ax.axhline(m.shape[0] / 2 - 0.5, color="c", lw=0.8)
            ax.set_title(f"CSIM^{lv[0]}: sa on f^{name}", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_pixel_attention(att: dict, pair: str = "pair12", channels: Sequence[int] = (0, 1, 2)):
    """CPIM's per-channel attention A1 (high-res branch) and A2 (low-res branch) for a few channels."""
    a1, a2 = (_np(a[0]) for a in att[f"cpim.{pair}.pixel_attention"])
    fig, axes = plt.subplots(2, len(channels), figsize=(2.4 * len(channels), 4.8), squeeze=False)
    for j, c in enumerate(channels):
        for i, (a, name) in enumerate(((a1, "A1 = softmax_v(A)^T"), (a2, "A2 = softmax_u(A)"))):
            axes[i, j].imshow(a[c], cmap="viridis")
            axes[i, j].set_title(f"channel {c}: {name}", fontsize=8)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
    fig.suptitle(f"CPIM ({pair}): column-to-column attention, one w x w matrix per channel", fontsize=9)
    fig.tight_layout()
    return fig


def plot_qualitative(samples: dict[str, list], max_images: int = 4):
    """Fig. 6 colouring for several models: ``samples[model] = [(image, prob, mask), ...]`` (the
    same test images for every model). Columns: image, ground truth, one map per model: white =
    correct, red = false positive, green = missed (Otsu-binarised, as evaluated)."""
    names = list(samples)
    n = min(max_images, min(len(v) for v in samples.values()))
    fig, axes = plt.subplots(n, 2 + len(names), figsize=(2.2 * (2 + len(names)), 2.2 * n), squeeze=False)
    for r in range(n):
        image, _, mask = samples[names[0]][r]
        axes[r, 0].imshow(image, cmap="gray")
        axes[r, 1].imshow(mask > 0.5, cmap="gray")
        for c, name in enumerate(names, start=2):
            _, prob, mask_c = samples[name][r]
            pred = otsu_binarize(prob[None].astype(np.float32))[0]
            axes[r, c].imshow(error_overlay(pred, mask_c > 0.5))
            if r == 0:
                axes[r, c].set_title(name, fontsize=9)
    axes[0, 0].set_title("image", fontsize=9)
    axes[0, 1].set_title("ground truth", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("white: correct, red: false positive, green: missed (as in the paper's Fig. 6)", fontsize=9)
    fig.tight_layout()
    return fig


#: the scores of a threshold curve, their labels and colours
_CURVE_LINES = (("pixel_accuracy", "pixel acc. (Eq. 5)", "C0"), ("PA", "authors' \"PA\" (recall)", "C1"),
                ("IoU", "IoU (Eq. 7)", "C2"))


def plot_threshold_curves(curves: dict, title: str = ""):
    """Fixed thresholds against per-image Otsu, one panel per test set: ``curves[test]`` is a
    :func:`~defectlib.experiments.ocinet.threshold_curve` result. Solid lines: the mean score of
    ``prob >= t`` at each fixed ``t``; dashed: the protocol's score (min-max + Otsu per image);
    ticks along the bottom: where each image's Otsu threshold falls on the probability scale."""
    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.3), squeeze=False)
    for ax, (test, c) in zip(axes[0], curves.items()):
        for key, label, colour in _CURVE_LINES:
            ax.plot(c["thresholds"], c["fixed"][key], colour, marker=".", label=f"{label}, fixed t")
            ax.axhline(c["otsu"][key], color=colour, ls="--", lw=1, label=f"{label}, Otsu per image")
        ax.plot(c["otsu_thresholds"], np.zeros(len(c["otsu_thresholds"])), "k|", ms=12, alpha=0.5,
                label="each image's Otsu threshold")
        ax.set(xlabel="threshold t on the sigmoid probability (mask: prob >= t)", ylabel="mean over images (%)",
               xlim=(0, 1), ylim=(-3, 103), title=f"{test} ({c['n_images']} images)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    return fig
