"""The engine half of the error catalogue of docs/errors.md (the CLI half: tests/train/test_errors_cli.py).

Each entry expects exactly one exception of the documented type whose message names the op and the values.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_tx.nn.functional as F
from models.gpt import GPTConfig
from tinygrad_tx import (
    DeviceError,
    DTypeError,
    GraphError,
    IndexOutOfRangeError,
    ShapeError,
    Tensor,
    TinygradTxError,
    backend,
    kernels,
    nn,
    where,
)
from tinygrad_tx.optim import SGD, AdamW

from helpers import REPO
from helpers.gpt import tiny_gpt


def expect_error(error_type, action, *fragments):
    """Run ``action``; it must raise ``error_type`` whose message holds every fragment. Returns the message."""
    with pytest.raises(error_type) as caught:
        action()
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in the message {message!r}"
    return message


def floats(*shape):
    return Tensor(np.ones(shape, dtype=np.float32))


# ======================================================================== engine: one exception each
@pytest.mark.parametrize(
    "op, name",
    [
        (lambda a, b: a + b, "add"),
        (lambda a, b: a - b, "sub"),
        (lambda a, b: a * b, "mul"),
        (lambda a, b: a / b, "div"),
        (lambda a, b: a.maximum(b), "maximum"),
    ],
    ids=["add", "sub", "mul", "div", "max"],
)
def test_e01_binary_op_shape_mismatch(op, name):
    expect_error(ShapeError, lambda: op(floats(2, 3), floats(4)), f"{name}: shapes (2, 3) and (4,) cannot be broadcast")


def test_e01_where_shape_mismatch():
    expect_error(
        ShapeError,
        lambda: where(Tensor(np.ones((2, 3), dtype=bool)), floats(2, 3), floats(4)),
        "where: condition (2, 3) and values (2, 3), (4,)",
    )


@pytest.mark.parametrize("impl", ["fused", "composed"])
def test_e03_layer_norm_weight_shape_mismatch(impl):
    expect_error(
        ShapeError,
        lambda: F.layer_norm(floats(2, 8), floats(7), floats(8), impl=impl),
        "layer_norm: weight shape (7,)",
        "normalized shape (8,)",
        "input shape (2, 8)",
    )


FLOAT_ONLY_OPS = [
    ("exp", lambda x: x.exp()),
    ("log", lambda x: x.log()),
    ("softmax", F.softmax),
    ("log_softmax", F.log_softmax),
    ("layer_norm", F.layer_norm),
    ("gelu", F.gelu),
    ("linear", lambda x: F.linear(x, floats(4, 3))),
    ("cross_entropy", lambda x: F.cross_entropy(x, Tensor(np.zeros(2, dtype=np.int64)))),
    ("scaled_dot_product_attention", lambda x: F.scaled_dot_product_attention(*[x.reshape(1, 1, 2, 3)] * 3)),
]


@pytest.mark.parametrize("name, action", FLOAT_ONLY_OPS, ids=[name for name, _ in FLOAT_ONLY_OPS])
@pytest.mark.parametrize("dtype", [np.int64, np.bool_], ids=["int64", "bool"])
def test_e06_integer_or_boolean_where_float_needed(name, action, dtype):
    expect_error(
        DTypeError,
        lambda: action(Tensor(np.ones((2, 3), dtype=dtype))),
        f"{name}: needs a float tensor, got dtype {np.dtype(dtype)}",
    )


@pytest.mark.parametrize("dtype", [np.int64, np.bool_], ids=["int64", "bool"])
def test_e07_requires_grad_on_integer_tensor(dtype):
    expect_error(
        DTypeError,
        lambda: Tensor(np.ones(3, dtype=dtype), requires_grad=True),
        f"requires_grad: only float tensors can require gradients, got dtype {np.dtype(dtype)}",
    )


@pytest.mark.parametrize(
    "index, axis, size", [(5, 0, 3), ((slice(None), 4), 1, 4), (np.array([0, 7]), 0, 3)], ids=["int", "axis1", "array"]
)
def test_e09_getitem_index_out_of_range(index, axis, size):
    bad = 7 if isinstance(index, np.ndarray) else (index if isinstance(index, int) else index[1])
    expect_error(
        IndexOutOfRangeError,
        lambda: floats(3, 4)[index],
        f"getitem: index {bad} is out of bounds for axis {axis} with size {size}",
        "tensor shape (3, 4)",
    )


@pytest.mark.parametrize(
    "op, name", [(lambda a, b: a @ b, "MatMul"), (lambda a, b: a * b, "Mul")], ids=["matmul", "mul"]
)
def test_e10_cpu_and_gpu_tensors_mixed(monkeypatch, op, name):
    on_gpu = floats(2, 2)
    real_device_of = backend.device_of
    monkeypatch.setattr(backend, "device_of", lambda a: "gpu" if a is on_gpu.data else real_device_of(a))
    expect_error(
        DeviceError,
        lambda: op(floats(2, 2), on_gpu),
        f"{name}: tensors on different devices (cpu and gpu); move them with .to('cpu') first",
    )


def test_e11_backward_twice_without_retain_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    expect_error(GraphError, loss.backward, "the graph was already freed", "retain_graph=True")


def _requires_grad(*shape):
    return Tensor(np.ones(shape), requires_grad=True)


_PROMPT = np.zeros((1, 1), dtype=np.int64)
_Q3 = floats(1, 1, 3, 4)

# The entries that need no setup: (entry, exception type, the bad call, what its message must say).
ENGINE_CATALOGUE = [
    (
        "e02_matmul_shape_mismatch",
        ShapeError,
        lambda: floats(3, 4) @ floats(5, 4),
        "matmul: shapes (3, 4) and (5, 4) do not align (4 != 5)",
    ),
    (
        "e04_cross_entropy_targets_shape_mismatch",
        ShapeError,
        lambda: F.cross_entropy(floats(4, 5), Tensor(np.zeros(3, dtype=np.int64))),
        "cross_entropy: targets shape (3,) does not match logits shape (4, 5) (expected (4,))",
    ),
    (
        "e05_cross_entropy_target_out_of_range",
        IndexOutOfRangeError,
        lambda: F.cross_entropy(floats(4, 5), Tensor(np.array([0, 1, 7, 2]))),
        "cross_entropy: target 7 is out of range for 5 classes (valid: 0..4, or ignore_index=-1)",
    ),
    (
        "e08_embedding_index_too_large",
        IndexOutOfRangeError,
        lambda: F.embedding(Tensor(np.array([0, 9])), floats(5, 3)),
        "embedding: index 9 is out of range for a table of 5 rows (valid: 0..4)",
    ),
    (
        "e08_embedding_index_negative",
        IndexOutOfRangeError,
        lambda: F.embedding(Tensor(np.array([-1])), floats(5, 3)),
        "embedding: index -1 is out of range for a table of 5 rows (valid: 0..4)",
    ),
    (
        "e12_backward_of_non_scalar_without_gradient",
        GraphError,
        lambda: (_requires_grad(2, 3) * 2).backward(),
        "backward: a gradient is needed for a non-scalar output of shape (2, 3)",
    ),
    (
        "e13_backward_of_tensor_without_grad",
        GraphError,
        lambda: floats(2).sum().backward(),
        "backward: this tensor does not require grad",
    ),
    (
        "e14_load_state_dict_lists_every_problem_at_once",
        TinygradTxError,
        lambda: nn.Linear(3, 2).load_state_dict({"weight": np.ones((3, 3)), "extra": np.ones(1)}),
        "Linear.load_state_dict: missing keys: ['bias']; unexpected keys: ['extra']; "
        "shape mismatch: 'weight' expects (2, 3), got (3, 3)",
    ),
    (
        "e15_sgd_learning_rate_zero",
        TinygradTxError,
        lambda: SGD(nn.Linear(2, 2).parameters(), lr=0),
        "SGD: lr must be a positive number, got 0",
    ),
    (
        "e15_adamw_learning_rate_negative",
        TinygradTxError,
        lambda: AdamW(nn.Linear(2, 2).parameters(), lr=-1e-3),
        "AdamW: lr must be a positive number, got -0.001",
    ),
    (
        "e16_model_n_embd_not_divisible_by_n_head",
        TinygradTxError,
        lambda: GPTConfig(n_embd=30, n_head=4),
        "GPTConfig: n_embd 30 is not divisible by n_head 4",
    ),
    (
        "e17_sampling_top_k_zero",
        TinygradTxError,
        lambda: tiny_gpt().generate(_PROMPT, 2, top_k=0),
        "generate: top_k must be an integer >= 1 or None, got 0",
    ),
    (
        "e17_sampling_top_k_negative",
        TinygradTxError,
        lambda: tiny_gpt().generate(_PROMPT, 2, top_k=-3),
        "generate: top_k must be an integer >= 1 or None, got -3",
    ),
    (
        "e18_sampling_temperature_zero",
        TinygradTxError,
        lambda: tiny_gpt().generate(_PROMPT, 2, temperature=0),
        "generate: temperature must be > 0, got 0",
    ),
    (
        "e18_sampling_temperature_negative",
        TinygradTxError,
        lambda: tiny_gpt().generate(_PROMPT, 2, temperature=-0.5),
        "generate: temperature must be > 0, got -0.5",
    ),
    (
        "e20_sum_axis_out_of_range",
        ShapeError,
        lambda: floats(2, 3).sum(axis=2),
        "sum: axis 2 is out of range for a tensor with 2 dimensions",
    ),
    (
        "e20_max_axis_out_of_range",
        ShapeError,
        lambda: floats(2, 3).max(axis=-3),
        "max: axis -3 is out of range for a tensor with 2 dimensions",
    ),
    (
        "e21_reshape_to_another_size",
        ShapeError,
        lambda: floats(2, 3).reshape(4, 2),
        "reshape: cannot reshape (2, 3) (6 elements) into (4, 2)",
    ),
    (
        "e22_backward_with_a_gradient_of_the_wrong_shape",
        ShapeError,
        lambda: (_requires_grad(2, 3) * 2).backward(np.ones((3, 2))),
        "backward: gradient shape (3, 2) does not match tensor shape (2, 3)",
    ),
    (
        "e23_linear_weight_shape_mismatch",
        ShapeError,
        lambda: F.linear(floats(2, 3), floats(4, 5)),
        "linear: input shape (2, 3) does not fit weight shape (4, 5)",
    ),
    (
        "e24_attention_shapes_do_not_fit",
        ShapeError,
        lambda: F.scaled_dot_product_attention(_Q3, floats(1, 1, 3, 5), _Q3),
        "scaled_dot_product_attention: q (1, 1, 3, 4), k (1, 1, 3, 5), v (1, 1, 3, 4) do not fit",
    ),
    (
        "e25_attention_mask_shape_mismatch",
        ShapeError,
        lambda: F.scaled_dot_product_attention(_Q3, _Q3, _Q3, attn_mask=np.ones((2, 2), bool)),
        "scaled_dot_product_attention: attn_mask shape (2, 2) does not broadcast to the scores shape (1, 1, 3, 3)",
    ),
    (
        "e26_dropout_probability_one",
        TinygradTxError,
        lambda: F.dropout(floats(2, 3), 1.0),
        "dropout: dropout probability must be a number in [0, 1), got 1.0",
    ),
    (
        "e27_item_of_a_tensor_with_several_elements",
        ShapeError,
        lambda: floats(2, 3).item(),
        "item: only a one-element tensor converts to a Python number, got shape (2, 3)",
    ),
    (
        "e28_model_input_longer_than_block_size",
        ShapeError,
        lambda: tiny_gpt()(np.zeros((1, 9), dtype=np.int64)),
        "GPT.forward: sequence length 9 exceeds block_size 8",
    ),
    (
        "e29_model_input_of_float_token_ids",
        DTypeError,
        lambda: tiny_gpt()(np.zeros((1, 3))),
        "GPT.forward: token ids must be integers, got dtype float64",
    ),
    (
        "e30_unknown_kernels",
        TinygradTxError,
        lambda: kernels.use("cuda"),
        "kernels.use: unknown kernels 'cuda': use 'reference' or 'fast'",
    ),
    (
        "e32_integer_mask_or_condition",
        DTypeError,
        lambda: floats(2, 3).masked_fill(np.array([1, 0, 1]), 0.0),
        "masked_fill: the mask must be a boolean tensor, got dtype int64 (compare it first, e.g. mask != 0)",
    ),
    (
        "e33_permute_axes_out_of_range",
        ShapeError,
        lambda: floats(2, 3).permute(0, 2),
        "permute: (0, 2) is not a permutation of the 2 axes of shape (2, 3)",
    ),
    (
        "e34_comparison_shape_mismatch",
        ShapeError,
        lambda: floats(2, 3) < floats(4),
        "less: shapes (2, 3) and (4,) cannot be broadcast together (trailing dimensions must be equal or 1)",
    ),
]


@pytest.mark.parametrize(
    "error_type, action, message",
    [entry[1:] for entry in ENGINE_CATALOGUE],
    ids=[entry[0] for entry in ENGINE_CATALOGUE],
)
def test_engine_catalogue(error_type, action, message):
    expect_error(error_type, action, message)


@pytest.mark.skipif(backend.gpu_available()[0], reason="this machine has a GPU, so the no-GPU error cannot occur")
def test_e19_gpu_tensor_without_cupy_or_gpu():
    expect_error(DeviceError, lambda: Tensor(np.ones(2), device="gpu"), "device 'gpu'", "pip install")


def test_e31_bad_kernels_environment_variable():
    code = (
        "import tinygrad_tx.nn.functional as F\nfrom tinygrad_tx import Tensor, TinygradTxError\n"
        "try:\n    F.gelu(Tensor([1.0]))\nexcept TinygradTxError as error:\n    print(error)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": REPO, "TINYGRAD_TX_KERNELS": "slow"},
    )
    assert result.stdout.strip() == "TINYGRAD_TX_KERNELS='slow' is not a kernel choice: use 'reference' or 'fast'", (
        result.stderr
    )
