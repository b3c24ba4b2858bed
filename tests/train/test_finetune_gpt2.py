"""python -m train.shakespeare --init_from <GPT-2> (--preset finetune): a tiny GPT-2 directory made in the test
is fine-tuned for two steps; its weights and tokenizer reach the checkpoint, and train.sample reads it back."""

import io

import numpy as np

from train import sample, shakespeare
from train.checkpoint import load_checkpoint
from train.cli import parse_command_line

from helpers.cli import run_cli
from helpers.hf_gpt2 import HF_CONFIG, hf_tensors, write_gpt2_directory


def test_the_finetune_preset_is_nanogpts_finetune_shakespeare():
    c = parse_command_line(["--preset", "finetune"]).config
    assert (c.init_from, c.block_size, c.batch_size, c.gradient_accumulation_steps, c.max_iters) == (
        "gpt2",
        1024,
        1,
        32,
        20,
    )
    assert (c.learning_rate, c.decay_lr) == (3e-5, False)


def test_finetune_a_tiny_gpt2(tmp_path, small_text):
    directory = write_gpt2_directory(tmp_path / "gpt2")
    out_dir = tmp_path / "run"
    argv = ["--preset", "finetune", "--init_from", directory, "--data", str(small_text), "--out_dir", str(out_dir)]
    argv += ["--block_size", "12", "--max_iters", "2", "--gradient_accumulation_steps", "2", "--eval_interval", "1"]
    argv += ["--eval_iters", "2", "--sample_tokens", "5", "--peak_flops", "1e9"]
    status, out, err = run_cli(shakespeare, argv)
    assert status == 0, err
    assert "loaded (OpenAI GPT-2)" in out
    checkpoint = load_checkpoint(str(out_dir / "ckpt_last.npz"))
    args = checkpoint["model_args"]
    assert (args["n_layer"], args["block_size"], args["gelu_approximate"], args["bias"]) == (2, 12, "tanh", True)
    assert checkpoint["tokenizer"]["type"] == "gpt2"
    start = hf_tensors({**HF_CONFIG, "vocab_size": args["vocab_size"]})
    moved = np.abs(checkpoint["model"]["transformer.h.0.mlp.c_fc.weight"] - start["h.0.mlp.c_fc.weight"].T).max()
    assert 0 < moved < 1e-3  # two small steps away from the pretrained weights
    text = io.StringIO()
    assert sample.main(["--out_dir", str(out_dir), "--prompt", "the", "--max_new_tokens", "4"], out=text) == 0
    assert text.getvalue().startswith("the")


def test_a_block_longer_than_gpt2s_is_refused(tmp_path, small_text):
    directory = write_gpt2_directory(tmp_path / "gpt2")
    argv = [
        "--init_from",
        directory,
        "--data",
        str(small_text),
        "--out_dir",
        str(tmp_path / "run"),
        "--block_size",
        "64",
    ]
    status, _, err = run_cli(shakespeare, argv)
    assert status == 2 and "block_size 64 is longer than" in err and err.count("\n") == 1
