"""Ops that select elements by position: tril, triu (a fixed mask) and gather (an index tensor).

Derivation: docs/derivations/indexing.md. tril/triu's backward multiplies by the saved mask;
gather's is a scatter-add, the one array-only step, kept in ``scatter_add_along``.
"""

import numbers

import numpy as np

from ..backend import scatter_add, xp_of
from ..errors import DTypeError, IndexOutOfRangeError, ShapeError
from ..function import Function
from ..tensor import Tensor
from .movement import ScatterAdd
from .reduce import normalize_axes


class Triangle(Function):
    """tril keeps the elements with column - row <= diagonal, triu those with column - row >= diagonal, over
    the last two axes; the rest become 0. The gradient is the output gradient times the same mask."""

    @staticmethod
    def forward(ctx, x, diagonal=0, upper=False):
        op = "triu" if upper else "tril"
        if x.ndim < 2:
            raise ShapeError(f"{op}: needs a tensor with at least 2 dimensions, got shape {tuple(x.shape)}")
        if isinstance(diagonal, bool) or not isinstance(diagonal, numbers.Integral):
            raise DTypeError(f"{op}: diagonal must be an int, got {diagonal!r}")
        xp = xp_of(x)
        rows, cols = x.shape[-2:]
        offset = xp.arange(cols).reshape(1, cols) - xp.arange(rows).reshape(rows, 1)
        mask = offset >= diagonal if upper else offset <= diagonal
        ctx.save_for_backward(mask)
        return xp.where(mask, x, xp.zeros((), x.dtype))

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask


def scatter_add_along(grad, index, axis, shape):
    """The adjoint of gather: a zero array of ``shape`` with grad[i] added at index[i] along ``axis``
    (repeated indices add up): NumPy/CuPy's unbuffered ``add.at`` on arrays; on a recorded gradient
    (create_graph) the ScatterAdd op, whose own backward is a gather again."""
    xp = xp_of(index)
    position = [
        xp.arange(n).reshape([n if j == d else 1 for j in range(index.ndim)]) for d, n in enumerate(index.shape)
    ]
    position[axis] = index
    if isinstance(grad, Tensor):
        if not index.size:  # nothing gathered: a constant zero gradient (ScatterAdd needs a value to place)
            return Tensor._wrap(xp.zeros(shape, grad.dtype))
        return ScatterAdd.apply(grad, tuple(position), tuple(shape), True)
    out = xp.zeros(shape, grad.dtype)
    scatter_add(out, tuple(position), grad)
    return out


class Gather(Function):
    """out[..., i, ...] = x[..., index[..., i, ...], ...] along ``axis`` (PyTorch's gather): ``index`` has x's
    number of dimensions and is no larger than x on every other axis; the output has index's shape."""

    @staticmethod
    def forward(ctx, x, index, axis=0):
        if index.dtype not in (np.int32, np.int64):
            raise DTypeError(f"gather: index must be int32 or int64, got dtype {index.dtype}")
        if index.ndim != x.ndim:
            raise ShapeError(
                f"gather: index has {index.ndim} dimensions and the input {x.ndim} (shapes "
                f"{tuple(index.shape)} and {tuple(x.shape)}); they must have the same number"
            )
        (axis,) = normalize_axes("gather", axis, x.ndim)
        for d, (n, m) in enumerate(zip(index.shape, x.shape)):
            if d != axis and n > m:
                raise ShapeError(
                    f"gather: index shape {tuple(index.shape)} is larger than input shape {tuple(x.shape)} "
                    f"on axis {d} ({n} > {m}); only axis {axis} may differ"
                )
        size = x.shape[axis]
        if index.size:
            low, high = int(index.min()), int(index.max())
            if low < 0 or high >= size:
                raise IndexOutOfRangeError(
                    f"gather: index {low if low < 0 else high} is out of bounds for axis {axis} with size {size}"
                )
        ctx.axis, ctx.in_shape = axis, x.shape
        ctx.save_for_backward(index)
        window = tuple(slice(None) if d == axis else slice(0, n) for d, n in enumerate(index.shape))
        return xp_of(x).take_along_axis(x[window], index, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        index = index.data if isinstance(index, Tensor) else index  # create_graph hands the input back as a Tensor
        return scatter_add_along(grad, index, ctx.axis, ctx.in_shape), None
