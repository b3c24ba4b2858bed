"""Draw the figures of docs/attention.md into docs/figures/ (seeded: the same pictures every run).

    python docs/figures/make_attention_figures.py                 # from the repository root
    python docs/figures/make_attention_figures.py --out_dir /tmp/figs

The tiny example is the page's: B, T, C = 4, 8, 32, head_size 16, the same seeds. The last figure
trains the digit-reversal EncoderDecoder (models/encoder_decoder.py, ~5-15 s on a CPU) and draws
its cross-attention. Matplotlib's Agg canvas is used directly: no display needed.
"""

import argparse
import os
import pathlib
import sys

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))  # run as a script from anywhere

import tinygrad_tx.nn.functional as F  # noqa: E402
from models import CausalSelfAttention, GPTConfig  # noqa: E402
from models.encoder_decoder import BOS, EOS, PAD, digit_reversal_batch, train_digit_reversal  # noqa: E402
from tinygrad_tx import Tensor, backend, no_grad  # noqa: E402
from tinygrad_tx.nn import Linear  # noqa: E402
from train.visualize import attention_probabilities, cross_attention_maps, plot_layer  # noqa: E402

B, T, C, HEAD_SIZE, N_HEAD = 4, 8, 32, 16, 4
HERE = pathlib.Path(__file__).resolve().parent


def new_figure(width, height):
    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure, out_dir, name):
    path = os.path.join(out_dir, name)
    figure.savefig(path, format="png")
    print(f"wrote {path}")


def heatmap(axes, matrix, title, vmin=None, vmax=None, cmap="viridis"):
    """A (T, T) matrix with its values written in the cells; -inf cells shown blank and labelled."""
    finite = np.where(np.isfinite(matrix), matrix, np.nan)
    image = axes.imshow(finite, vmin=vmin, vmax=vmax, cmap=cmap)
    for (row, column), value in np.ndenumerate(matrix):
        text = "-inf" if np.isneginf(value) else f"{value:.2f}"
        on_dark = cmap == "viridis" and np.isfinite(value) and image.norm(value) < 0.6  # viridis is dark below
        axes.text(column, row, text, ha="center", va="center", fontsize=5.5, color="white" if on_dark else "black")
    axes.set_title(title, fontsize=9)
    axes.set_xlabel("key position (earlier tokens)", fontsize=8)
    axes.set_ylabel("query position t", fontsize=8)
    axes.set_xticks(range(matrix.shape[1]))
    axes.set_yticks(range(matrix.shape[0]))
    return image


def tiny_example():
    """x (B, T, C) and one head's key/query/value Linears, seeded as the page's code."""
    backend.manual_seed(1337)
    x = Tensor(np.random.default_rng(1337).standard_normal((B, T, C)))
    key, query, value = (Linear(C, HEAD_SIZE, bias=False) for _ in range(3))
    return x, key, query, value


def averaging_figure(out_dir):
    """Version 2 and 3 of "Let's build GPT": the lower-triangular averaging matrix, two ways."""
    tril = np.tril(np.ones((T, T), np.float32))
    masked = np.where(tril == 0, -np.inf, 0.0)
    with no_grad():
        weights = F.softmax(Tensor(masked), axis=-1).numpy()
    figure = new_figure(10, 3.6)
    left, middle, right = figure.subplots(1, 3)
    heatmap(left, tril, "tril: who may talk to whom", 0, 1)
    heatmap(middle, masked, "zeros, masked_fill(tril == 0, -inf)", -1, 1)
    heatmap(right, weights, "softmax rows = running average", 0, 1)
    save(figure, out_dir, "attention_averaging.png")


def single_head_figure(out_dir):
    """Scores, masked scores and probabilities of one head for batch element 0."""
    x, key, query, _ = tiny_example()
    with no_grad():
        scores = (query(x) @ key(x).transpose(-2, -1) * HEAD_SIZE**-0.5).numpy()[0]
    masked = np.where(np.tril(np.ones((T, T), bool)), scores, -np.inf)
    probabilities = np.exp(masked - masked.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    figure = new_figure(10, 3.6)
    left, middle, right = figure.subplots(1, 3)
    limit = np.abs(scores).max()
    heatmap(left, scores, "q k^T / sqrt(16): every pair", -limit, limit, cmap="coolwarm")
    heatmap(middle, masked, "causal: the future masked to -inf", -limit, limit, cmap="coolwarm")
    heatmap(right, probabilities, "softmax: who t listens to", 0, 1)
    save(figure, out_dir, "attention_single_head.png")


def scaling_figure(out_dir):
    """Why 1/sqrt(head_size): score variance grows with head_size, and softmax of large scores is one-hot."""
    rng = np.random.default_rng(0)
    sizes = [4, 8, 16, 32, 64, 128, 256]
    raw, scaled = [], []
    for size in sizes:
        q, k = rng.standard_normal((B, T, size)), rng.standard_normal((B, T, size))
        scores = q @ k.transpose(0, 2, 1)
        raw.append(scores.var())
        scaled.append((scores * size**-0.5).var())
    figure = new_figure(10, 3.6)
    left, right = figure.subplots(1, 2)
    left.plot(sizes, raw, "o-", label="q k^T")
    left.plot(sizes, scaled, "s-", label="q k^T / sqrt(head_size)")
    left.set_xscale("log", base=2)
    left.set_yscale("log", base=2)
    left.set_xlabel("head_size")
    left.set_ylabel("variance of the scores")
    left.set_title("unit-variance q and k: the dot product's variance is head_size", fontsize=9)
    left.legend()
    left.grid(alpha=0.3, which="both")
    logits = np.array([0.1, -0.2, 0.3, -0.2, 0.5])
    for factor, offset in ((1, -0.2), (8, 0.2)):
        weights = np.exp(logits * factor) / np.exp(logits * factor).sum()
        right.bar(np.arange(5) + offset, weights, width=0.4, label=f"softmax({factor} x logits)")
    right.set_xticks(range(5), [f"{v:+.1f}" for v in logits])
    right.set_xlabel("logits")
    right.set_title("large scores make softmax nearly one-hot", fontsize=9)
    right.legend()
    save(figure, out_dir, "attention_scaling.png")


def multi_head_figure(out_dir):
    """Four heads of one (untrained) CausalSelfAttention on the tiny example: four different patterns."""
    backend.manual_seed(1337)
    config = GPTConfig(block_size=T, vocab_size=1, n_layer=1, n_head=N_HEAD, n_embd=C)
    attention = CausalSelfAttention(config)
    for param in attention.parameters():
        param.data *= 3  # sharper patterns than the default initialisation gives
    x, _, _, _ = tiny_example()
    with no_grad():
        probabilities = attention_probabilities(attention, x).numpy()[0]
    labels = [str(t) for t in range(T)]
    plot_layer(
        probabilities,
        labels,
        os.path.join(out_dir, "attention_multi_head.png"),
        "four heads, one input: each head learns its own pattern (here: random weights)",
    )
    print(f"wrote {os.path.join(out_dir, 'attention_multi_head.png')}")


def trained_reversal_figure(out_dir):
    """The README figure: a trained encoder-decoder's cross-attention reads the source backwards."""
    model, losses, seconds = train_digit_reversal()
    print(f"trained the digit-reversal model: {len(losses)} steps, final loss {losses[-1]:.4f}, {seconds:.1f} s")
    src, padding, decoder_input, _ = digit_reversal_batch(np.random.default_rng(7), 16)
    row = int(np.argmax((~padding).sum(axis=1) == 4))  # 4 digits and one padded position
    maps = cross_attention_maps(model, src[row : row + 1], decoder_input[row : row + 1], padding[row : row + 1])
    names = {PAD: "pad", BOS: "bos", EOS: "eos"}
    source = [names.get(int(t), str(t)) for t in src[row]]
    target = [names.get(int(t), str(t)) for t in decoder_input[row]]
    last = maps[-1][0]
    plot_layer(
        last,
        source,
        os.path.join(out_dir, "attention_trained_reversal.png"),
        f"reversing {''.join(source[:4])}: decoder block {len(maps) - 1} cross-attention\n"
        "(each row's query predicts the next output digit)",
        query_labels=target,
    )
    print(f"wrote {os.path.join(out_dir, 'attention_trained_reversal.png')}")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Draw the figures of docs/attention.md.")
    parser.add_argument("--out_dir", default=str(HERE), help="where the PNGs go (default: docs/figures)")
    args = parser.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    averaging_figure(args.out_dir)
    single_head_figure(args.out_dir)
    scaling_figure(args.out_dir)
    multi_head_figure(args.out_dir)
    trained_reversal_figure(args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
