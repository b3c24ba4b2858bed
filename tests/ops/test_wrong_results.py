"""Issue 25's wrong results, each against PyTorch: integer and boolean tensors (values and dtypes), a
Python number on the left of ``**``, gradients at kinks and zeros, attention on aliased inputs."""

import warnings

import numpy as np
import pytest
import torch

import tinygrad_tx.nn.functional as F
from tinygrad_tx import DTypeError, Tensor
from tinygrad_tx.kernels import dispatch


def same(ours, theirs):
    """Values (NaN and inf positions included) and dtype equal to PyTorch's."""
    ours, theirs = ours.numpy(), theirs.detach().numpy()
    assert ours.dtype == theirs.dtype, f"dtype {ours.dtype} != PyTorch's {theirs.dtype}"
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=0, equal_nan=True)


def both(array):
    return Tensor(array, dtype=array.dtype), torch.from_numpy(array.copy())


# ------------------------------------------------------------------ integer and boolean tensors
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "int64"])
def test_min_and_max_of_integers_do_not_wrap(dtype):
    info = np.iinfo(dtype)
    ours, theirs = both(np.array([[0, 5, info.min], [info.max, 1, 2]], dtype))
    for axis in (None, 0, 1):
        for op in ("min", "max"):
            torch_op = getattr(theirs, "a" + op)
            same(getattr(ours, op)(axis=axis), torch_op() if axis is None else torch_op(dim=axis))


def test_min_and_max_of_bool():
    ours, theirs = both(np.array([[True, False], [True, True]]))
    same(ours.min(), theirs.amin())
    same(ours.max(axis=0), theirs.amax(dim=0))
    same(ours.min(axis=1), theirs.amin(dim=1))


INT32 = np.array([-3, 0, 7, 2**31 - 1], np.int32)
UINT8 = np.array([0, 1, 200, 255], np.uint8)
INT8 = np.array([-128, -1, 0, 127], np.int8)
BOOL = np.array([True, False, True, False])
PROMOTIONS = {  # name: (arrays, expression on (ours or PyTorch's) tensors)
    "int32 / 2": ([INT32], lambda a: a / 2),
    "int32 + 1.5": ([INT32], lambda a: a + 1.5),
    "1.5 * int32": ([INT32], lambda a: 1.5 * a),
    "2 - int32": ([INT32], lambda a: 2 - a),
    "int32 / int32": ([INT32, INT32[::-1].copy()], lambda a, b: a / b),
    "uint8 / int8": ([UINT8, INT8], lambda a, b: a / b),
    "int8 + uint8": ([INT8, UINT8], lambda a, b: a + b),
    "int8 * int32": ([INT8, INT32], lambda a, b: a * b),
    "bool + bool": ([BOOL, BOOL[::-1].copy()], lambda a, b: a + b),
    "bool * bool": ([BOOL, BOOL[::-1].copy()], lambda a, b: a * b),
    "bool / bool": ([BOOL, BOOL[::-1].copy()], lambda a, b: a / b),
    "bool + 1": ([BOOL], lambda a: a + 1),
    "bool * 2.5": ([BOOL], lambda a: a * 2.5),
    "bool + int8": ([BOOL, INT8], lambda a, b: a + b),
    "uint8 - 1 wraps": ([UINT8], lambda a: a - 1),
    "int8 + 1000 wraps": ([INT8], lambda a: a + 1000),
    "-uint8 wraps": ([UINT8], lambda a: -a),
    "uint8 < -1 (PyTorch wraps -1 to 255)": ([UINT8], lambda a: a < -1),
    "int32 < 1.5": ([INT32], lambda a: a < 1.5),
    "int8 == uint8": ([INT8, UINT8], lambda a, b: a == b),
    "maximum(int8, uint8)": ([INT8, UINT8], lambda a, b: a.maximum(b)),
    "maximum(bool, 0.5)": ([BOOL], lambda a: a.maximum(0.5) if isinstance(a, Tensor) else torch.clamp(a, min=0.5)),
    "sum(uint8)": ([UINT8], lambda a: a.sum()),
    "sum(bool)": ([BOOL], lambda a: a.sum()),
    "sum(int32, axis 0)": ([INT32.reshape(2, 2)], lambda a: a.sum(0)),
    "float32 + int64": ([np.ones(4, np.float32), INT32.astype(np.int64)], lambda a, b: a + b),
}


@pytest.mark.parametrize("name", PROMOTIONS)
def test_promotion_follows_pytorch(name):
    arrays, expression = PROMOTIONS[name]
    pairs = [both(a) for a in arrays]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0 / 0
        same(expression(*[p[0] for p in pairs]), expression(*[p[1] for p in pairs]))


@pytest.mark.parametrize(
    "expression",
    [lambda a: a - a, lambda a: -a, lambda a: a - True, lambda a: a.mean()],
    ids=["bool - bool", "-bool", "bool - True", "mean(bool)"],
)
def test_what_pytorch_refuses_on_booleans_is_a_one_line_dtype_error(expression):
    ours, theirs = both(BOOL)
    with pytest.raises(RuntimeError):
        expression(theirs)
    with pytest.raises(DTypeError, match=r"^(sub|neg|mean): "):
        expression(ours)


# ------------------------------------------------------------------ a number on the left of **
EXPONENTS = np.array([0.0, 1.0, 2.0, 3.0, -1.0, -2.0, 0.5, -0.0], np.float32)


@pytest.mark.parametrize("base", [-2.0, 0.0, -0.5, 2.0, 2, 0.5, 1.0, -1])
def test_number_on_the_left_of_pow(base):
    ours = Tensor(EXPONENTS, requires_grad=True)
    theirs = torch.tensor(EXPONENTS, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out, ref = base**ours, base**theirs
        same(out, ref)
        upstream = np.linspace(-1.0, 2.0, EXPONENTS.size, dtype=np.float32)
        out.backward(upstream)
    ref.backward(torch.from_numpy(upstream))
    same(ours.grad, theirs.grad)


@pytest.mark.parametrize("base", [2, -2, 1, -1, 0, 3.0, -2.0])
def test_number_to_the_power_of_an_integer_tensor(base):
    exponents = np.array([0, 1, 2, 5, -1, -2], np.int64)
    ours, theirs = both(exponents)
    same(base**ours, base**theirs)


# ------------------------------------------------------------------ gradients at kinks and zeros
KINKS = np.array([0.0, -0.0, 1.0, -1.0, 2.0], np.float32)
AT_ZERO = {
    **{f"x ** {p}": (lambda x, p=p: x**p) for p in (0, 1, 2, 3, -1, -2, 0.5, 1.5, 2.5, 0.0)},
    "relu": lambda x: x.relu(),
    "sqrt": lambda x: x.sqrt(),
    "maximum(x, 0)": lambda x: x.maximum(0.0) if isinstance(x, Tensor) else torch.maximum(x, torch.tensor(0.0)),
    "maximum(x, -x)": lambda x: x.maximum(-x),
    "max with ties": lambda x: (x * x)[2:4].max(),
    "min with ties": lambda x: (-x * x)[2:4].min(),
    "max over an axis, ties": lambda x: (
        x.reshape(1, 5).expand(3, 5).max(axis=1) if isinstance(x, Tensor) else x.reshape(1, 5).expand(3, 5).amax(dim=1)
    ),
}


@pytest.mark.parametrize("name", AT_ZERO)
def test_gradient_at_the_kink_matches_pytorch(name):
    ours = Tensor(KINKS, requires_grad=True)
    theirs = torch.tensor(KINKS, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out, ref = AT_ZERO[name](ours), AT_ZERO[name](theirs)
        same(out, ref)
        upstream = np.full(tuple(ref.shape), 0.75, np.float32)
        out.backward(upstream)
    ref.backward(torch.from_numpy(upstream))
    same(ours.grad, theirs.grad)


# ------------------------------------------------------------------ attention on aliased inputs
def _attention_gradient(x, upstream, cut, impl):
    ours = Tensor(x, requires_grad=True)
    with dispatch.use(impl):
        F.scaled_dot_product_attention(*cut(ours), causal=False).backward(upstream)
    return ours.grad.numpy()


ALIASED = {  # how q, k and v are cut from one (2, 16, 24) input
    "q = k = v": lambda x: [x[..., :16].reshape(2, 16, 2, 8).transpose(1, 2)] * 3,
    "overlapping slices": lambda x: [x[..., i : i + 16].reshape(2, 16, 2, 8).transpose(1, 2) for i in (0, 4, 8)],
    "q = v, k apart": lambda x: (
        [x[..., s].reshape(2, 16, 2, 8).transpose(1, 2) for s in (slice(0, 16),) * 1]
        + [x[..., 8:24].reshape(2, 16, 2, 8).transpose(1, 2), x[..., :16].reshape(2, 16, 2, 8).transpose(1, 2)]
    ),
    "split qkv (disjoint)": lambda x: [p.reshape(2, 16, 1, 8).transpose(1, 2) for p in x.split(8, -1)],
}


@pytest.mark.parametrize("name", ALIASED)
def test_attention_on_aliased_inputs_matches_pytorch(name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16, 24)).astype(np.float32)
    cut = ALIASED[name]
    theirs = torch.tensor(x, requires_grad=True)
    out = torch.nn.functional.scaled_dot_product_attention(*cut(theirs))
    upstream = rng.standard_normal(tuple(out.shape)).astype(np.float32)
    out.backward(torch.from_numpy(upstream))
    for impl in ("fast", "reference"):
        np.testing.assert_allclose(_attention_gradient(x, upstream, cut, impl), theirs.grad.numpy(), atol=2e-5)


# ------------------------------------------------------------------ found by the widened fuzzer
def test_maximum_with_nan_gives_both_inputs_the_gradient():
    """PyTorch: where(a == b, g/2, g) masked where a < b (or a > b): a NaN compares false, so both get g."""
    a_np = np.array([np.nan, 1.0, 2.0, 3.0], np.float32)
    b_np = np.array([1.0, np.nan, 2.0, 0.0], np.float32)
    a, b = Tensor(a_np, requires_grad=True), Tensor(b_np, requires_grad=True)
    ta, tb = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    a.maximum(b).sum().backward()
    torch.maximum(ta, tb).sum().backward()
    same(a.grad, ta.grad)
    same(b.grad, tb.grad)


@pytest.mark.parametrize(
    "expression",
    [lambda t: True - t, lambda t: t - False],
    ids=["True - float", "float - False"],
)
def test_subtracting_a_python_bool_is_refused_as_in_pytorch(expression):
    with pytest.raises(RuntimeError):
        expression(torch.ones(2))
    with pytest.raises(DTypeError, match="^sub: "):
        expression(Tensor(np.ones(2, np.float32)))


def test_argmax_of_bool_is_refused_as_in_pytorch():
    with pytest.raises(DTypeError, match="^argmax: "):
        Tensor(BOOL).argmax()


def test_relu_passes_the_gradient_through_nan():
    x = np.array([np.nan, -1.0, 0.0, 2.0], np.float32)
    ours, theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours.relu().sum().backward()
    torch.relu(theirs).sum().backward()
    same(ours.grad, theirs.grad)


@pytest.mark.parametrize(
    "expression",
    [lambda x: x**2, lambda x: x**3, lambda x: 1.0 / x],
    ids=["x ** 2", "x ** 3", "1 / x"],
)
def test_gradients_overflow_where_pytorch_s_do(expression):
    """The backward multiplies in PyTorch's order: grad * (2 * x) overflows at the largest float, as there."""
    x = np.array([np.finfo(np.float32).max, 1e-30, -2.0], np.float32)
    ours, theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    upstream = np.array([0.25, 1e-30, 0.5], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expression(ours).backward(upstream)
    expression(theirs).backward(torch.from_numpy(upstream))
    same(ours.grad, theirs.grad)
