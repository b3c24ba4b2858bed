"""The error catalogue of docs/errors.md: one test per bad input.

Engine entries expect exactly one exception of the documented type whose message names the op and
the values. CLI entries run ``train.shakespeare.main`` and expect exit status 2 with one ``error: ...``
line on stderr and no traceback; two entries run the real ``python -m`` process to check the same
from outside, and ``--debug``.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_tx.nn.functional as F
from models.gpt import GPT, GPTConfig
from tinygrad_tx import (DeviceError, DTypeError, GraphError, IndexOutOfRangeError, ShapeError, Tensor,
                         TinygradTxError, backend, nn, where)
from tinygrad_tx.optim import SGD, AdamW
from train import sample, shakespeare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def expect_error(error_type, action, *fragments):
    """Run ``action``; it must raise ``error_type`` whose message holds every fragment. Returns the message."""
    with pytest.raises(error_type) as caught:
        action()
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in the message {message!r}"
    return message


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


def floats(*shape):
    return Tensor(np.ones(shape, dtype=np.float32))


@pytest.fixture
def corpus(tmp_path):
    """A small UTF-8 text (8000 characters over 12 symbols) to train on."""
    rng = np.random.default_rng(0)
    path = tmp_path / "corpus.txt"
    path.write_text("".join(rng.choice(list("abcdefghij \n"), 8000)), encoding="utf-8")
    return str(path)


def tiny_run(corpus, out_dir, *extra):
    """Arguments of a run that takes well under a second, with any flags in ``extra`` on top."""
    return ["--data", corpus, "--out_dir", str(out_dir), "--n_layer", "1", "--n_head", "2", "--n_embd", "16",
            "--block_size", "16", "--batch_size", "4", "--max_iters", "4", "--eval_interval", "2",
            "--eval_iters", "1", "--sample_tokens", "0", "--peak_flops", "1e9", *extra]


# ======================================================================== engine: one exception each
@pytest.mark.parametrize("op, name", [(lambda a, b: a + b, "add"), (lambda a, b: a - b, "sub"),
                                      (lambda a, b: a * b, "mul"), (lambda a, b: a / b, "div"),
                                      (lambda a, b: a.maximum(b), "maximum")], ids=["add", "sub", "mul", "div", "max"])
def test_e01_binary_op_shape_mismatch(op, name):
    expect_error(ShapeError, lambda: op(floats(2, 3), floats(4)), f"{name}: shapes (2, 3) and (4,) cannot be broadcast")


def test_e01_where_shape_mismatch():
    expect_error(ShapeError, lambda: where(Tensor(np.ones((2, 3), dtype=bool)), floats(2, 3), floats(4)),
                 "where: condition (2, 3) and values (2, 3), (4,)")


@pytest.mark.parametrize("impl", ["fused", "composed"])
def test_e03_layer_norm_weight_shape_mismatch(impl):
    expect_error(ShapeError, lambda: F.layer_norm(floats(2, 8), floats(7), floats(8), impl=impl),
                 "layer_norm: weight shape (7,)", "normalized shape (8,)", "input shape (2, 8)")


FLOAT_ONLY_OPS = [
    ("exp", lambda x: x.exp()), ("log", lambda x: x.log()), ("softmax", F.softmax), ("log_softmax", F.log_softmax),
    ("layer_norm", F.layer_norm), ("gelu", F.gelu),
    ("linear", lambda x: F.linear(x, floats(4, 3))),
    ("cross_entropy", lambda x: F.cross_entropy(x, Tensor(np.zeros(2, dtype=np.int64)))),
    ("scaled_dot_product_attention", lambda x: F.scaled_dot_product_attention(*[x.reshape(1, 1, 2, 3)] * 3)),
]


@pytest.mark.parametrize("name, action", FLOAT_ONLY_OPS, ids=[name for name, _ in FLOAT_ONLY_OPS])
@pytest.mark.parametrize("dtype", [np.int64, np.bool_], ids=["int64", "bool"])
def test_e06_integer_or_boolean_where_float_needed(name, action, dtype):
    expect_error(DTypeError, lambda: action(Tensor(np.ones((2, 3), dtype=dtype))),
                 f"{name}: needs a float tensor, got dtype {np.dtype(dtype)}")


@pytest.mark.parametrize("dtype", [np.int64, np.bool_], ids=["int64", "bool"])
def test_e07_requires_grad_on_integer_tensor(dtype):
    expect_error(DTypeError, lambda: Tensor(np.ones(3, dtype=dtype), requires_grad=True),
                 f"requires_grad: only float tensors can require gradients, got dtype {np.dtype(dtype)}")


@pytest.mark.parametrize("index, axis, size", [(5, 0, 3), ((slice(None), 4), 1, 4), (np.array([0, 7]), 0, 3)],
                         ids=["int", "axis1", "array"])
def test_e09_getitem_index_out_of_range(index, axis, size):
    bad = 7 if isinstance(index, np.ndarray) else (index if isinstance(index, int) else index[1])
    expect_error(IndexOutOfRangeError, lambda: floats(3, 4)[index],
                 f"getitem: index {bad} is out of bounds for axis {axis} with size {size}", "tensor shape (3, 4)")


@pytest.mark.parametrize("op, name", [(lambda a, b: a @ b, "MatMul"), (lambda a, b: a * b, "Mul")],
                         ids=["matmul", "mul"])
def test_e10_cpu_and_gpu_tensors_mixed(monkeypatch, op, name):
    on_gpu = floats(2, 2)
    real_device_of = backend.device_of
    monkeypatch.setattr(backend, "device_of", lambda a: "gpu" if a is on_gpu.data else real_device_of(a))
    expect_error(DeviceError, lambda: op(floats(2, 2), on_gpu),
                 f"{name}: tensors on different devices (cpu and gpu); move them with .to('cpu') first")


def test_e11_backward_twice_without_retain_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    expect_error(GraphError, loss.backward, "the graph was already freed", "retain_graph=True")


def _tiny_gpt():
    return GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8))


def _requires_grad(*shape):
    return Tensor(np.ones(shape), requires_grad=True)


_PROMPT = np.zeros((1, 1), dtype=np.int64)
_Q3 = floats(1, 1, 3, 4)

# The entries that need no setup: (entry, exception type, the bad call, what its message must say).
ENGINE_CATALOGUE = [
    ("e02_matmul_shape_mismatch", ShapeError, lambda: floats(3, 4) @ floats(5, 4),
     "matmul: shapes (3, 4) and (5, 4) do not align (4 != 5)"),
    ("e04_cross_entropy_targets_shape_mismatch", ShapeError,
     lambda: F.cross_entropy(floats(4, 5), Tensor(np.zeros(3, dtype=np.int64))),
     "cross_entropy: targets shape (3,) does not match logits shape (4, 5) (expected (4,))"),
    ("e05_cross_entropy_target_out_of_range", IndexOutOfRangeError,
     lambda: F.cross_entropy(floats(4, 5), Tensor(np.array([0, 1, 7, 2]))),
     "cross_entropy: target 7 is out of range for 5 classes (valid: 0..4, or ignore_index=-1)"),
    ("e08_embedding_index_too_large", IndexOutOfRangeError, lambda: F.embedding(Tensor(np.array([0, 9])), floats(5, 3)),
     "embedding: index 9 is out of range for a table of 5 rows (valid: 0..4)"),
    ("e08_embedding_index_negative", IndexOutOfRangeError, lambda: F.embedding(Tensor(np.array([-1])), floats(5, 3)),
     "embedding: index -1 is out of range for a table of 5 rows (valid: 0..4)"),
    ("e12_backward_of_non_scalar_without_gradient", GraphError, lambda: (_requires_grad(2, 3) * 2).backward(),
     "backward: a gradient is needed for a non-scalar output of shape (2, 3)"),
    ("e13_backward_of_tensor_without_grad", GraphError, lambda: floats(2).sum().backward(),
     "backward: this tensor does not require grad"),
    ("e14_load_state_dict_lists_every_problem_at_once", TinygradTxError,
     lambda: nn.Linear(3, 2).load_state_dict({"weight": np.ones((3, 3)), "extra": np.ones(1)}),
     "Linear.load_state_dict: missing keys: ['bias']; unexpected keys: ['extra']; "
     "shape mismatch: 'weight' expects (2, 3), got (3, 3)"),
    ("e15_sgd_learning_rate_zero", TinygradTxError, lambda: SGD(nn.Linear(2, 2).parameters(), lr=0),
     "SGD: lr must be a positive number, got 0"),
    ("e15_adamw_learning_rate_negative", TinygradTxError, lambda: AdamW(nn.Linear(2, 2).parameters(), lr=-1e-3),
     "AdamW: lr must be a positive number, got -0.001"),
    ("e16_model_n_embd_not_divisible_by_n_head", TinygradTxError, lambda: GPTConfig(n_embd=30, n_head=4),
     "GPTConfig: n_embd 30 is not divisible by n_head 4"),
    ("e17_sampling_top_k_zero", TinygradTxError, lambda: _tiny_gpt().generate(_PROMPT, 2, top_k=0),
     "generate: top_k must be an integer >= 1 or None, got 0"),
    ("e17_sampling_top_k_negative", TinygradTxError, lambda: _tiny_gpt().generate(_PROMPT, 2, top_k=-3),
     "generate: top_k must be an integer >= 1 or None, got -3"),
    ("e18_sampling_temperature_zero", TinygradTxError, lambda: _tiny_gpt().generate(_PROMPT, 2, temperature=0),
     "generate: temperature must be > 0, got 0"),
    ("e18_sampling_temperature_negative", TinygradTxError, lambda: _tiny_gpt().generate(_PROMPT, 2, temperature=-0.5),
     "generate: temperature must be > 0, got -0.5"),
    ("e20_sum_axis_out_of_range", ShapeError, lambda: floats(2, 3).sum(axis=2),
     "sum: axis 2 is out of range for a tensor with 2 dimensions"),
    ("e20_max_axis_out_of_range", ShapeError, lambda: floats(2, 3).max(axis=-3),
     "max: axis -3 is out of range for a tensor with 2 dimensions"),
    ("e21_reshape_to_another_size", ShapeError, lambda: floats(2, 3).reshape(4, 2),
     "reshape: cannot reshape (2, 3) (6 elements) into (4, 2)"),
    ("e22_backward_with_a_gradient_of_the_wrong_shape", ShapeError,
     lambda: (_requires_grad(2, 3) * 2).backward(np.ones((3, 2))),
     "backward: gradient shape (3, 2) does not match tensor shape (2, 3)"),
    ("e23_linear_weight_shape_mismatch", ShapeError, lambda: F.linear(floats(2, 3), floats(4, 5)),
     "linear: input shape (2, 3) does not fit weight shape (4, 5)"),
    ("e24_attention_shapes_do_not_fit", ShapeError,
     lambda: F.scaled_dot_product_attention(_Q3, floats(1, 1, 3, 5), _Q3),
     "scaled_dot_product_attention: q (1, 1, 3, 4), k (1, 1, 3, 5), v (1, 1, 3, 4) do not fit"),
    ("e25_attention_mask_shape_mismatch", ShapeError,
     lambda: F.scaled_dot_product_attention(_Q3, _Q3, _Q3, attn_mask=np.ones((2, 2), bool)),
     "scaled_dot_product_attention: attn_mask shape (2, 2) does not broadcast to the scores shape (1, 1, 3, 3)"),
    ("e26_dropout_probability_one", TinygradTxError, lambda: F.dropout(floats(2, 3), 1.0),
     "dropout: dropout probability must be a number in [0, 1), got 1.0"),
    ("e27_item_of_a_tensor_with_several_elements", ShapeError, lambda: floats(2, 3).item(),
     "item: only a one-element tensor converts to a Python number, got shape (2, 3)"),
    ("e28_model_input_longer_than_block_size", ShapeError, lambda: _tiny_gpt()(np.zeros((1, 9), dtype=np.int64)),
     "GPT.forward: sequence length 9 exceeds block_size 8"),
    ("e29_model_input_of_float_token_ids", DTypeError, lambda: _tiny_gpt()(np.zeros((1, 3))),
     "GPT.forward: token ids must be integers, got dtype float64"),
]


@pytest.mark.parametrize("error_type, action, message", [entry[1:] for entry in ENGINE_CATALOGUE],
                         ids=[entry[0] for entry in ENGINE_CATALOGUE])
def test_engine_catalogue(error_type, action, message):
    expect_error(error_type, action, message)


@pytest.mark.skipif(backend.gpu_available()[0], reason="this machine has a GPU, so the no-GPU error cannot occur")
def test_e19_gpu_tensor_without_cupy_or_gpu():
    expect_error(DeviceError, lambda: Tensor(np.ones(2), device="gpu"), "device 'gpu'", "pip install")


# ======================================================================== CLI: exit 2, one line on stderr
# The entries that are one bad flag: (entry, flags added to a tiny run, what the error line must say).
FLAG_CATALOGUE = [
    ("c02_unknown_command_line_flag", ["--learnig_rate", "0.1"], "unrecognized arguments: --learnig_rate 0.1"),
    ("c03_unknown_preset", ["--preset", "huge"], "unknown preset 'huge': choose one of cpu, baby"),
    ("c05_learning_rate_zero", ["--learning_rate", "0"], "learning_rate must be > 0, got 0.0"),
    ("c05_learning_rate_negative", ["--learning_rate", "-0.001"], "learning_rate must be > 0, got -0.001"),
    ("c06_batch_size_zero", ["--batch_size", "0"], "batch_size must be > 0, got 0"),
    ("c06_batch_size_negative", ["--batch_size", "-4"], "batch_size must be > 0, got -4"),
    ("c07_block_size_zero", ["--block_size", "0"], "block_size must be > 0, got 0"),
    ("c07_block_size_negative", ["--block_size", "-3"], "block_size must be > 0, got -3"),
    ("c09_n_embd_not_divisible_by_n_head", ["--n_embd", "30", "--n_head", "4"],
     "n_embd 30 is not divisible by n_head 4"),
    ("c19_unknown_device", ["--device", "tpu"], "unknown device 'tpu': use 'cpu' or 'gpu' (alias 'cuda')"),
    ("c27_dropout_above_one", ["--dropout", "1.5"], "dropout must be in [0, 1), got 1.5"),
    ("c27_dropout_negative", ["--dropout", "-0.1"], "dropout must be in [0, 1), got -0.1"),
    ("c32_negative_seed", ["--seed", "-1"], "seed must be >= 0, got -1"),
]


@pytest.mark.parametrize("flags, message", [entry[1:] for entry in FLAG_CATALOGUE],
                         ids=[entry[0] for entry in FLAG_CATALOGUE])
def test_command_line_flag_catalogue(capsys, tmp_path, corpus, flags, message):
    cli_error(capsys, tiny_run(corpus, tmp_path / "run", *flags), message)


def test_c01_unknown_config_file_key(capsys, tmp_path, corpus):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"n_layer": 2, "learnig_rate": 0.1}))
    cli_error(capsys, tiny_run(corpus, tmp_path / "run", "--config", str(config)),
              f"config file '{config}': unknown key(s) 'learnig_rate'")


def test_c04_config_value_of_wrong_type(capsys, tmp_path, corpus):
    config = tmp_path / "bad.yaml"
    config.write_text("n_layer: four\n")
    cli_error(capsys, tiny_run(corpus, tmp_path / "run", "--config", str(config)),
              f"config file '{config}': n_layer must be an integer, got 'four'")


def test_c08_block_size_larger_than_the_split(capsys, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("hello world\n" * 10, encoding="utf-8")   # 120 characters: a 12-token val split
    cli_error(capsys, tiny_run(str(short), tmp_path / "run", "--block_size", "64"),
              "block_size 64 is longer than the val split: it has 12 tokens and a batch needs at least 65")


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
    cli_error(capsys, tiny_run(str(latin1), tmp_path / "run"),
              f"data file '{latin1}' is not UTF-8 text: invalid byte 0xe9 at byte offset 3")


def test_c13_data_file_with_wrong_checksum(capsys, tmp_path, monkeypatch):
    cached = tmp_path / "cache" / "tinyshakespeare" / "input.txt"
    cached.parent.mkdir(parents=True)
    cached.write_text("not Shakespeare\n", encoding="utf-8")
    monkeypatch.delenv("TINYSHAKESPEARE_PATH", raising=False)
    monkeypatch.setenv("TINYGRAD_TX_CACHE", str(tmp_path / "cache"))
    argv = tiny_run("unused", tmp_path / "run")
    cli_error(capsys, argv[2:], f"data file '{cached}' has the wrong checksum: expected sha256 86c4e6aa",
              "delete it to download it again")


def _checkpoint_in(capsys, corpus, out_dir):
    assert shakespeare.main(tiny_run(corpus, out_dir)) == 0
    capsys.readouterr()
    return out_dir / "ckpt_last.npz"


def test_c14_truncated_checkpoint(capsys, tmp_path, corpus):
    checkpoint = _checkpoint_in(capsys, corpus, tmp_path / "run")
    checkpoint.write_bytes(checkpoint.read_bytes()[:-200])
    cli_error(capsys, tiny_run(corpus, tmp_path / "run", "--resume"),
              f"checkpoint '{checkpoint}' is truncated or corrupted", "delete it or train again")


def test_c15_corrupted_checkpoint(capsys, tmp_path, corpus):
    checkpoint = _checkpoint_in(capsys, corpus, tmp_path / "run")
    data = bytearray(checkpoint.read_bytes())
    data[200:400] = bytes(b ^ 0xFF for b in data[200:400])   # inside the first array, zip structure intact
    checkpoint.write_bytes(bytes(data))
    cli_error(capsys, tiny_run(corpus, tmp_path / "run", "--resume"),
              f"checkpoint '{checkpoint}' is truncated or corrupted (BadZipFile: Bad CRC-32")


def test_c16_resume_with_no_checkpoint(capsys, tmp_path, corpus):
    out_dir = tmp_path / "never_trained"
    cli_error(capsys, tiny_run(corpus, out_dir, "--resume"),
              f"--resume: no checkpoint to resume from in '{out_dir}'")


def test_c17_resume_with_a_different_model(capsys, tmp_path, corpus):
    _checkpoint_in(capsys, corpus, tmp_path / "run")
    cli_error(capsys, tiny_run(corpus, tmp_path / "run", "--resume", "--n_layer", "2"),
              "--resume: n_layer is 1 in the checkpoint but 2 was given")


@pytest.mark.skipif(backend.gpu_available()[0], reason="this machine has a GPU, so the no-GPU error cannot occur")
def test_c18_device_gpu_without_cupy_or_gpu(capsys, tmp_path, corpus):
    cli_error(capsys, tiny_run(corpus, tmp_path / "run", "--device", "gpu"), "device 'gpu'", "pip install")


@pytest.mark.parametrize("top_k", ["0", "-1"])
def test_c20_sample_cli_top_k_below_one(capsys, tmp_path, top_k):
    cli_error(capsys, ["--out_dir", str(tmp_path), "--top_k", top_k],
              f"generate: top_k must be an integer >= 1 or None, got {top_k}", main=sample.main)


@pytest.mark.parametrize("temperature", ["0", "-1"])
def test_c21_sample_cli_temperature_not_positive(capsys, tmp_path, temperature):
    cli_error(capsys, ["--out_dir", str(tmp_path), "--temperature", temperature],
              f"generate: temperature must be > 0, got {float(temperature)}", main=sample.main)


def test_c22_sample_cli_without_a_checkpoint(capsys, tmp_path):
    cli_error(capsys, ["--out_dir", str(tmp_path)], f"no checkpoint '{tmp_path / 'ckpt_best.npz'}': train first",
              main=sample.main)


def test_c25_config_file_not_valid_json(capsys, tmp_path, corpus):
    config = tmp_path / "broken.json"
    config.write_text("{n_layer: 2}")
    cli_error(capsys, tiny_run(corpus, tmp_path / "run", "--config", str(config)),
              f"config file '{config}' is not valid JSON: Expecting property name enclosed in double quotes")


def test_c26_data_path_is_a_directory(capsys, tmp_path):
    cli_error(capsys, tiny_run(str(tmp_path), tmp_path / "run"),
              f"data file '{tmp_path}' is a directory, not a text file")


def test_c28_resume_on_text_the_tokenizer_cannot_encode(capsys, tmp_path, corpus):
    _checkpoint_in(capsys, corpus, tmp_path / "run")
    other = tmp_path / "other.txt"
    other.write_text("abc XYZ", encoding="utf-8")
    cli_error(capsys, tiny_run(str(other), tmp_path / "run", "--resume"),
              "CharTokenizer.encode: character 'X' (U+0058) at position 4 is not in the vocabulary of 12 characters")


def test_c29_npz_that_is_not_a_checkpoint(capsys, tmp_path, corpus):
    (tmp_path / "run").mkdir()
    np.savez(tmp_path / "run" / "ckpt_last.npz", weights=np.ones(3))
    cli_error(capsys, tiny_run(corpus, tmp_path / "run", "--resume"),
              f"checkpoint '{tmp_path / 'run' / 'ckpt_last.npz'}' is truncated or corrupted (KeyError: '__tree__')")


def test_c30_sample_cli_unknown_checkpoint_name(capsys, tmp_path):
    cli_error(capsys, ["--out_dir", str(tmp_path), "--ckpt", "first"],
              "argument --ckpt: invalid choice: 'first' (choose from 'best', 'last')", main=sample.main)


def test_c31_sample_cli_prompt_outside_the_vocabulary(capsys, tmp_path, corpus):
    _checkpoint_in(capsys, corpus, tmp_path / "run")
    cli_error(capsys, ["--out_dir", str(tmp_path / "run"), "--prompt", "hello"],
              "CharTokenizer.encode: character 'l' (U+006C) at position 2 is not in the vocabulary", main=sample.main)


def test_c33_sample_cli_negative_seed(capsys, tmp_path):
    cli_error(capsys, ["--out_dir", str(tmp_path), "--seed", "-1"], "seed must be >= 0, got -1", main=sample.main)


def _run_module(argv):
    return subprocess.run([sys.executable, "-m", "train.shakespeare", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_c23_real_process_exits_2_with_one_line_and_no_traceback(tmp_path):
    result = _run_module(["--batch_size", "0", "--out_dir", str(tmp_path / "run")])
    assert result.returncode == 2
    assert result.stderr == "error: batch_size must be > 0, got 0\n"


def test_c24_debug_shows_the_traceback(tmp_path):
    result = _run_module(["--batch_size", "0", "--out_dir", str(tmp_path / "run"), "--debug"])
    assert result.returncode == 1   # Python's status for an uncaught exception
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().endswith("ConfigError: batch_size must be > 0, got 0")
