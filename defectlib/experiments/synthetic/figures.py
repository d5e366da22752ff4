"""Notebook 04's result figures: each arm's F1 beside the paper's Table 1 row it stands for, and the
learning curves of the arms that record one (test F1 during pre-training and fine-tuning)."""
from __future__ import annotations

import numpy as np

from ... import papers
from ...models.seg_baselines import LABELS
from .recipe import OUR_ROW, PAPER_ROW


def plot_f1_per_arm(rows: list[dict], archs):
    """Pixel F1 of every arm (bars, ours on MTD) beside the paper's (RealClutch), one panel per
    architecture."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(archs), figsize=(6 * len(archs), 4), squeeze=False)
    for a, arch in zip(axes[0], archs):
        rs = [r for r in rows if r["arch"] == arch]
        x = np.arange(len(rs))
        a.bar(x - 0.2, [r["F1"] for r in rs], 0.4, label="ours (MTD target)")
        a.bar(x + 0.2, [papers.lookup(f"synth/table1/{PAPER_ROW[r['arm']]}/{LABELS[arch]}/F1") for r in rs], 0.4,
              label="paper (RealClutch target)", alpha=0.6)
        a.set_xticks(x, [OUR_ROW[r["arm"]].replace(" (real-only baseline)", "") for r in rs], rotation=35, ha="right")
        a.set(ylabel="pixel F1 (%)", title=LABELS[arch])
        a.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_learning_curves(rows: list[dict]):
    """Test F1 at 0.5 against optimizer steps, fine-tuning curves shifted by their pre-training
    steps; None when no row recorded a curve (``study.curve`` off)."""
    curves = [r for r in rows if r.get("curve")]
    if not curves:
        return None
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for r in curves:
        start = r["pretrain_steps"] if r["arm"].endswith("_ft") else 0
        steps, f1 = zip(*r["curve"])
        ax.plot([start + s for s in steps], f1, "o-", label=f"{LABELS[r['arch']]}: {OUR_ROW[r['arm']]}")
    ax.set(xlabel="optimizer steps (pre-training + fine-tuning)", ylabel="test F1 at 0.5 (%)",
           title="MTD test F1 during training")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
