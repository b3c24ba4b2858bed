"""Gradient flow: how large each layer's gradient is, step after step, and its picture.

    norms = layer_gradient_norms(model)       # after backward(): {"wte": 0.8, "h.0": 0.31, ..., "ln_f": 0.02}
    record["grad_norms"] = norms              # the trainer keeps them in its metrics.jsonl records
    plot_gradient_flow(records, "runs/x/gradflow.png")

A layer is a parameter's module path up to its block index: ``transformer.h.3.attn.c_attn.weight``
belongs to ``h.3``, ``transformer.wte.weight`` to ``wte``, ``lm_head.weight`` to ``lm_head``,
``encoder.h.0.ln_1.bias`` to ``encoder.h.0``. A layer's norm is the L2 norm of all its parameters'
gradients together (taken before clipping), so the squared per-layer norms add up to the squared
global norm. Vanishing gradients show up as the early blocks'
lines sinking below the late ones; exploding ones as lines climbing over time.
"""

import math
import os

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tinygrad_tx import no_grad, stack

WRAPPER = "transformer."  # nanoGPT's ModuleDict around the layers: dropped from the layer names


def layer_of(parameter_name):
    """The layer a parameter belongs to: its module path, cut after the first block index."""
    parts = parameter_name.removeprefix(WRAPPER).split(".")[:-1]
    for position, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: position + 1])
    return ".".join(parts) or "(root)"


def layer_gradient_norms(model):
    """{layer: L2 norm of its parameters' gradients}, in the model's parameter order (input to output).

    Parameters without a gradient are skipped; a tied parameter (GPT's wte / lm_head) counts once,
    under its first name. One host transfer for the whole model (a GPU syncs once, not per layer).
    """
    squares = {}
    with no_grad():
        for name, param in model.named_parameters():
            if param.grad is not None:
                squares.setdefault(layer_of(name), []).append((param.grad * param.grad).sum())
        if not squares:
            return {}
        totals = stack([sum(parts) for parts in squares.values()]).numpy()
    return {layer: math.sqrt(float(total)) for layer, total in zip(squares, totals)}


def plot_gradient_flow(records, path, title="gradient flow"):
    """Write a PNG of the per-layer gradient norms to ``path`` (replaced atomically); returns ``path``,
    or None (writing nothing) while no record has gradient norms yet (a trainer's first evaluation).

    ``records`` are metrics.jsonl objects; those with a "grad_norms" dict ({layer: norm}) and an
    "iter" are drawn: left, each layer's norm against the iteration (log scale, early layers dark);
    right, the layers' norms at the last recorded iteration, input to output.
    """
    steps = [r for r in records if r.get("grad_norms")]
    if not steps:
        return None
    layers = list(dict.fromkeys(layer for r in steps for layer in r["grad_norms"]))
    figure = Figure(figsize=(11, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    over_time, last = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    palette = [_colour(i, len(layers)) for i in range(len(layers))]
    for layer, colour in zip(layers, palette):
        points = [(r["iter"], r["grad_norms"][layer]) for r in steps if r["grad_norms"].get(layer, 0) > 0]
        over_time.plot([p[0] for p in points], [p[1] for p in points], color=colour, linewidth=1.2, label=layer)
    over_time.set_yscale("log")
    over_time.set_xlabel("iteration")
    over_time.set_ylabel("gradient L2 norm (before clipping)")
    over_time.set_title(title)
    over_time.grid(alpha=0.3, which="both")
    over_time.legend(fontsize=7, ncol=2 if len(layers) > 8 else 1)
    final = steps[-1]["grad_norms"]
    last.bar(range(len(layers)), [final.get(layer, 0.0) for layer in layers], color=palette)
    last.set_xticks(range(len(layers)), layers, rotation=60, ha="right", fontsize=8)
    last.set_yscale("log")
    last.set_ylabel("gradient L2 norm (before clipping)")
    last.set_title(f"per layer at iteration {steps[-1]['iter']}")
    last.grid(alpha=0.3, axis="y", which="both")
    figure.tight_layout()
    tmp = f"{path}.tmp"
    figure.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def _colour(index, count):
    """Dark purple for the first (input) layer through green-yellow for the last (viridis)."""
    return colormaps["viridis"](0.9 * index / max(count - 1, 1))
