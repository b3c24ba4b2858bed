"""Every primitive op: finite-difference gradcheck in float64 on hypothesis-drawn shapes, and forward
values and input gradients against PyTorch in float32 (relative error < 1e-5 forward, < 1e-4 gradients).
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

small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4)
seeds = st.integers(0, 2**16)


def data(shape, seed, positive=False, dtype=np.float64):
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.5, 2.0, shape) if positive else rng.standard_normal(shape)
    return np.asarray(values, dtype=dtype)


def leaves(arrays, device="cpu", dtype=None):
    return [Tensor(a, requires_grad=True, device=device, dtype=dtype) for a in arrays]


def against_torch(ours, theirs, arrays, device="cpu", seed=0):
    """Forward and every input gradient of ``ours`` vs ``theirs`` on the same float32 data."""
    arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
    xs = leaves(arrays, device)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = ours(*xs), theirs(*ts)
    assert_close(out.numpy(), ref.detach().numpy(), 1e-5, atol=1e-6, what="forward")
    upstream = np.random.default_rng(seed).standard_normal(ref.shape).astype(np.float32)
    out.backward(Tensor(upstream, device=device))
    ref.backward(torch.tensor(upstream))
    for i, (x, t) in enumerate(zip(xs, ts)):
        assert x.grad is not None, f"input {i} got no gradient"
        assert x.grad.shape == x.shape and x.grad.dtype == np.float32
        assert_close(x.grad.numpy(), t.grad.numpy(), 1e-4, atol=1e-6, what=f"grad of input {i}")


# ------------------------------------------------------------------ binary elementwise, broadcasting
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, False),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, False),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, False),
    "div": (lambda a, b: a / b, lambda a, b: a / b, True),
    "maximum": (lambda a, b: a.maximum(b), torch.maximum, False),
}


@pytest.mark.parametrize("name", BINARY)
@given(shapes=pairs, seed=seeds)
def test_gradcheck_binary(name, shapes, seed):
    ours, _, positive = BINARY[name]
    a, b = data(shapes.input_shapes[0], seed), data(shapes.input_shapes[1], seed + 1, positive)
    assert gradcheck(ours, leaves([a, b], dtype="float64"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", BINARY)
@given(shapes=pairs, seed=seeds)
def test_against_torch_binary(device, name, shapes, seed):
    ours, theirs, positive = BINARY[name]
    a, b = data(shapes.input_shapes[0], seed), data(shapes.input_shapes[1], seed + 1, positive)
    against_torch(ours, theirs, [a, b], device)


@pytest.mark.parametrize(
    "expr", ["2 * t", "t * 2", "t - 1", "1 - t", "1 / t", "t / 4", "t + 0.5", "0.5 + t", "2 ** t", "t ** 3", "-t"]
)
def test_python_scalars_on_either_side(expr):
    x = np.array([0.5, 1.5, 2.0], dtype=np.float32)
    t, tt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref = eval(expr, {"t": t}), eval(expr, {"t": tt})
    assert out.dtype == np.float32
    assert_close(out.numpy(), ref.detach().numpy(), 1e-6)
    out.sum().backward()
    ref.sum().backward()
    assert_close(t.grad.numpy(), tt.grad.numpy(), 1e-5)


def test_numpy_float64_scalar_keeps_float32():
    t = Tensor(np.ones(3, dtype=np.float32))
    assert (t * np.float64(0.5)).dtype == np.float32
    assert (np.float64(0.5) * t).dtype == np.float32


# ------------------------------------------------------------------ unary elementwise
UNARY = {
    "neg": (lambda x: -x, lambda x: -x, False),
    "exp": (lambda x: x.exp(), torch.exp, False),
    "log": (lambda x: x.log(), torch.log, True),
    "sqrt": (lambda x: x.sqrt(), torch.sqrt, True),
    "tanh": (lambda x: x.tanh(), torch.tanh, False),
    "relu": (lambda x: x.relu(), torch.relu, False),
    "pow2": (lambda x: x**2, lambda x: x**2, False),
    "pow3": (lambda x: x**3, lambda x: x**3, False),
    "pow_half": (lambda x: x**0.5, lambda x: x**0.5, True),
    "pow_neg": (lambda x: x**-1.5, lambda x: x**-1.5, True),
}


@pytest.mark.parametrize("name", UNARY)
@given(shape=small_shapes, seed=seeds)
def test_gradcheck_unary(name, shape, seed):
    ours, _, positive = UNARY[name]
    x = data(shape, seed, positive)
    if name == "relu":  # keep away from the kink, where the derivative does not exist
        x = np.where(np.abs(x) < 1e-3, 0.5, x)
    assert gradcheck(ours, leaves([x], dtype="float64"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", UNARY)
@given(shape=small_shapes, seed=seeds)
def test_against_torch_unary(device, name, shape, seed):
    ours, theirs, positive = UNARY[name]
    against_torch(ours, theirs, [data(shape, seed, positive)], device)


# ------------------------------------------------------------------ reductions
@st.composite
def shape_and_axis(draw, allow_none=True):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    choice = draw(st.sampled_from(["none", "int", "tuple"] if allow_none else ["int", "tuple"]))
    if choice == "none":
        return shape, None
    if choice == "int":
        return shape, draw(st.integers(-len(shape), len(shape) - 1))
    axes = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True))
    return shape, tuple(a - len(shape) if draw(st.booleans()) else a for a in axes)


REDUCE = {
    "sum": (
        lambda x, axis, k: x.sum(axis=axis, keepdims=k),
        lambda x, axis, k: x.sum() if axis is None and not k else x.sum(dim=axis, keepdim=k),
    ),
    "mean": (
        lambda x, axis, k: x.mean(axis=axis, keepdims=k),
        lambda x, axis, k: x.mean() if axis is None and not k else x.mean(dim=axis, keepdim=k),
    ),
    "max": (
        lambda x, axis, k: x.max(axis=axis, keepdims=k),
        lambda x, axis, k: (
            x.amax()
            if axis is None and not k
            else x.amax(dim=axis if axis is not None else tuple(range(x.ndim)), keepdim=k)
        ),
    ),
}


@pytest.mark.parametrize("name", REDUCE)
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_gradcheck_reduce(name, case, keepdims, seed):
    (shape, axis), ours = case, REDUCE[name][0]
    assert gradcheck(lambda x: ours(x, axis, keepdims), leaves([data(shape, seed)], dtype="float64"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", REDUCE)
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_against_torch_reduce(device, name, case, keepdims, seed):
    (shape, axis), (ours, theirs) = case, REDUCE[name]
    against_torch(lambda x: ours(x, axis, keepdims), lambda x: theirs(x, axis, keepdims), [data(shape, seed)], device)


def test_max_and_min_ties_split_the_gradient_evenly():
    """As PyTorch's amax/amin and full max()/min(): each of the m tied elements gets 1/m."""
    data = [[3.0, 1.0, 3.0], [2.0, 2.0, 2.0]]
    against_torch(lambda t: t.max(axis=1), lambda t: t.amax(dim=1), [np.array(data, np.float32)])
    against_torch(lambda t: t.min(axis=1), lambda t: t.amin(dim=1), [-np.array(data, np.float32)])
    x = Tensor(data, requires_grad=True)
    x.max().backward()
    assert x.grad.numpy().tolist() == [[0.5, 0, 0.5], [0, 0, 0]]


def test_min_against_torch():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    against_torch(lambda t: t.min(axis=1), lambda t: t.amin(dim=1), [x])


# ------------------------------------------------------------------ movement
MOVEMENT = {
    "reshape": (lambda x: x.reshape(4, 6), lambda x: x.reshape(4, 6)),
    "reshape_infer": (lambda x: x.reshape(-1, 3), lambda x: x.reshape(-1, 3)),
    "permute": (lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1)),
    "transpose": (lambda x: x.transpose(-2, -1), lambda x: x.transpose(-2, -1)),
    "T": (lambda x: x.reshape(6, 4).T, lambda x: x.reshape(6, 4).T),
    "expand": (lambda x: x[:, :1].expand(3, 2, 3, 4), lambda x: x[:, :1].expand(3, 2, 3, 4)),
    "unsqueeze_squeeze": (lambda x: x.unsqueeze(1).squeeze(1) * x, lambda x: x.unsqueeze(1).squeeze(1) * x),
    "getitem_int": (lambda x: x[1], lambda x: x[1]),
    "getitem_slices": (lambda x: x[:, 1:, ::2], lambda x: x[:, 1:, ::2]),
    "getitem_negative_step": (lambda x: x[:, ::-1], lambda x: x.flip(1)),
    "getitem_none_ellipsis": (lambda x: x[None, ..., 1], lambda x: x[None, ..., 1]),
    "getitem_int_array_repeated": (lambda x: x[:, [0, 2, 0, 0]], lambda x: x[:, [0, 2, 0, 0]]),
    "getitem_two_arrays": (lambda x: x[[0, 1, 1], [2, 0, 2]], lambda x: x[[0, 1, 1], [2, 0, 2]]),
    "getitem_bool_mask": (lambda x: x[x > 0], lambda x: x[x > 0]),
    "concatenate": (lambda x: tx.concatenate([x, x[:, :1] * 2], axis=1), lambda x: torch.cat([x, x[:, :1] * 2], dim=1)),
    "stack": (lambda x: tx.stack([x, x * 3], axis=-1), lambda x: torch.stack([x, x * 3], dim=-1)),
    "split": (
        lambda x: tx.split(x, 1, axis=1)[2] * x.split([2, 1], axis=1)[0].sum(),
        lambda x: torch.split(x, 1, dim=1)[2] * torch.split(x, [2, 1], dim=1)[0].sum(),
    ),
    "where": (lambda x: tx.where(x > 0, x, x * x), lambda x: torch.where(x > 0, x, x * x)),
    "masked_fill": (lambda x: x.masked_fill(x < 0, 0.0) * x, lambda x: x.masked_fill(x < 0, 0.0) * x),
}


@pytest.mark.parametrize("name", MOVEMENT)
def test_gradcheck_movement(name):
    assert gradcheck(MOVEMENT[name][0], leaves([data((2, 3, 4), 7)], dtype="float64"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", MOVEMENT)
def test_against_torch_movement(device, name):
    ours, theirs = MOVEMENT[name]
    against_torch(ours, theirs, [data((2, 3, 4), 11)], device)


@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4), seed=seeds, data_=st.data())
def test_gradcheck_permute_drawn(shape, seed, data_):
    axes = data_.draw(st.permutations(range(len(shape))))
    assert gradcheck(lambda x: x.permute(*axes), leaves([data(shape, seed)], dtype="float64"))


# ------------------------------------------------------------------ matmul
@st.composite
def matmul_shapes(draw):
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    kind = draw(st.sampled_from(["vv", "mv", "vm", "mm", "batched", "broadcast", "rows_times_matrix"]))
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=2, max_side=3)).input_shapes
    return {
        "vv": ((k,), (k,)),
        "mv": ((n, k), (k,)),
        "vm": ((k,), (k, m)),
        "mm": ((n, k), (k, m)),
        "batched": ((3, n, k), (3, k, m)),
        "broadcast": (batch[0] + (n, k), batch[1] + (k, m)),
        "rows_times_matrix": ((2, 3, n, k), (k, m)),
    }[kind]


@given(shapes=matmul_shapes(), seed=seeds)
def test_gradcheck_matmul(shapes, seed):
    a, b = data(shapes[0], seed), data(shapes[1], seed + 1)
    assert gradcheck(lambda x, y: x @ y, leaves([a, b], dtype="float64"))


@pytest.mark.parametrize("device", DEVICES)
@given(shapes=matmul_shapes(), seed=seeds)
def test_against_torch_matmul(device, shapes, seed):
    a, b = data(shapes[0], seed), data(shapes[1], seed + 1)
    against_torch(lambda x, y: x @ y, torch.matmul, [a, b], device)


# ------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("op,symbol", [("add", "+"), ("sub", "-"), ("mul", "*"), ("div", "/")])
def test_binary_shape_mismatch_names_op_and_shapes(op, symbol):
    a, b = Tensor(np.ones((3, 4))), Tensor(np.ones((2, 4)))  # noqa: F841 (read by the eval below)
    with pytest.raises(tx.ShapeError, match=rf"^{op}: shapes \(3, 4\) and \(2, 4\) cannot be broadcast"):
        eval(f"a {symbol} b")


def test_matmul_mismatch_names_both_shapes():
    with pytest.raises(tx.ShapeError, match=r"matmul: shapes \(3, 4\) and \(5, 4\) do not align \(4 != 5\)"):
        Tensor(np.ones((3, 4))) @ Tensor(np.ones((5, 4)))


def test_getitem_out_of_range_gives_index_and_size():
    with pytest.raises(tx.IndexOutOfRangeError, match=r"getitem: index 7 is out of bounds for axis 0 with size 3"):
        Tensor(np.ones(3))[7]


def test_float_op_on_integer_tensor_is_refused():
    with pytest.raises(tx.DTypeError, match=r"log: needs a float tensor, got dtype int64"):
        Tensor([1, 2, 3]).log()


def test_reshape_and_axis_errors():
    with pytest.raises(tx.ShapeError, match=r"reshape: cannot reshape \(3, 4\) \(12 elements\) into \(5,\)"):
        Tensor(np.ones((3, 4))).reshape(5)
    with pytest.raises(tx.ShapeError, match=r"sum: axis 2 is out of range for a tensor with 2 dimensions"):
        Tensor(np.ones((3, 4))).sum(axis=2)


@pytest.mark.parametrize(
    "expr,message",
    [
        ("t.unsqueeze(5)", r"unsqueeze: axis 5 is out of range"),
        ("t.transpose(0, 5)", r"transpose: axis 5 is out of range for a tensor with 2 dimensions"),
        ("t.split(1, dim=3)", r"split: axis 3 is out of range"),
        ("tx.concatenate([t, t], axis=3)", r"concatenate: axis 3 is out of range"),
        ("tx.concatenate([])", r"concatenate: needs at least one tensor"),
        ("tx.stack([])", r"stack: needs at least one tensor"),
        ("t.squeeze(0)", r"squeeze: axis 0 has size 2; only size-1 axes can be removed"),
    ],
)
def test_axis_errors_name_the_op(expr, message):
    t = Tensor(np.ones((2, 3)))  # noqa: F841 (read by the eval below)
    with pytest.raises(tx.ShapeError, match=message):
        eval(expr)


def test_integer_operand_takes_the_float_dtype():
    ints, floats = Tensor([1, 2, 3]), Tensor([0.5, 1.5, 2.5], requires_grad=True)
    assert (ints * floats).dtype == np.float32 and (floats + ints).dtype == np.float32
    assert (Tensor(np.ones((2, 3))) @ Tensor(np.ones((3, 2), dtype=np.int64))).dtype == np.float32
    (ints * floats).sum().backward()
    np.testing.assert_allclose(floats.grad.numpy(), [1, 2, 3])


def test_non_numeric_data_is_refused():
    with pytest.raises(tx.DTypeError, match="Tensor: cannot make an array of numbers from list data"):
        Tensor([[1, 2], [3]])
    with pytest.raises(tx.DTypeError, match="Tensor: data must be numbers or booleans, got dtype <U3"):
        Tensor("abc")


# ---------------------------------------------------------------- masks and conditions (issue 13, item 1)
@pytest.mark.parametrize(
    "make",
    [
        lambda x, y: tx.where(Tensor([1, 0, 1]), x, y),
        lambda x, y: tx.where(np.array([1.0, 0.0, 1.0]), x, y),
        lambda x, y: y.masked_fill(Tensor([1, 0, 1]), 0.0),
        lambda x, y: y.masked_fill(np.array([1, 0, 1], dtype=np.uint8), 0.0),
    ],
)
def test_non_boolean_masks_are_refused_like_pytorch(make):
    """Regression: an int mask gave NumPy's forward but ``~mask`` (bitwise not) in backward: y.grad [-2, -1, -2]."""
    x, y = (Tensor([1.0, 2.0, 3.0], requires_grad=True) for _ in range(2))
    with pytest.raises(tx.DTypeError, match=r"(where|masked_fill): the (condition|mask) must be a boolean tensor"):
        make(x, y)


def test_boolean_masks_give_pytorchs_gradients():
    mask = np.array([True, False, True])
    x, y = (Tensor([1.0, 2.0, 3.0], requires_grad=True) for _ in range(2))
    (tx.where(Tensor(mask), x, y) * Tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 0, 3])
    np.testing.assert_array_equal(y.grad.numpy(), [0, 2, 0])
    z = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    z.masked_fill(mask, 0.0).sum().backward()
    np.testing.assert_array_equal(z.grad.numpy(), [0, 1, 0])


# ---------------------------------------------------------------- split's backward joins adjacent views
def _split_gradients(buffer, sizes, axis, order=None):
    """Views of ``buffer`` cut as split(sizes, axis) does, taken in ``order``."""
    bounds = np.cumsum([0, *sizes])
    pieces = [buffer[(slice(None),) * axis + (slice(bounds[i], bounds[i + 1]),)] for i in range(len(sizes))]
    return [pieces[i] for i in (order or range(len(sizes)))]


def test_split_backward_joins_gradients_that_lie_side_by_side_without_a_copy():
    """Attention writes q, k and v's gradients into one buffer laid out like the projection they were
    cut from; split's backward then hands that buffer on as a view instead of concatenating."""
    from tinygrad_tx.ops.movement import Split

    buffer = np.arange(2 * 5 * 12, dtype=np.float32).reshape(2, 5, 12)
    joined, _, _ = Split.backward(type("Ctx", (), {"axis": 2})(), *_split_gradients(buffer, [4, 4, 4], 2))
    assert np.shares_memory(joined, buffer) and np.array_equal(joined, buffer)
    # out of order, with a gap, from two buffers, or along another axis: the values must still be a concatenation
    other = buffer.copy()
    cases = [
        (_split_gradients(buffer, [4, 4, 4], 2, order=[1, 0, 2]), 2),
        ([buffer[:, :, 0:4], buffer[:, :, 5:9]], 2),
        ([buffer[:, :, 0:4], other[:, :, 4:8]], 2),
        ([buffer[:, 0:2], buffer[:, 2:5]], 1),
        ([buffer[:, :, 0:0], buffer[:, :, 0:4]], 2),
    ]
    for pieces, axis in cases:
        joined, _, _ = Split.backward(type("Ctx", (), {"axis": axis})(), *pieces)
        assert np.array_equal(joined, np.concatenate(pieces, axis=axis))
