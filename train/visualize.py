"""Attention heatmaps of a trained GPT, one PNG per layer with its heads in a grid.

    python -m train.visualize --out_dir runs/shakespeare --prompt "ROMEO:"
    python -m train.visualize --out_dir runs/shakespeare --prompt "ROMEO:" --checkpoint last --save_dir pics

Reads the model and its tokenizer from the run directory's ckpt_best.npz (or ckpt_last.npz) and
writes attention_layer0.png, attention_layer1.png, ... there (or into --save_dir). In each heatmap row i is
the query at position i and column j the key at position j, both labelled with the prompt's tokens;
a cell's colour is the probability that query i puts on key j (each row sums to 1; the causal mask
leaves the upper triangle at 0).

The probabilities are the model's own: one forward inside ``models.attention.record_attention``, in
which every attention layer keeps its P = softmax(q k^T / sqrt(head_dim), causal) and computes its
output from it (tests/train/test_visualize.py checks that P @ v, projected by c_proj, is the layer's
output). ``cross_attention_maps`` does the same for the cross-attention of an EncoderDecoder's
decoder blocks (used by docs/figures/make_attention_figures.py).
The flags are the fields of train.config.VisualizeConfig (``--config``, ``--print_config``: train/cli.py).
Exit status: 0 done, 2 a usage error (one ``error: ...`` line; --debug shows the traceback).
"""

import math
import os
import sys

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.attention import record_attention
from tinygrad_tx import no_grad, tune_for_training
from tinygrad_tx.errors import TinygradTxError
from train.checkpoint import load_checkpoint, model_from_checkpoint
from train.cli import dump, parse, run, visualize_parser
from train.tokenizers import Tokenizer
from train.trainer import checkpoint_path

HEADS_PER_ROW = 4
SHOWN_AS = {" ": "\u2423", "\n": "\\n", "\t": "\\t"}  # characters a tick label would otherwise hide


def attention_probabilities(attn, x):
    """The probabilities (B, H, T, T) an attention module ``attn`` computes for its input x (B, T, C)."""
    with record_attention(attn) as probabilities:
        attn(x)
    return probabilities[""]


@no_grad()
def attention_maps(model, idx):
    """One (B, H, T, T) NumPy array of attention probabilities per layer of a GPT, for token ids (B, T)."""
    was_training = model.training
    model.eval()
    try:
        with record_attention(model) as probabilities:
            model(idx)
    finally:
        model.train(was_training)
    return [probabilities[f"transformer.h.{layer}.attn"].numpy() for layer in range(len(model.transformer.h))]


@no_grad()
def cross_attention_maps(model, src, tgt, src_padding_mask=None):
    """One (B, H, Tt, Ts) NumPy array per decoder block of an EncoderDecoder: where each target
    position looks in the source."""
    was_training = model.training
    model.eval()
    try:
        with record_attention(model) as probabilities:
            model(src, tgt, src_padding_mask=src_padding_mask)
    finally:
        model.train(was_training)
    return [probabilities[f"decoder.h.{layer}.cross_attn"].numpy() for layer in range(len(model.decoder.h))]


def token_labels(tokenizer, ids):
    """Each token's text, with spaces and line breaks made visible."""
    labels = []
    for token in ids:
        text = tokenizer.decode([token])
        labels.append("".join(SHOWN_AS.get(char, char) for char in text))
    return labels


def plot_layer(probabilities, key_labels, path, title, query_labels=None):
    """Write one layer's heads (H, Tq, Tk) as a grid of heatmaps to ``path`` (replaced atomically).

    Query labels default to the key labels (self-attention)."""
    query_labels = key_labels if query_labels is None else query_labels
    heads, queries, keys = probabilities.shape
    columns = min(heads, HEADS_PER_ROW)
    rows = math.ceil(heads / columns)
    inches_per_token = 0.24  # room for one tick label per token
    width, height = max(2.6, inches_per_token * keys), max(2.6, inches_per_token * queries)
    figure = Figure(figsize=(columns * width + 1.2, rows * height + 0.9), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(rows, columns, squeeze=False)
    for head, axes in enumerate(grid.flat):
        if head >= heads:
            axes.set_axis_off()
            continue
        image = axes.imshow(probabilities[head], vmin=0.0, vmax=1.0, cmap="viridis")
        axes.set_title(f"head {head}", fontsize=9)
        axes.set_xticks(range(keys), key_labels, fontsize=7, rotation=90)
        axes.set_yticks(range(queries), query_labels, fontsize=7)
        axes.set_xlabel("key", fontsize=8)
        axes.set_ylabel("query", fontsize=8)
    figure.colorbar(image, ax=list(grid.flat), shrink=0.8, label="attention probability")
    figure.suptitle(title)
    tmp = f"{path}.tmp"
    figure.savefig(tmp, format="png")
    os.replace(tmp, path)


def load_run(out_dir, which="best"):
    """(GPT in eval mode, tokenizer) from a run directory's ckpt_<which>.npz."""
    path = checkpoint_path(out_dir, which)
    payload = load_checkpoint(path)
    return model_from_checkpoint(payload, path).eval(), Tokenizer.from_dict(payload.get("tokenizer"))


def visualize(out_dir, prompt, which="best", save_dir=None):
    """Write attention_layer<i>.png for every layer into save_dir (default: the run directory); returns the paths."""
    if not prompt:
        raise TinygradTxError("visualize: the prompt is empty; give at least one token, e.g. --prompt 'ROMEO:'")
    model, tokenizer = load_run(out_dir, which)
    ids = tokenizer.encode(prompt)[-model.config.block_size :]  # the context the model can see
    labels = token_labels(tokenizer, ids)
    save_dir = save_dir or out_dir
    os.makedirs(save_dir, exist_ok=True)
    paths = []
    for layer, probabilities in enumerate(attention_maps(model, np.array([ids]))):
        path = os.path.join(save_dir, f"attention_layer{layer}.png")
        plot_layer(probabilities[0], labels, path, f"layer {layer}: attention over {tokenizer.decode(ids)!r}")
        paths.append(path)
    return paths


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    return run(lambda: draw(parse(visualize_parser(), argv)), argv)


def draw(command):
    """visualize() for ``command`` (a train.cli.CommandLine of a VisualizeConfig), naming the files written."""
    args = command.config
    if command.print_config:
        print(dump(args), end="")
        return 0
    tune_for_training()  # the trainer's thread settings, as every command that computes applies them
    paths = visualize(args.out_dir, args.prompt, args.checkpoint, args.save_dir)
    print("\n".join(f"wrote {path}" for path in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
