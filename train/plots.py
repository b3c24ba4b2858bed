"""The loss curve of a run, drawn from its metrics.jsonl records (matplotlib's Agg canvas, no display).

``Figure`` + ``FigureCanvasAgg`` are used directly rather than pyplot, so drawing never switches the
caller's matplotlib backend and never opens a window.
"""

import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_losses(records, path, title="training loss"):
    """Write a PNG of the train loss (every logged step) and the evaluated train/val losses to ``path``.

    ``records`` are metrics.jsonl objects: {"kind": "train", "iter", "loss"} and
    {"kind": "eval", "iter", "train_loss", "val_loss"}. The file is replaced atomically.
    """
    steps = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    figure = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(
        [r["iter"] for r in steps],
        [r["loss"] for r in steps],
        color="tab:blue",
        alpha=0.35,
        linewidth=1,
        label="train (batch)",
    )
    axes.plot(
        [r["iter"] for r in evals], [r["train_loss"] for r in evals], "o-", color="tab:blue", label="train (eval)"
    )
    axes.plot([r["iter"] for r in evals], [r["val_loss"] for r in evals], "s-", color="tab:orange", label="val (eval)")
    if evals:
        best = min(evals, key=lambda r: r["val_loss"])
        axes.annotate(
            f"best val {best['val_loss']:.3f}",
            (best["iter"], best["val_loss"]),
            textcoords="offset points",
            xytext=(-10, 12),
            ha="right",
        )
    axes.set_xlabel("iteration")
    axes.set_ylabel("cross-entropy loss (nats/token)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    tmp = f"{path}.tmp"
    figure.savefig(tmp, format="png")
    os.replace(tmp, path)
