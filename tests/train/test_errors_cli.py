"""The command-line half of the error catalogue of docs/errors.md (the engine half: tests/engine/test_errors.py).

Each entry runs ``train.shakespeare.main`` (or ``train.sample.main``) in-process and expects exit status 2
with one ``error: ...`` line on stderr and no traceback; two entries run the real ``python -m`` process to
check the same from outside, and ``--debug``.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from tinygrad_tx import backend
from train import sample, shakespeare

from helpers import REPO


def cli_error(capsys, argv, *fragments, main=shakespeare.main):
    """``python -m train.shakespeare argv`` (or another CLI's ``main``) in-process: exit 2, one 'error: ...'
    line naming every fragment."""
    code = main(argv)
    stderr = capsys.readouterr().err
    assert code == 2, f"exit status {code}, stderr {stderr!r}"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line: {stderr!r}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def tiny_run(corpus, out_dir, *extra):
    """Arguments of a run that takes well under a second, with any flags in ``extra`` on top."""
    return [
        "--data",
        corpus,
        "--out_dir",
        str(out_dir),
        "--n_layer",
        "1",
        "--n_head",
        "2",
        "--n_embd",
        "16",
        "--block_size",
        "16",
        "--batch_size",
        "4",
        "--max_iters",
        "4",
        "--eval_interval",
        "2",
        "--eval_iters",
        "1",
        "--sample_tokens",
        "0",
        "--peak_flops",
        "1e9",
        *extra,
    ]


# ======================================================================== CLI: exit 2, one line on stderr
# The entries that are one bad flag: (entry, flags added to a tiny run, what the error line must say).
FLAG_CATALOGUE = [
    (
        "c02_unknown_command_line_flag",
        ["--learnig_rate", "0.1"],
        "unrecognized arguments: --learnig_rate 0.1 (did you mean --learning_rate?)",
    ),
    ("c03_unknown_preset", ["--preset", "huge"], "unknown preset 'huge': choose one of cpu, baby"),
    ("c05_learning_rate_zero", ["--learning_rate", "0"], "learning_rate must be > 0, got 0.0"),
    ("c05_learning_rate_negative", ["--learning_rate", "-0.001"], "learning_rate must be > 0, got -0.001"),
    ("c06_batch_size_zero", ["--batch_size", "0"], "batch_size must be > 0, got 0"),
    ("c06_batch_size_negative", ["--batch_size", "-4"], "batch_size must be > 0, got -4"),
    ("c07_block_size_zero", ["--block_size", "0"], "block_size must be > 0, got 0"),
    ("c07_block_size_negative", ["--block_size", "-3"], "block_size must be > 0, got -3"),
    (
        "c09_n_embd_not_divisible_by_n_head",
        ["--n_embd", "30", "--n_head", "4"],
        "n_embd 30 is not divisible by n_head 4",
    ),
    ("c19_unknown_device", ["--device", "tpu"], "unknown device 'tpu': use 'cpu' or 'gpu' (alias 'cuda')"),
    ("c27_dropout_above_one", ["--dropout", "1.5"], "dropout must be in [0, 1), got 1.5"),
    ("c27_dropout_negative", ["--dropout", "-0.1"], "dropout must be in [0, 1), got -0.1"),
    ("c32_negative_seed", ["--seed", "-1"], "seed must be >= 0, got -1"),
    ("c34_learning_rate_infinite", ["--learning_rate", "inf"], "learning_rate must be a finite number, got inf"),
    ("c34_weight_decay_nan", ["--weight_decay", "nan"], "weight_decay must be a finite number, got nan"),
]


@pytest.mark.parametrize(
    "flags, message", [entry[1:] for entry in FLAG_CATALOGUE], ids=[entry[0] for entry in FLAG_CATALOGUE]
)
def test_command_line_flag_catalogue(capsys, tmp_path, corpus, flags, message):
    cli_error(capsys, tiny_run(corpus, tmp_path / "run", *flags), message)


def test_c01_unknown_config_file_key(capsys, tmp_path, corpus):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"n_layer": 2, "learnig_rate": 0.1}))
    cli_error(
        capsys,
        tiny_run(corpus, tmp_path / "run", "--config", str(config)),
        f"config file '{config}': unknown key 'learnig_rate'; see --help for the names",
    )


def test_c04_config_value_of_wrong_type(capsys, tmp_path, corpus):
    config = tmp_path / "bad.yaml"
    config.write_text("n_layer: four\n")
    cli_error(
        capsys,
        tiny_run(corpus, tmp_path / "run", "--config", str(config)),
        f"config file '{config}': n_layer must be an integer, got 'four'",
    )


def test_c08_block_size_larger_than_the_split(capsys, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("hello world\n" * 10, encoding="utf-8")  # 120 characters: a 12-token val split
    cli_error(
        capsys,
        tiny_run(str(short), tmp_path / "run", "--block_size", "64"),
        "block_size 64 is longer than the val split: it has 12 tokens and a batch needs at least 65",
    )


def test_c10_data_file_missing(capsys, tmp_path):
    missing = tmp_path / "missing.txt"
    cli_error(capsys, tiny_run(str(missing), tmp_path / "run"), f"data file '{missing}' does not exist")


def test_c11_data_file_empty(capsys, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    cli_error(capsys, tiny_run(str(empty), tmp_path / "run"), f"data file '{empty}' is empty")


def test_c12_data_file_not_utf8(capsys, tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café au lait".encode("latin-1"))
    cli_error(
        capsys,
        tiny_run(str(latin1), tmp_path / "run"),
        f"data file '{latin1}' is not UTF-8 text: invalid byte 0xe9 at byte offset 3",
    )


def test_c13_data_file_with_wrong_checksum(capsys, tmp_path, monkeypatch):
    cached = tmp_path / "cache" / "tinyshakespeare" / "input.txt"
    cached.parent.mkdir(parents=True)
    cached.write_text("not Shakespeare\n", encoding="utf-8")
    monkeypatch.delenv("TINYSHAKESPEARE_PATH", raising=False)
    monkeypatch.setenv("TINYGRAD_TX_CACHE", str(tmp_path / "cache"))
    argv = tiny_run("unused", tmp_path / "run")
    cli_error(
        capsys,
        argv[2:],
        f"data file '{cached}' has the wrong checksum: expected sha256 86c4e6aa",
        "delete it to download it again",
    )


def _checkpoint_in(capsys, corpus, out_dir):
    assert shakespeare.main(tiny_run(corpus, out_dir)) == 0
    capsys.readouterr()
    return out_dir / "ckpt_last.npz"


def test_c14_truncated_checkpoint(capsys, tmp_path, corpus):
    checkpoint = _checkpoint_in(capsys, corpus, tmp_path / "run")
    checkpoint.write_bytes(checkpoint.read_bytes()[:-200])
    cli_error(
        capsys,
        tiny_run(corpus, tmp_path / "run", "--resume"),
        f"checkpoint '{checkpoint}' is truncated or corrupted",
        "delete it or train again",
    )


def test_c15_corrupted_checkpoint(capsys, tmp_path, corpus):
    checkpoint = _checkpoint_in(capsys, corpus, tmp_path / "run")
    data = bytearray(checkpoint.read_bytes())
    data[200:400] = bytes(b ^ 0xFF for b in data[200:400])  # inside the first array, zip structure intact
    checkpoint.write_bytes(bytes(data))
    cli_error(
        capsys,
        tiny_run(corpus, tmp_path / "run", "--resume"),
        f"checkpoint '{checkpoint}' is truncated or corrupted (BadZipFile: Bad CRC-32",
    )


def test_c16_resume_with_no_checkpoint(capsys, tmp_path, corpus):
    out_dir = tmp_path / "never_trained"
    cli_error(capsys, tiny_run(corpus, out_dir, "--resume"), f"--resume: no checkpoint to resume from in '{out_dir}'")


def test_c17_resume_with_a_different_model(capsys, tmp_path, corpus):
    _checkpoint_in(capsys, corpus, tmp_path / "run")
    cli_error(
        capsys,
        tiny_run(corpus, tmp_path / "run", "--resume", "--n_layer", "2"),
        "--resume: n_layer is 1 in the checkpoint but 2 was given",
    )


@pytest.mark.skipif(backend.gpu_available()[0], reason="this machine has a GPU, so the no-GPU error cannot occur")
def test_c18_device_gpu_without_cupy_or_gpu(capsys, tmp_path, corpus):
    cli_error(capsys, tiny_run(corpus, tmp_path / "run", "--device", "gpu"), "device 'gpu'", "pip install")


@pytest.mark.parametrize("top_k", ["0", "-1"])
def test_c20_sample_cli_top_k_below_one(capsys, tmp_path, top_k):
    cli_error(
        capsys,
        ["--out_dir", str(tmp_path), "--top_k", top_k],
        f"generate: top_k must be an integer >= 1 or None, got {top_k}",
        main=sample.main,
    )


@pytest.mark.parametrize("temperature", ["0", "-1"])
def test_c21_sample_cli_temperature_not_positive(capsys, tmp_path, temperature):
    cli_error(
        capsys,
        ["--out_dir", str(tmp_path), "--temperature", temperature],
        f"generate: temperature must be > 0, got {float(temperature)}",
        main=sample.main,
    )


def test_c22_sample_cli_without_a_checkpoint(capsys, tmp_path):
    cli_error(
        capsys,
        ["--out_dir", str(tmp_path)],
        f"no checkpoint '{tmp_path / 'ckpt_best.npz'}': train first",
        main=sample.main,
    )


def test_c25_config_file_not_valid_json(capsys, tmp_path, corpus):
    config = tmp_path / "broken.json"
    config.write_text("{n_layer: 2}")
    cli_error(
        capsys,
        tiny_run(corpus, tmp_path / "run", "--config", str(config)),
        f"config file '{config}': not valid JSON: Expecting property name enclosed in double quotes",
    )


def test_c26_data_path_is_a_directory(capsys, tmp_path):
    cli_error(
        capsys, tiny_run(str(tmp_path), tmp_path / "run"), f"data file '{tmp_path}' is a directory, not a text file"
    )


def test_c28_resume_on_text_the_tokenizer_cannot_encode(capsys, tmp_path, corpus):
    _checkpoint_in(capsys, corpus, tmp_path / "run")
    other = tmp_path / "other.txt"
    other.write_text("abc XYZ", encoding="utf-8")
    cli_error(
        capsys,
        tiny_run(str(other), tmp_path / "run", "--resume"),
        "CharTokenizer.encode: character 'X' (U+0058) at position 4 is not in the vocabulary of 12 characters",
    )


def test_c29_npz_that_is_not_a_checkpoint(capsys, tmp_path, corpus):
    (tmp_path / "run").mkdir()
    np.savez(tmp_path / "run" / "ckpt_last.npz", weights=np.ones(3))
    cli_error(
        capsys,
        tiny_run(corpus, tmp_path / "run", "--resume"),
        f"checkpoint '{tmp_path / 'run' / 'ckpt_last.npz'}' is truncated or corrupted (KeyError: '__tree__')",
    )


def test_c30_sample_cli_unknown_checkpoint_name(capsys, tmp_path):
    cli_error(
        capsys,
        ["--out_dir", str(tmp_path), "--ckpt", "first"],
        "ckpt must be one of best, last, got 'first'",
        main=sample.main,
    )


def test_c31_sample_cli_prompt_outside_the_vocabulary(capsys, tmp_path, corpus):
    _checkpoint_in(capsys, corpus, tmp_path / "run")
    cli_error(
        capsys,
        ["--out_dir", str(tmp_path / "run"), "--prompt", "hello"],
        "CharTokenizer.encode: character 'l' (U+006C) at position 2 is not in the vocabulary",
        main=sample.main,
    )


def test_c33_sample_cli_negative_seed(capsys, tmp_path):
    cli_error(capsys, ["--out_dir", str(tmp_path), "--seed", "-1"], "seed must be >= 0, got -1", main=sample.main)


def _run_module(argv):
    return subprocess.run(
        [sys.executable, "-m", "train.shakespeare", *argv], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_c23_real_process_exits_2_with_one_line_and_no_traceback(tmp_path):
    result = _run_module(["--batch_size", "0", "--out_dir", str(tmp_path / "run")])
    assert result.returncode == 2
    assert result.stderr == "error: batch_size must be > 0, got 0\n"


def test_c24_debug_shows_the_traceback(tmp_path):
    result = _run_module(["--batch_size", "0", "--out_dir", str(tmp_path / "run"), "--debug"])
    assert result.returncode == 1  # Python's status for an uncaught exception
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().endswith("ConfigError: batch_size must be > 0, got 0")


def test_c35_out_dir_is_a_file(capsys, tmp_path, corpus):
    taken = tmp_path / "notes.txt"
    taken.write_text("keep me\n")
    cli_error(capsys, tiny_run(corpus, taken), f"out_dir '{taken}' is a file, not a directory")
    assert taken.read_text() == "keep me\n"


def test_c36_ctrl_c_before_training_starts(capsys, tmp_path, corpus, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(shakespeare, "TinyShakespeare", interrupted)
    assert shakespeare.main(tiny_run(corpus, tmp_path / "run")) == 130
    stderr = capsys.readouterr().err
    assert stderr.strip() == "interrupted before training started; nothing was written to the checkpoints"
    assert not (tmp_path / "run" / "ckpt_last.npz").exists()
