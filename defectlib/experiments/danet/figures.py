"""Notebook 01's training figure: each phase's mean training losses per epoch (Faster R-CNN's four
terms and their sum) and, last, every phase's learning curve (test AP50 at the evaluation points)."""
from __future__ import annotations

import numpy as np

LOSS_TERMS = ("loss", "loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg")


def learning_curve(history) -> list[tuple[int, float]]:
    """``(step, test AP50)`` at each evaluation point of a :func:`defectlib.engine.fit` history."""
    return [(e["step"], e["test_AP50"]) for e in history.epochs if "test_AP50" in e]


def plot_training(histories: dict):
    """One panel of losses per phase (log scale), then one with every phase's learning curve
    (drawn, never used to choose)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(histories) + 1, figsize=(4.6 * (len(histories) + 1), 3.2), squeeze=False)
    for ax, (ph, h) in zip(axes[0], histories.items()):
        for key in LOSS_TERMS:
            ax.plot([e["step"] for e in h.epochs], [e.get(key, np.nan) for e in h.epochs], "o-", label=key)
        ax.set(title=f"phase {ph}: mean training losses per epoch", xlabel="step", yscale="log")
        ax.legend(fontsize=7)
    curve_ax = axes[0, -1]
    for ph, h in histories.items():
        pts = learning_curve(h)
        if pts:
            curve_ax.plot(*zip(*pts), "o-", label=f"phase {ph}")
    curve_ax.set(title="learning curve: test mAP@0.5", xlabel="step", ylabel="AP50 (%)")
    curve_ax.legend(fontsize=7)
    return fig
