"""Attention heatmaps of a trained GPT, one PNG per layer with its heads in a grid.

    python -m train.visualize --out_dir runs/shakespeare --prompt "ROMEO:"
    python -m train.visualize --out_dir runs/shakespeare --prompt "ROMEO:" --checkpoint last --save_dir pics

Reads the model and its tokenizer from the run directory's ckpt_best.npz (or ckpt_last.npz) and
writes attention_layer0.png, attention_layer1.png, ... there (or into --save_dir). In each heatmap row i is
the query at position i and column j the key at position j, both labelled with the prompt's tokens;
a cell's colour is the probability that query i puts on key j (each row sums to 1; the causal mask
leaves the upper triangle at 0).

The probabilities are recomputed from the model's weights, as CausalSelfAttention computes them
inside its fused attention op: q and k from each block's c_attn applied to ln_1 of the residual
stream, P = softmax(q k^T / sqrt(head_dim), causal). The model code needs no hook for it, and
tests/test_visualize.py checks that P @ v, projected by c_proj, is the layer's own output.
``cross_attention_maps`` does the same for the cross-attention of an EncoderDecoder's decoder blocks
(used by docs/figures/make_attention_figures.py).
The flags are the fields of train.config.VisualizeConfig (``--config``, ``--print_config``: train/cli.py).
Exit status: 0 done, 2 a usage error (one ``error: ...`` line; --debug shows the traceback).
"""
import math
import os
import sys

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import tinygrad_tx.nn.functional as F
from models.encoder_decoder import attending_keys
from models.generation import as_token_ids
from models.gpt import GPT, GPTConfig
from tinygrad_tx import Tensor, backend, no_grad
from tinygrad_tx.errors import TinygradTxError
from train.checkpoint import load_checkpoint
from train.cli import dump, parse, run, visualize_parser
from train.trainer import checkpoint_path
from train.tokenizers import Tokenizer

HEADS_PER_ROW = 4
SHOWN_AS = {" ": "\u2423", "\n": "\\n", "\t": "\\t"}   # characters a tick label would otherwise hide


def _heads(t, heads):
    batch, time, channels = t.shape
    return t.reshape(batch, time, heads, channels // heads).transpose(1, 2)


def _probabilities(q, k, allowed):
    """softmax(q k^T / sqrt(head_dim)) over the keys, -inf where ``allowed`` (broadcastable) is False."""
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    return F.softmax(scores if allowed is None else scores.masked_fill(~allowed, float("-inf")), axis=-1)


def attention_probabilities(attn, x):
    """The probabilities (B, H, T, T) a CausalSelfAttention ``attn`` computes for its input x (B, T, C)."""
    q, k, _ = (_heads(t, attn.n_head) for t in attn.c_attn(x).split(attn.n_embd, axis=2))
    time = x.shape[1]
    return _probabilities(q, k, backend.xp_of(x.data).tri(time, time, dtype=bool) if attn.causal else None)


def cross_attention_probabilities(cross, x, context, key_padding_mask=None):
    """The probabilities (B, H, Tq, Tk) a CrossAttention computes for queries x and keys from context."""
    k, _ = (_heads(t, cross.n_head) for t in cross.c_kv(context).split(cross.n_embd, axis=2))
    allowed = None if key_padding_mask is None else \
        attending_keys(key_padding_mask, x.shape[0], context.shape[1], x.device, "cross_attention_probabilities")
    return _probabilities(_heads(cross.c_q(x), cross.n_head), k, allowed)


@no_grad()
def attention_maps(model, idx):
    """One (B, H, T, T) NumPy array of attention probabilities per layer of a GPT, for token ids (B, T)."""
    was_training = model.training
    model.eval()
    idx = as_token_ids(idx, model.device, "attention_maps")
    positions = Tensor._wrap(backend.array_module(model.device).arange(idx.shape[1]))
    x = model.transformer.wte(idx) + model.transformer.wpe(positions)
    maps = []
    for block in model.transformer.h:
        maps.append(backend.to_numpy(attention_probabilities(block.attn, block.ln_1(x)).data))
        x = block(x)
    model.train(was_training)
    return maps


@no_grad()
def cross_attention_maps(model, src, tgt, src_padding_mask=None):
    """One (B, H, Tt, Ts) NumPy array per decoder block of an EncoderDecoder: where each target
    position looks in the source."""
    was_training = model.training
    model.eval()
    memory = model.encode(src, src_padding_mask)
    x = model.embed_tokens(model.decoder.embed, tgt, "cross_attention_maps")
    maps = []
    for block in model.decoder.h:
        queries = block.ln_2(x + block.attn(block.ln_1(x)))
        maps.append(backend.to_numpy(cross_attention_probabilities(block.cross_attn, queries, memory,
                                                                   src_padding_mask).data))
        x = block(x, memory, src_padding_mask)
    model.train(was_training)
    return maps


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
    inches_per_token = 0.24   # room for one tick label per token
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
    payload = load_checkpoint(checkpoint_path(out_dir, which))
    model = GPT(GPTConfig(**payload["model_args"]))
    model.load_state_dict(payload["model"])
    return model.eval(), Tokenizer.from_dict(payload["tokenizer"])


def visualize(out_dir, prompt, which="best", save_dir=None):
    """Write attention_layer<i>.png for every layer into save_dir (default: the run directory); returns the paths."""
    if not prompt:
        raise TinygradTxError("visualize: the prompt is empty; give at least one token, e.g. --prompt 'ROMEO:'")
    model, tokenizer = load_run(out_dir, which)
    ids = tokenizer.encode(prompt)[-model.config.block_size:]   # the context the model can see
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
    paths = visualize(args.out_dir, args.prompt, args.checkpoint, args.save_dir)
    print("\n".join(f"wrote {path}" for path in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
