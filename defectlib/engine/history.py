"""``History``: what a training run did, epoch by epoch and step by step, and a plot of it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_NOT_METRICS = {"epoch", "step", "lr", "time_s", "partial", "evaluated", "stop"}


@dataclass
class History:
    """``epochs``: one dict per epoch (``epoch`` 1-based, ``step``, ``lr``, mean training losses,
    ``time_s`` and the evaluation metrics of the epochs that were evaluated).
    ``steps``: one dict per optimizer step (``step``, ``epoch``, ``loss``, ``lr``).
    ``curve``: one dict per learning-curve point (``step``, ``epoch`` and what ``fit``'s ``curve``
    returned), taken every ``TrainConfig.curve_every`` optimizer steps.
    ``stopped`` says why training ended early (``"early_stopping"``, ``"max_steps"``,
    ``"time_budget"``) or is None.
    """

    epochs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None
    best: dict[str, Any] | None = None  # {"epoch", "name", "value"} of the best monitored value
    curve: list[dict[str, Any]] = field(default_factory=list)

    def column(self, key: str) -> list[Any]:
        """Values of ``key`` over the epochs that have it."""
        return [e[key] for e in self.epochs if key in e]

    @property
    def last(self) -> dict[str, Any]:
        return self.epochs[-1] if self.epochs else {}

    def metric_names(self) -> list[str]:
        names: list[str] = []
        for e in self.epochs:
            for k, v in e.items():
                if k not in _NOT_METRICS and not k.startswith("loss") and isinstance(v, (int, float)) \
                        and k not in names:
                    names.append(k)
        return names

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": [dict(e) for e in self.epochs], "steps": [dict(s) for s in self.steps],
                "stopped": self.stopped, "best": None if self.best is None else dict(self.best),
                "curve": [dict(c) for c in self.curve]}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "History":
        return cls([dict(e) for e in state["epochs"]], [dict(s) for s in state["steps"]],
                   state.get("stopped"), state.get("best"), [dict(c) for c in state.get("curve", [])])

    def __repr__(self) -> str:
        return f"History({len(self.epochs)} epochs, {len(self.steps)} steps, last={self.last})"

    def plot(self, smooth: int = 20, figsize: tuple[float, float] | None = None):
        """Training loss per step (and its moving average), evaluation metrics per epoch, learning rate."""
        import matplotlib.pyplot as plt
        import numpy as np

        metrics = self.metric_names()
        n = 3 if metrics else 2
        fig, axes = plt.subplots(1, n, figsize=figsize or (4.2 * n, 3.2), layout="constrained")
        ax = axes[0]
        if self.steps:
            s = np.array([r["step"] for r in self.steps])
            y = np.array([r["loss"] for r in self.steps], dtype=float)
            ax.plot(s, y, color="C0", alpha=0.3, lw=0.8, label="loss per step")
            k = max(1, min(smooth, len(y) // 5 or 1))
            if k > 1:
                avg = np.convolve(y, np.ones(k) / k, mode="valid")
                ax.plot(s[k - 1:], avg, color="C0", lw=1.6, label=f"moving average ({k})")
        ep = [e for e in self.epochs if "loss" in e]
        ax.plot([e["step"] for e in ep], [e["loss"] for e in ep], "o", color="C1", ms=4, label="epoch mean")
        ax.set(xlabel="optimizer step", ylabel="training loss", title="training loss")
        ax.legend(fontsize=8)
        if metrics:
            ax = axes[1]
            for i, name in enumerate(metrics):
                pts = [(e["epoch"], e[name]) for e in self.epochs if name in e]
                ax.plot(*zip(*pts), "o-", color=f"C{i}", ms=3, label=name)
            ax.set(xlabel="epoch", title="evaluation")
            ax.legend(fontsize=8)
        ax = axes[-1]
        if self.steps:
            ax.plot([r["step"] for r in self.steps], [r["lr"] for r in self.steps], color="C2")
        ax.set(xlabel="optimizer step", ylabel="learning rate", title="schedule")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        return fig
