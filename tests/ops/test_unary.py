"""tinygrad_tx/ops/unary.py: abs, sign, sigmoid, sin, cos, square, rsqrt, clamp/clip, minimum and the float tests.

Float64 gradcheck away from the kinks, PyTorch in float32 on the CPU and the GPU, PyTorch's gradient at the
kinks (abs'(0) = 0, sign' = 0, clamp's boundaries, minimum's ties), integer dtypes, and the errors.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_tx as tx
from tinygrad_tx import Tensor, gradcheck

from helpers import DEVICES, assert_close
from helpers.op_checks import against_torch, data, leaves

small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4)
seeds = st.integers(0, 2**16)

UNARY = {  # name: (ours, PyTorch's, positive inputs only)
    "abs": (lambda x: x.abs(), torch.abs, False),
    "sign": (lambda x: x.sign() * x, lambda x: torch.sign(x) * x, False),
    "sigmoid": (lambda x: x.sigmoid(), torch.sigmoid, False),
    "sin": (lambda x: x.sin(), torch.sin, False),
    "cos": (lambda x: x.cos(), torch.cos, False),
    "square": (lambda x: x.square(), torch.square, False),
    "rsqrt": (lambda x: x.rsqrt(), torch.rsqrt, True),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), lambda x: torch.clamp(x, -0.5, 0.7), False),
    "clamp_min": (lambda x: x.clamp(min=0.1), lambda x: torch.clamp(x, min=0.1), False),
    "clip_max": (lambda x: x.clip(max=-0.2), lambda x: torch.clip(x, max=-0.2), False),
}
KINKS = {"abs": [0.0], "sign": [0.0], "clamp": [-0.5, 0.7], "clamp_min": [0.1], "clip_max": [-0.2]}


@pytest.mark.parametrize("name", UNARY)
@given(shape=small_shapes, seed=seeds)
def test_gradcheck_unary_additions(name, shape, seed):
    ours, _, positive = UNARY[name]
    x = data(shape, seed, positive)
    for kink in KINKS.get(name, []):  # the derivative does not exist there: keep finite differences away
        x = np.where(np.abs(x - kink) < 1e-3, kink + 0.5, x)
    assert gradcheck(ours, leaves([x], dtype="float64"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", UNARY)
@given(shape=small_shapes, seed=seeds)
def test_against_torch_unary_additions(device, name, shape, seed):
    ours, theirs, positive = UNARY[name]
    against_torch(ours, theirs, [data(shape, seed, positive)], device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["abs", "sign", "clamp", "clamp_min", "clip_max"])
def test_gradients_at_the_kinks_are_pytorchs(device, name):
    """abs'(0) = 0, sign' = 0, clamp's gradient is 1 on its bounds (PyTorch's choices)."""
    ours, theirs, _ = UNARY[name]
    x = np.array([-1.0, -0.5, -0.2, 0.0, 0.1, 0.7, 2.0, 0.0], np.float32)
    against_torch(ours, theirs, [x], device)
    t = Tensor(x, requires_grad=True, device=device)
    ours(t).sum().backward()
    if name == "abs":
        assert t.grad.numpy()[3] == 0.0
    if name == "clamp":
        np.testing.assert_array_equal(t.grad.numpy(), [0, 1, 1, 1, 1, 1, 0, 1])


def test_sign_of_nan_is_zero_and_rsqrt_of_zero_is_inf_as_pytorch():
    x = np.array([np.nan, -0.0, 0.0, -3.0, np.inf], np.float32)
    np.testing.assert_array_equal(Tensor(x).sign().numpy(), torch.sign(torch.tensor(x)).numpy())
    t, ref = Tensor([0.0, 4.0], requires_grad=True), torch.tensor([0.0, 4.0], requires_grad=True)
    t.rsqrt().sum().backward()
    torch.rsqrt(ref).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), ref.grad.numpy())


def test_sigmoid_does_not_overflow_at_large_inputs():
    x = np.array([-1000.0, -90.0, 0.0, 90.0, 1000.0], np.float32)
    with np.errstate(over="raise"):
        out = Tensor(x).sigmoid().numpy()
    np.testing.assert_allclose(out, torch.sigmoid(torch.tensor(x)).numpy(), atol=1e-30)  # e^-90 is subnormal


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint8", "bool"])
@pytest.mark.parametrize("name", ["abs", "sign", "square"])
def test_integer_and_boolean_tensors_keep_pytorchs_dtype(name, dtype):
    x = np.array([-3, 0, 2, 5], np.int64).astype(dtype)
    ref = torch.from_numpy(x.copy())
    if name == "abs" and dtype == "bool":
        with pytest.raises(tx.DTypeError, match="abs: not defined for a boolean tensor"):
            Tensor(x, dtype=dtype).abs()
        return
    out = getattr(Tensor(x, dtype=dtype), name)()
    expected = getattr(torch, name)(ref).numpy()
    assert out.dtype == expected.dtype and not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("bounds", [{"min": 1}, {"max": 2}, {"min": 1, "max": 2}, {"min": 0.5}, {"min": 3, "max": 1}])
@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool", "float64"])
def test_clamp_dtypes_and_bounds_as_pytorch(dtype, bounds):
    x = np.array([0, 1, 2, 3], np.int64).astype(dtype)
    out, ref = Tensor(x, dtype=dtype).clamp(**bounds), torch.clamp(torch.from_numpy(x.copy()), **bounds)
    assert out.dtype == ref.numpy().dtype
    np.testing.assert_array_equal(out.numpy(), ref.numpy())


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda t: t.clamp(), tx.TinygradTxError, r"clamp: at least one of min or max must be given"),
        (lambda t: t.clamp(Tensor([1.0])), tx.DTypeError, r"clamp: min must be a Python number or None, got Tensor"),
        (lambda t: t.astype("uint8").clamp(max=300), tx.DTypeError, r"clamp: max=300 does not fit dtype uint8"),
        (lambda t: t.astype("int64").sigmoid(), tx.DTypeError, r"sigmoid: needs a float tensor, got dtype int64"),
        (lambda t: t.astype("int32").rsqrt(), tx.DTypeError, r"rsqrt: needs a float tensor, got dtype int32"),
        (lambda t: t.minimum(Tensor(np.ones(4))), tx.ShapeError, r"minimum: shapes \(3,\) and \(4,\) cannot be"),
    ],
)
def test_errors_name_the_op_and_values(call, error, message):
    with pytest.raises(error, match=message):
        call(Tensor([1.0, 2.0, 3.0]))


# ---------------------------------------------------------------- minimum
@given(shapes=pairs, seed=seeds)
def test_gradcheck_minimum(shapes, seed):
    a, b = data(shapes.input_shapes[0], seed), data(shapes.input_shapes[1], seed + 1)
    assert gradcheck(tx.minimum, leaves([a, b], dtype="float64"))


@pytest.mark.parametrize("device", DEVICES)
@given(shapes=pairs, seed=seeds)
def test_against_torch_minimum(device, shapes, seed):
    a, b = data(shapes.input_shapes[0], seed), data(shapes.input_shapes[1], seed + 1)
    against_torch(lambda x, y: x.minimum(y), torch.minimum, [a, b], device)


@pytest.mark.parametrize("device", DEVICES)
def test_minimum_splits_ties_half_half_like_maximum_and_pytorch(device):
    a, b = np.array([1.0, 2.0, 3.0], np.float32), np.array([1.0, 5.0, 3.0], np.float32)
    against_torch(tx.minimum, torch.minimum, [a, b], device)
    x, y = leaves([a, b], device)
    tx.minimum(x, y).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.5, 1.0, 0.5])
    np.testing.assert_array_equal(y.grad.numpy(), [0.5, 0.0, 0.5])
    assert tx.minimum(Tensor([1.0, 4.0]), 2.0).tolist() == [1.0, 2.0]


# ---------------------------------------------------------------- isnan, isinf, isfinite
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["isnan", "isinf", "isfinite"])
def test_float_tests_match_pytorch_and_carry_no_gradient(device, name):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, 3.0], np.float32)
    t = Tensor(x, requires_grad=True, device=device)
    for out in (getattr(t, name)(), getattr(tx, name)(t)):
        assert out.dtype == np.bool_ and not out.requires_grad and out.device == device
        np.testing.assert_array_equal(out.numpy(), getattr(torch, name)(torch.tensor(x)).numpy())
    ints = Tensor(np.array([0, 5], np.int32), device=device)
    np.testing.assert_array_equal(getattr(ints, name)().numpy(), [name == "isfinite"] * 2)


def test_the_checks_catch_a_wrong_kink_gradient():
    """Test the tester: a clamp whose gradient is 0 on its bounds must fail against PyTorch."""
    x = np.array([-0.5, 0.0, 0.7], np.float32)
    with pytest.raises(AssertionError, match="grad of input 0"):
        wrong = lambda t: tx.where(Tensor([False, True, False]), t, t.clamp(-0.5, 0.7).detach())  # noqa: E731
        against_torch(wrong, UNARY["clamp"][1], [x])


def test_backward_uses_arithmetic_that_also_runs_on_tensors():
    """The backwards are formulas of saved values: called with Tensors they give Tensors (create_graph's need)."""
    from tinygrad_tx.ops import unary

    x = Tensor([0.3, -1.2])
    for function in (unary.Sin, unary.Cos, unary.Sigmoid, unary.Square, unary.Rsqrt):
        ctx = type("Ctx", (), {"saved_tensors": (x.abs() if function is unary.Rsqrt else x,)})()
        grad = function.backward(ctx, Tensor([1.0, 1.0]))
        assert isinstance(grad, Tensor) and grad.shape == (2,)
    ctx = type("Ctx", (), {"saved_tensors": (x,)})()
    assert_close(unary.Sin.backward(ctx, Tensor([1.0, 1.0])).numpy(), np.cos(x.numpy()), 1e-6)
