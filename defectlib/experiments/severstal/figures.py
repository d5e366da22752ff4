"""Notebook 02's figures: the training stages' losses beside their learning curve, the gate's
learning curve, the gate's confusion matrices beside the paper's Tables 2 / 3, and the Dice of each
prediction of the pipeline."""
from __future__ import annotations

import numpy as np


def plot_stages(stages, title: str):
    """Losses (left) and the learning curve, test mean IoU after every epoch (right), of the
    ``[(name, StageResult)]`` of :func:`.recipe.train_unet`, the stages one after another."""
    import matplotlib.pyplot as plt
    fig, (ax, cax) = plt.subplots(1, 2, figsize=(12, 3.2))
    offset = 0
    for (name, s), colour in zip(stages, ("C0", "C1")):
        steps = [offset + r["step"] for r in s.history.steps]
        epochs = [offset + r["step"] for r in s.history.epochs]
        ax.plot(steps, [r["loss"] for r in s.history.steps], colour, alpha=0.6, label=f"{name} (train)")
        ax.plot(epochs, [r.get("val_loss", np.nan) for r in s.history.epochs], colour + "o--", label=f"{name} (val)")
        cax.plot(epochs, [r.get("test_mIoU", np.nan) for r in s.history.epochs], colour + "o-", label=name)
        offset = steps[-1] if steps else offset
    ax.set(xlabel="optimizer step", ylabel="loss", title=title)
    ax.legend(fontsize=8)
    cax.set(xlabel="optimizer step", ylabel="mean IoU (%)", title="learning curve: test mean IoU at 0.5")
    cax.legend(fontsize=8)
    return fig


def plot_gate_stage(stage, title: str):
    """The gate's BCE (train per step, validation per epoch) and its learning curve, the test ROC
    AUC after every epoch (a coin scores 0.5)."""
    import matplotlib.pyplot as plt
    h = stage.history
    fig, (ax, cax) = plt.subplots(1, 2, figsize=(12, 3.2))
    ax.plot([r["step"] for r in h.steps], [r["loss"] for r in h.steps], "C0", alpha=0.6, label="train")
    ax.plot([r["step"] for r in h.epochs], [r.get("val_loss", np.nan) for r in h.epochs], "C0o--", label="val")
    ax.set(xlabel="optimizer step", ylabel="BCE", title=title)
    ax.legend(fontsize=8)
    cax.plot([r["step"] for r in h.epochs], [r.get("test_AUC", np.nan) for r in h.epochs], "C1o-", label="gate")
    cax.axhline(0.5, color="grey", ls=":", label="a coin")
    cax.set(xlabel="optimizer step", ylabel="ROC AUC", title="learning curve: test ROC AUC", ylim=(0.3, 1.0))
    cax.legend(fontsize=8)
    return fig


def plot_confusions(panels):
    """``[(title, 2x2 counts)]`` side by side, rows = real (defective, clean), columns =
    predicted, coloured by the share of each real row."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for ax, (title, m) in zip(axes[0], panels):
        m = np.asarray(m)
        ax.imshow(m / np.maximum(m.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
        for (r, c), v in np.ndenumerate(m):
            ax.text(c, r, int(v), ha="center", va="center", fontsize=12)
        ax.set_xticks([0, 1], ["defective", "clean"])
        ax.set_yticks([0, 1], ["defective", "clean"])
        ax.set_xlabel("predicted")
        ax.set_title(title, fontsize=9)
    axes[0, 0].set_ylabel("real")
    fig.tight_layout()
    return fig


def plot_dice(table: dict, title: str):
    """Both Dice definitions of each prediction (``name -> {"kaggle", "author"}``), the dotted
    line at predicting nothing (Kaggle)."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10.5, 3.6))
    names = list(table)
    xs = np.arange(len(names))
    ax.bar(xs - 0.2, [table[n]["kaggle"] for n in names], 0.4, label="Kaggle Dice (image x class)")
    ax.bar(xs + 0.2, [table[n]["author"] for n in names], 0.4, label="author's Dice (pooled per image)")
    ax.axhline(table["predict nothing"]["kaggle"], color="C0", ls=":", lw=1)
    ax.set_xticks(xs, [n.replace(", ", "\n", 1) for n in names], fontsize=7)
    ax.set_ylim(0, 1.18)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.legend(fontsize=8, ncol=2, loc="upper center")
    ax.set_title(title)
    return fig
