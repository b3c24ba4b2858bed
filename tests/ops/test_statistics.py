"""tinygrad_tx/ops/statistics.py: var, std, logsumexp, cumsum (gradcheck in float64, PyTorch in float32 on the
CPU and the GPU), and argmin, any, all (values and dtypes as PyTorch, no gradient); edge cases and errors."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_tx as tx
from tinygrad_tx import Tensor, gradcheck

from helpers import DEVICES
from helpers.op_checks import against_torch, data, leaves

seeds = st.integers(0, 2**16)


@st.composite
def shape_and_axis(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
    choice = draw(st.sampled_from(["none", "int", "tuple"]))
    if choice == "none":
        return shape, None
    if choice == "int":
        return shape, draw(st.integers(-len(shape), len(shape) - 1))
    return shape, tuple(draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True)))


def _torch_dim(x, axis):
    return tuple(range(x.ndim)) if axis is None else axis


REDUCE = {  # name: (ours, PyTorch's), each given (x, axis, keepdims)
    "var": (lambda x, a, k: x.var(axis=a, keepdims=k), lambda x, a, k: x.var(dim=_torch_dim(x, a), keepdim=k)),
    "var_biased": (
        lambda x, a, k: x.var(axis=a, keepdims=k, unbiased=False),
        lambda x, a, k: x.var(dim=_torch_dim(x, a), keepdim=k, unbiased=False),
    ),
    "std": (lambda x, a, k: x.std(axis=a, keepdims=k), lambda x, a, k: x.std(dim=_torch_dim(x, a), keepdim=k)),
    "std_correction_0": (
        lambda x, a, k: x.std(axis=a, keepdims=k, correction=0),
        lambda x, a, k: x.std(dim=_torch_dim(x, a), keepdim=k, correction=0),
    ),
    "logsumexp": (
        lambda x, a, k: x.logsumexp(axis=a, keepdims=k),
        lambda x, a, k: x.logsumexp(dim=_torch_dim(x, a), keepdim=k),
    ),
}


@pytest.mark.parametrize("name", REDUCE)
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_gradcheck_statistics(name, case, keepdims, seed):
    (shape, axis), ours = case, REDUCE[name][0]
    assert gradcheck(lambda x: ours(x, axis, keepdims), leaves([data(shape, seed)], dtype="float64"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", REDUCE)
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_against_torch_statistics(device, name, case, keepdims, seed):
    (shape, axis), (ours, theirs) = case, REDUCE[name]
    against_torch(lambda x: ours(x, axis, keepdims), lambda x: theirs(x, axis, keepdims), [data(shape, seed)], device)


@pytest.mark.parametrize("device", DEVICES)
def test_std_of_a_constant_slice_has_zero_gradient_and_one_element_gives_nan(device):
    """PyTorch masks std's gradient where std = 0; n - correction = 0 gives NaN forward and backward."""
    against_torch(lambda x: x.std(axis=1), lambda x: x.std(dim=1), [[[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]]], device)
    t, ref = Tensor([3.0], requires_grad=True, device=device), torch.tensor([3.0], requires_grad=True)
    with pytest.warns(UserWarning):
        ref.var().backward()
    t.var().backward()
    assert np.isnan(t.var().item()) and np.isnan(t.grad.numpy()).all() and np.isnan(ref.grad.numpy()).all()


def test_var_correction_spellings():
    x = Tensor([1.0, 2.0, 4.0])
    assert x.var().item() == pytest.approx(np.var([1, 2, 4], ddof=1))
    assert x.var(correction=0).item() == pytest.approx(np.var([1, 2, 4]))
    assert x.var(unbiased=False).item() == x.var(correction=0).item()
    assert x.std(unbiased=True).item() == pytest.approx(np.std([1, 2, 4], ddof=1))
    with pytest.raises(tx.TinygradTxError, match=r"var: give correction or unbiased, not both"):
        x.var(correction=1, unbiased=True)
    with pytest.raises(tx.TinygradTxError, match=r"std: correction must be a non-negative number, got -1"):
        x.std(correction=-1)
    with pytest.raises(tx.DTypeError, match=r"var: needs a float tensor, got dtype int64"):
        Tensor([1, 2]).var()


@pytest.mark.parametrize("device", DEVICES)
def test_logsumexp_is_stable_and_handles_infinite_and_empty_rows(device):
    big = np.array([[1e4, 1e4 + 1.0, -1e4], [-1e4, -1e4, -1e4]], np.float32)
    against_torch(lambda x: x.logsumexp(axis=1), lambda x: torch.logsumexp(x, dim=1), [big], device)
    rows = np.array([[-np.inf, -np.inf], [np.inf, 0.0]], np.float32)
    ours, theirs = Tensor(rows, device=device).logsumexp(axis=1), torch.logsumexp(torch.tensor(rows), dim=1)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    empty = Tensor(np.zeros((0, 3), np.float32), device=device).logsumexp(axis=0)
    np.testing.assert_array_equal(empty.numpy(), [-np.inf] * 3)


# ---------------------------------------------------------------- cumsum
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5), seed=seeds, data_=st.data())
def test_gradcheck_cumsum(shape, seed, data_):
    axis = data_.draw(st.integers(-len(shape), len(shape) - 1))
    assert gradcheck(lambda x: x.cumsum(axis), leaves([data(shape, seed)], dtype="float64"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_against_torch_cumsum(device, axis):
    against_torch(lambda x: x.cumsum(axis), lambda x: torch.cumsum(x, dim=axis), [data((3, 4, 2), 0)], device)


@pytest.mark.parametrize("dtype", ["int8", "int32", "uint8", "bool", "float64"])
def test_cumsum_dtypes_as_pytorch(dtype):
    x = np.array([[1, 0, 3], [2, 2, 0]]).astype(dtype)
    out, ref = Tensor(x, dtype=dtype).cumsum(1), torch.cumsum(torch.from_numpy(x.copy()), dim=1)
    assert out.dtype == ref.numpy().dtype
    np.testing.assert_array_equal(out.numpy(), ref.numpy())


# ---------------------------------------------------------------- argmin, any, all
@pytest.mark.parametrize("device", DEVICES)
def test_argmin_matches_pytorch_and_takes_the_first_tie(device):
    x = np.array([[3.0, 1.0, 1.0], [0.0, 2.0, -1.0]], np.float32)
    t, ref = Tensor(x, requires_grad=True, device=device), torch.tensor(x)
    for axis, keepdims in [(None, False), (1, False), (0, True), (-1, True)]:
        out = t.argmin(axis=axis, keepdims=keepdims)
        expected = ref.argmin(dim=axis, keepdim=keepdims) if axis is not None else ref.argmin()
        assert out.dtype == np.int64 and not out.requires_grad
        np.testing.assert_array_equal(out.numpy(), expected.numpy())
    with pytest.raises(tx.ShapeError, match=r"argmin: an empty axis has no smallest value"):
        Tensor(np.zeros((2, 0))).argmin(axis=1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["any", "all"])
@pytest.mark.parametrize("dtype", ["float32", "int32", "uint8", "bool"])
def test_any_all_match_pytorch(device, name, dtype):
    x = np.array([[0, 1, 2], [0, 0, 0], [3, 3, 1]]).astype(dtype)
    t, ref = Tensor(x, dtype=dtype, device=device), torch.from_numpy(x.copy())
    for axis, keepdims in [(None, False), (0, False), (1, True), ((0, 1), True)]:
        out = getattr(t, name)(axis=axis, keepdims=keepdims)
        expected = getattr(torch, name)(ref, dim=(0, 1) if axis is None else axis, keepdim=keepdims).numpy()
        assert out.dtype == expected.dtype and not out.requires_grad
        np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: t.cumsum(2), r"cumsum: axis 2 is out of range for a tensor with 2 dimensions"),
        (lambda t: t.cumsum((0, 1)), r"cumsum: axis must be one int, got \(0, 1\)"),
        (lambda t: t.logsumexp(axis=(0, 0)), r"logsumexp: repeated axis"),
        (lambda t: t.any(axis=3), r"any: axis 3 is out of range"),
        (lambda t: t.std(axis=-3), r"std: axis -3 is out of range"),
    ],
)
def test_axis_errors_name_the_op(call, message):
    with pytest.raises(tx.ShapeError, match=message):
        call(Tensor(np.ones((2, 3))))
