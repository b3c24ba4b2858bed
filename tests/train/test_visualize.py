"""train/visualize.py and train/gradflow.py: the recomputed attention probabilities are the model's
own, the CLI draws one valid PNG per layer for a checkpoint trained by the trainer's CLI, and the
per-layer gradient norms add up to the global norm and are drawn.
"""

import contextlib
import importlib
import io
import json
import math
import re

import numpy as np
import pytest
from matplotlib.image import imread

from models import GPT, GPTConfig
from models.encoder_decoder import EncoderDecoder
from tinygrad_tx import Tensor, no_grad
from tinygrad_tx.optim import clip_grad_norm_
from train import shakespeare, visualize
from train.gradflow import layer_gradient_norms, layer_of, plot_gradient_flow
from train.tokenizers import CharTokenizer

from helpers import ROOT, assert_close

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ATTENTION_PAGE = ROOT / "docs" / "attention.md"
TEXT = (
    "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"
    "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\n"
) * 12


def spread_gpt(config):
    """A GPT with weights large enough that attention is far from uniform (a sharper check)."""
    model = GPT(config)
    for param in model.parameters():
        param.data *= 8
    return model


def assert_png(path, min_side=100):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, f"{path} is not a PNG"
    image = imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) >= min_side and image.std() > 0, f"{path}: blank or tiny image"


# ---------------------------------------------------------------- the recomputed probabilities
@no_grad()
def test_recomputed_attention_reproduces_each_layers_output():
    """P from train.visualize, applied to v from c_attn and projected by c_proj, is the layer's output."""
    config = GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16)
    model = spread_gpt(config)
    idx = np.random.default_rng(0).integers(0, 11, (2, 7))
    maps = visualize.attention_maps(model, idx)
    x = model.transformer.wte(Tensor(idx)) + model.transformer.wpe(Tensor(np.arange(7)))
    for block, probabilities in zip(model.transformer.h, maps):
        attn, h = block.attn, block.ln_1(x)
        assert probabilities.shape == (2, 2, 7, 7)
        assert_close(probabilities.sum(axis=-1), np.ones((2, 2, 7)), 1e-6, what="rows sum to 1")
        assert not np.triu(probabilities, k=1).any(), "a query attends to a later key"
        assert probabilities.max() > 0.9, "the check is weak: attention is nearly uniform"
        v = attn.c_attn(h).numpy()[..., 2 * 16 :].reshape(2, 7, 2, 8).transpose(0, 2, 1, 3)
        heads = (probabilities @ v).transpose(0, 2, 1, 3).reshape(2, 7, 16)
        projected = heads @ attn.c_proj.weight.numpy().T + attn.c_proj.bias.numpy()
        assert_close(projected, attn(h).numpy(), 1e-5, what="P @ v projected vs the layer's output")
        x = block(x)


@no_grad()
def test_recomputed_cross_attention_reproduces_each_decoder_blocks_output():
    model = EncoderDecoder(GPTConfig(block_size=6, vocab_size=13, n_layer=2, n_head=2, n_embd=16))
    for param in model.parameters():
        param.data *= 4
    rng = np.random.default_rng(3)
    src, tgt, padding = rng.integers(0, 13, (2, 5)), rng.integers(0, 13, (2, 4)), np.zeros((2, 5), bool)
    padding[1, 3:] = True
    maps = visualize.cross_attention_maps(model, src, tgt, padding)
    memory = model.encode(src, padding)
    x = model.embed_tokens(model.decoder.embed, tgt, "test")
    for block, probabilities in zip(model.decoder.h, maps):
        assert probabilities.shape == (2, 2, 4, 5) and not probabilities[1, :, :, 3:].any()
        queries = block.ln_2(x + block.attn(block.ln_1(x)))
        cross = block.cross_attn
        v = cross.c_kv(memory).numpy()[..., 16:].reshape(2, 5, 2, 8).transpose(0, 2, 1, 3)
        heads = (probabilities @ v).transpose(0, 2, 1, 3).reshape(2, 4, 16)
        projected = heads @ cross.c_proj.weight.numpy().T + cross.c_proj.bias.numpy()
        assert_close(projected, cross(queries, memory, padding).numpy(), 1e-5, what="cross-attention output")
        x = block(x, memory, padding)


def test_attention_maps_without_causal_mask_cover_every_key():
    config = GPTConfig(block_size=6, vocab_size=7, n_layer=1, n_head=1, n_embd=8)
    model = spread_gpt(config)
    model.transformer.h[0].attn.causal = False
    probabilities = visualize.attention_maps(model, [[1, 2, 3, 4]])[0]
    assert np.triu(probabilities, k=1).any()
    assert model.training, "attention_maps must leave the model's mode as it found it"


def test_token_labels_show_spaces_and_line_breaks():
    tokenizer = CharTokenizer.from_text("ab \n")
    assert visualize.token_labels(tokenizer, tokenizer.encode("a \nb")) == ["a", "\u2423", "\\n", "b"]


# ---------------------------------------------------------------- the CLI on a run trained by the trainer
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny GPT trained for 10 iterations by train.shakespeare's main(argv)."""
    folder = tmp_path_factory.mktemp("run")
    (folder / "text.txt").write_text(TEXT, encoding="utf-8")
    run = folder / "run"
    argv = [
        "--data",
        str(folder / "text.txt"),
        "--out_dir",
        str(run),
        "--max_iters",
        "10",
        "--n_layer",
        "2",
        "--n_head",
        "2",
        "--n_embd",
        "16",
        "--block_size",
        "16",
        "--batch_size",
        "4",
        "--eval_interval",
        "5",
        "--eval_iters",
        "2",
        "--log_interval",
        "2",
        "--sample_tokens",
        "0",
        "--peak_flops",
        "1e9",
    ]
    assert shakespeare.main(argv) == 0
    return run


def test_visualize_writes_one_png_per_layer(trained_run, tmp_path, capsys):
    assert (
        visualize.main(["--out_dir", str(trained_run), "--prompt", "ROMEO:\nBut soft", "--save_dir", str(tmp_path)])
        == 0
    )
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["attention_layer0.png", "attention_layer1.png"]
    for name in names:
        assert_png(tmp_path / name, min_side=300)
    assert "wrote" in capsys.readouterr().out


def test_visualize_defaults_to_the_run_directory_and_crops_long_prompts(trained_run):
    assert visualize.main(["--out_dir", str(trained_run), "--checkpoint", "last", "--prompt", TEXT[:40]]) == 0
    assert_png(trained_run / "attention_layer1.png")


def test_visualize_reports_usage_errors_in_one_line(trained_run, tmp_path, capsys):
    assert visualize.main(["--out_dir", str(tmp_path)]) == 2
    assert "ckpt_best.npz" in capsys.readouterr().err
    assert visualize.main(["--out_dir", str(trained_run), "--prompt", "ROMEO#"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error:") and "'#'" in error
    assert visualize.main(["--out_dir", str(trained_run), "--prompt", ""]) == 2
    assert "prompt is empty" in capsys.readouterr().err


# ---------------------------------------------------------------- gradient flow
def test_layer_names():
    assert layer_of("transformer.h.3.attn.c_attn.weight") == "h.3"
    assert layer_of("transformer.wte.weight") == "wte"
    assert layer_of("lm_head.weight") == "lm_head"
    assert layer_of("encoder.h.0.ln_1.bias") == "encoder.h.0"
    assert layer_of("decoder.embed.wpe.weight") == "decoder.embed.wpe"


def test_layer_gradient_norms_add_up_to_the_global_norm():
    config = GPTConfig(block_size=8, vocab_size=11, n_layer=3, n_head=2, n_embd=16)
    model = GPT(config)
    idx = np.random.default_rng(1).integers(0, 11, (2, 8))
    assert layer_gradient_norms(model) == {}
    model(idx, np.roll(idx, -1, axis=1))[1].backward()
    norms = layer_gradient_norms(model)
    assert list(norms) == ["wte", "wpe", "h.0", "h.1", "h.2", "ln_f"]
    assert all(value > 0 for value in norms.values())
    total = clip_grad_norm_(model.parameters(), 1e9)
    assert_close(math.sqrt(sum(value**2 for value in norms.values())), total, 1e-5, what="global norm")


def test_plot_gradient_flow_draws_metrics_records(tmp_path):
    rng = np.random.default_rng(2)
    records = [{"kind": "eval", "iter": 0, "train_loss": 3.0, "val_loss": 3.0}]
    records += [
        {
            "kind": "train",
            "iter": i,
            "loss": 3.0 - i / 50,
            "grad_norms": {f"h.{layer}": float(rng.uniform(0.1, 1) * 10**-layer) for layer in range(4)},
        }
        for i in range(0, 50, 5)
    ]
    path = tmp_path / "gradflow.png"
    assert plot_gradient_flow(json.loads(json.dumps(records)), str(path)) == str(path)  # as metrics.jsonl holds them
    assert_png(path, min_side=300)
    assert plot_gradient_flow(records[:1], str(tmp_path / "none.png")) is None  # nothing recorded yet
    assert not (tmp_path / "none.png").exists()


# ---------------------------------------------------------------- docs/attention.md
def test_attention_page_python_blocks_run_and_its_figures_exist(monkeypatch, tmp_path, capsys):
    """The walkthrough's code runs in order (as a reader would paste it) and every figure it shows is there."""
    monkeypatch.chdir(tmp_path)
    text = ATTENTION_PAGE.read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert len(blocks) >= 8
    namespace = {"__name__": "docs_attention"}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"docs/attention.md, python block {number}", "exec"), namespace)
    assert "(4, 8, 16)" in capsys.readouterr().out
    figures = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    assert len(figures) == 5
    for figure in figures:
        assert_png(ATTENTION_PAGE.parent / figure, min_side=200)


def test_trainer_records_gradient_norms_and_draws_the_gradient_flow(trained_run):
    with open(trained_run / "metrics.jsonl", encoding="utf-8") as f:
        steps = [record for record in map(json.loads, f) if record["kind"] == "train"]
    assert [record["iter"] for record in steps] == [0, 2, 4, 6, 8]
    for record in steps:
        assert list(record["grad_norms"]) == ["wte", "wpe", "h.0", "h.1", "ln_f"]
        assert all(norm > 0 for norm in record["grad_norms"].values())
    assert_png(trained_run / "gradflow.png", min_side=300)


@pytest.mark.parametrize("command", ["sample", "visualize", "convert_nanogpt"])
def test_every_command_that_computes_applies_the_thread_settings(command, trained_run, tmp_path, monkeypatch):
    """Regression (issue 24): train.sample took 41 s instead of 3.4 s on a busy machine, for want of the
    settings train.shakespeare applies (tune_for_training); visualize and the converter lacked them too."""
    module = importlib.import_module(f"train.{command}")
    calls = []
    monkeypatch.setattr(module, "tune_for_training", lambda: calls.append(command))
    argv = {
        "sample": ["--out_dir", str(trained_run), "--max_new_tokens", "2", "--prompt", "RO"],
        "visualize": ["--out_dir", str(trained_run), "--prompt", "RO", "--save_dir", str(tmp_path)],
        "convert_nanogpt": [str(tmp_path / "absent.pt"), str(tmp_path / "out.npz")],
    }[command]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        module.main(argv)
    assert calls == [command]


def test_both_gradient_flow_panels_name_their_y_axis(trained_run, tmp_path, monkeypatch):
    """Regression (issue 24): the right panel (per layer at the last step) had no y-axis label."""
    from matplotlib.figure import Figure

    drawn = []
    real_savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: drawn.append(fig) or real_savefig(fig, *a, **k))
    with open(trained_run / "metrics.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    plot_gradient_flow(records, tmp_path / "gradflow.png")
    assert [axes.get_ylabel() for axes in drawn[0].axes] == ["gradient L2 norm (before clipping)"] * 2
