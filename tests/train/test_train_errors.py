"""Bad input to the trainer and sampler CLIs: one ``error: ...`` line on stderr and exit status 2, no
traceback; and the checkpoint file format on its own (round trip, atomic write, damage detection)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from train import sample as sample_cli
from train import shakespeare
from train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

from helpers import REPO
from helpers.cli import run_cli, tiny_args


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """5,000 characters of verse: enough for the tiny model, val split of 500 characters."""
    lines = ["ROMEO: But soft, what light through yonder window breaks?", "JULIET: O Romeo, Romeo!"] * 80
    path = tmp_path_factory.mktemp("errdata") / "text.txt"
    path.write_text("\n".join(lines)[:5000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained_dir(data_file, tmp_path_factory):
    """A run of 2 steps, so there are real checkpoints to damage and to sample from."""
    out_dir = tmp_path_factory.mktemp("errrun")
    status, _, stderr = run_cli(shakespeare, tiny_args(data_file, out_dir, 2, "--eval_interval", "2"))
    assert status == 0, stderr
    return out_dir


def assert_usage_error(result, *fragments):
    status, _, stderr = result
    assert status == 2, stderr
    assert stderr.startswith("error: ") and stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in stderr, stderr


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--learning_rate", "-1"], "learning_rate must be > 0, got -1.0"),
        (["--learning_rate", "0"], "learning_rate must be > 0, got 0.0"),
        (["--batch_size", "0"], "batch_size must be > 0, got 0"),
        (["--block_size", "-4"], "block_size must be > 0, got -4"),
        (["--max_iters", "-1"], "max_iters must be >= 0, got -1"),
        (["--n_embd", "30", "--n_head", "4"], "n_embd 30 is not divisible by n_head 4"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--batch_size", "twelve"], "batch_size must be an integer, got 'twelve'"),
        (["--dropout", "1.5"], "dropout must be in [0, 1), got 1.5"),
        (["--tokenizer", "word"], "tokenizer must be one of char, bpe, got 'word'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--no_such_flag", "1"], "unrecognized arguments: --no_such_flag"),
        (["--block_size", "1000"], "block_size 1000 is longer than the val split"),
        (["--warmup_iters", "50"], "lr_decay_iters 40 is below warmup_iters 50"),
    ],
)
def test_bad_hyperparameters(flags, message, data_file, tmp_path):
    assert_usage_error(run_cli(shakespeare, tiny_args(data_file, tmp_path, 2, *flags)), message)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.json", '{"n_layer": 2, "learning_rat": 0.1}', "unknown key 'learning_rat'"),
        ("bad.yaml", "n_layer: [1, 2]\n", "n_layer must be an integer"),
        ("broken.json", '{"n_layer": ', "not valid JSON"),
        ("list.yaml", "- 1\n- 2\n", "must hold a mapping"),
    ],
)
def test_bad_config_files(name, content, message, data_file, tmp_path):
    config = tmp_path / name
    config.write_text(content, encoding="utf-8")
    argv = tiny_args(data_file, tmp_path, 2, "--config", str(config))
    assert_usage_error(run_cli(shakespeare, argv), str(config), message)


@pytest.mark.parametrize(
    "content, message", [(None, "does not exist"), (b"", "is empty"), (b"caf\xe9 ROMEO", "is not UTF-8")]
)
def test_bad_data_files(content, message, tmp_path):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    assert_usage_error(run_cli(shakespeare, tiny_args(path, tmp_path / "run", 2)), str(path), message)


def test_resume_without_a_checkpoint(tmp_path):
    assert_usage_error(run_cli(shakespeare, ["--out_dir", str(tmp_path), "--resume"]), "--resume: no checkpoint")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "flipped byte"])
def test_damaged_checkpoints_are_refused(damage, trained_dir, tmp_path):
    original = (trained_dir / "ckpt_last.npz").read_bytes()
    damaged = {
        "truncated": original[: len(original) // 2],
        "garbage": b"not a checkpoint at all",
        "flipped byte": original[:200] + bytes([original[200] ^ 0xFF]) + original[201:],
    }[damage]
    (tmp_path / "ckpt_last.npz").write_bytes(damaged)
    assert_usage_error(run_cli(shakespeare, ["--out_dir", str(tmp_path), "--resume"]), "truncated or corrupted")
    (tmp_path / "ckpt_best.npz").write_bytes(damaged)
    assert_usage_error(run_cli(sample_cli, ["--out_dir", str(tmp_path)]), "truncated or corrupted")


def test_resume_refuses_a_different_model(trained_dir):
    argv = ["--out_dir", str(trained_dir), "--resume", "--n_layer", "3"]
    assert_usage_error(run_cli(shakespeare, argv), "n_layer is 1 in the checkpoint but 3 was given")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--top_k", "0"], "top_k must be an integer >= 1"),
        (["--temperature", "0"], "temperature must be > 0"),
        (["--temperature", "-0.5"], "temperature must be > 0"),
        (["--top_p", "1.5"], "top_p must be in (0, 1]"),
        (["--num_samples", "0"], "num_samples must be >= 1"),
        (["--prompt", "FILE:/no/such/prompt.txt"], "prompt file '/no/such/prompt.txt' cannot be read"),
        (["--prompt", ""], "the prompt is empty"),
        (["--prompt", "\u00e9t\u00e9"], "not in the vocabulary"),
        (["--ckpt", "first"], "ckpt must be one of best, last, got 'first'"),
    ],
)
def test_bad_sampling_arguments(flags, message, trained_dir):
    assert_usage_error(run_cli(sample_cli, ["--out_dir", str(trained_dir), *flags]), message)


def test_sample_without_a_run(tmp_path):
    assert_usage_error(run_cli(sample_cli, ["--out_dir", str(tmp_path)]), "train first")


def test_debug_shows_the_traceback(data_file, tmp_path):
    with pytest.raises(Exception, match="learning_rate must be > 0"):
        shakespeare.main(tiny_args(data_file, tmp_path, 2, "--learning_rate", "0", "--debug"))


def test_a_real_process_exits_with_status_2_and_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "train.shakespeare", "--out_dir", str(tmp_path), "--batch_size", "-3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stderr == "error: batch_size must be > 0, got -3\n"


# ---------------------------------------------------------------- the checkpoint format
def test_checkpoint_round_trip_keeps_types_and_leaves_no_temporary_file(tmp_path):
    payload = {
        "model": {"w.weight": np.arange(6, dtype=np.float32).reshape(2, 3)},
        "optimizer": {
            "state": {0: {"step": 3, "exp_avg": np.zeros(2)}},
            "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99), "params": [0]}],
        },
        "iter_num": 7,
        "best_val_loss": float("inf"),
        "note": None,
        "rng": {"state": 2**100 + 1},
        "scalar": np.float32(1.5),
    }
    path = str(tmp_path / "ckpt.npz")
    save_checkpoint(path, payload)
    restored = load_checkpoint(path)
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert restored["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert list(restored["optimizer"]["state"]) == [0] and restored["optimizer"]["state"][0]["step"] == 3
    assert restored["model"]["w.weight"].dtype == np.float32
    np.testing.assert_array_equal(restored["model"]["w.weight"], payload["model"]["w.weight"])
    assert restored["rng"] == payload["rng"] and restored["best_val_loss"] == float("inf")
    assert restored["note"] is None and restored["scalar"] == np.float32(1.5) and restored["scalar"].dtype == np.float32
    with np.load(path) as archive:  # the arrays are readable entries named by their path
        assert "model/w.weight" in archive.files and "optimizer/state/0/exp_avg" in archive.files


def test_checkpoint_write_interrupted_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt.npz")
    save_checkpoint(path, {"iter_num": 1})

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"iter_num": 2})
    assert load_checkpoint(path) == {"iter_num": 1} and os.listdir(tmp_path) == ["ckpt.npz"]


def test_a_temporary_file_that_cannot_be_opened_raises_its_own_error(tmp_path, monkeypatch):
    """open(tmp) failing leaves nothing to clean up: the error raised is open's, not the cleanup's."""
    from train import checkpoint

    path = str(tmp_path / "ckpt.npz")
    save_checkpoint(path, {"iter_num": 1})

    def refuse(name, *args, **kwargs):
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(checkpoint, "open", refuse, raising=False)
    with pytest.raises(PermissionError, match="Permission denied") as caught:
        save_checkpoint(path, {"iter_num": 2})
    assert caught.value.__context__ is None and caught.value.filename == f"{path}.tmp"
    monkeypatch.undo()
    assert load_checkpoint(path) == {"iter_num": 1} and os.listdir(tmp_path) == ["ckpt.npz"]


def test_checkpoint_refuses_values_it_cannot_store(tmp_path):
    with pytest.raises(TypeError, match="cannot store set at 'config/names'"):
        save_checkpoint(str(tmp_path / "x.npz"), {"config": {"names": {"a"}}})
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(str(tmp_path / "missing.npz"))


def test_validate_and_the_trainer_never_write_to_the_callers_config(tmp_path, monkeypatch):
    """Regression: validate rewrote config.device ('cuda' -> 'gpu'), Trainer.__init__ wrote peak_flops into it."""
    import dataclasses

    import train.trainer as trainer_module
    from train.config import make_config, validate
    from train.tokenizers import CharTokenizer
    from train.trainer import Trainer

    config = make_config(
        "cpu",
        {
            "out_dir": str(tmp_path),
            "n_layer": 1,
            "n_head": 1,
            "n_embd": 8,
            "block_size": 4,
            "batch_size": 2,
            "max_iters": 1,
        },
    )
    config = dataclasses.replace(config, device="CPU")
    before = dataclasses.asdict(config)
    validate(config)
    assert dataclasses.asdict(config) == before
    monkeypatch.setattr(trainer_module, "peak_flops_for", lambda device, folder: (1e12, "1000 GFLOP/s, a test's"))
    tokenizer = CharTokenizer.from_text("hello world, hello")
    ids = np.array(tokenizer.encode("hello world, hello " * 4))
    trainer = Trainer(config, tokenizer, ids, ids)
    assert dataclasses.asdict(config) == before and config.peak_flops is None
    assert trainer.config.peak_flops == 1e12 and trainer.config.device == "cpu"
