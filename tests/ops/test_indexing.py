"""tinygrad_tx/ops/indexing.py: tril, triu and gather against PyTorch (CPU and GPU) and gradcheck in float64;
gather's repeated indices scatter-add their gradients; its errors name the op and the values."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_tx as tx
from tinygrad_tx import Tensor, gradcheck

from helpers import DEVICES
from helpers.op_checks import against_torch, data, leaves

seeds = st.integers(0, 2**16)
TRIANGLES = [("tril", 0), ("tril", -1), ("triu", 0), ("triu", 2), ("triu", -3)]


@pytest.mark.parametrize("name, diagonal", TRIANGLES)
@pytest.mark.parametrize("shape", [(3, 3), (2, 5), (2, 4, 3)])
def test_gradcheck_triangles(name, diagonal, shape):
    assert gradcheck(lambda x: getattr(x, name)(diagonal), leaves([data(shape, 0)], dtype="float64"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name, diagonal", TRIANGLES)
def test_against_torch_triangles(device, name, diagonal):
    against_torch(
        lambda x: getattr(x, name)(diagonal), lambda x: getattr(torch, name)(x, diagonal), [data((2, 4, 3), 1)], device
    )


def test_triangles_keep_integer_and_boolean_dtypes_and_refuse_vectors():
    x = np.arange(9).reshape(3, 3) % 2 == 0
    np.testing.assert_array_equal(Tensor(x).tril().numpy(), torch.tril(torch.from_numpy(x)).numpy())
    assert Tensor(np.ones((2, 2), np.int32)).triu(1).dtype == np.int32
    with pytest.raises(tx.ShapeError, match=r"tril: needs a tensor with at least 2 dimensions, got shape \(3,\)"):
        Tensor([1.0, 2.0, 3.0]).tril()
    with pytest.raises(tx.DTypeError, match=r"triu: diagonal must be an int, got 0.5"):
        Tensor(np.ones((2, 2))).triu(0.5)


@st.composite
def gather_case(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    along = axis % len(shape)
    index_shape = [draw(st.integers(1, 5)) if d == along else draw(st.integers(1, n)) for d, n in enumerate(shape)]
    index = np.random.default_rng(draw(seeds)).integers(0, shape[along], index_shape)
    return shape, axis, index


@given(case=gather_case(), seed=seeds)
def test_gradcheck_gather(case, seed):
    shape, axis, index = case
    assert gradcheck(lambda x: x.gather(axis, index), leaves([data(shape, seed)], dtype="float64"))


@pytest.mark.parametrize("device", DEVICES)
@given(case=gather_case(), seed=seeds)
def test_against_torch_gather(device, case, seed):
    shape, axis, index = case
    against_torch(
        lambda x: x.gather(axis, Tensor(index, device=device)),
        lambda x: torch.gather(x, axis, torch.from_numpy(index)),
        [data(shape, seed)],
        device,
    )


@pytest.mark.parametrize("device", DEVICES)
def test_gather_repeated_indices_add_their_gradients(device):
    x = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True, device=device)
    index = Tensor(np.array([[2, 2, 0, 2], [1, 1, 1, 1]], np.int32), device=device)
    out = x.gather(1, index)
    assert out.tolist() == [[3.0, 3.0, 1.0, 3.0], [5.0, 5.0, 5.0, 5.0]]
    out.sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0, 3.0], [0.0, 4.0, 0.0]]


@pytest.mark.parametrize(
    "index, error, message",
    [
        ([[0.0, 1.0]], tx.DTypeError, r"gather: index must be int32 or int64, got dtype float32"),
        ([0, 1], tx.ShapeError, r"gather: index has 1 dimensions and the input 2 \(shapes \(2,\) and \(2, 3\)\)"),
        ([[0], [1], [0]], tx.ShapeError, r"gather: index shape \(3, 1\) is larger than input shape \(2, 3\) on axis 0"),
        ([[0, 3]], tx.IndexOutOfRangeError, r"gather: index 3 is out of bounds for axis 1 with size 3"),
        ([[-1, 0]], tx.IndexOutOfRangeError, r"gather: index -1 is out of bounds for axis 1 with size 3"),
    ],
)
def test_gather_errors_name_the_op_and_values(index, error, message):
    with pytest.raises(error, match=message):
        Tensor(np.ones((2, 3))).gather(1, index)
    with pytest.raises(tx.ShapeError, match=r"gather: axis 2 is out of range for a tensor with 2 dimensions"):
        Tensor(np.ones((2, 3))).gather(2, [[0]])
