"""Softmax and log-softmax, fast on the CPU (reference.softmax_forward ... log_softmax_backward,
docs/derivations/softmax.md): NumPy ``out=`` chains on buffers they allocate themselves, over blocks
of rows on every core for large arrays (row_blocks.in_row_blocks)."""

from __future__ import annotations

from ...backend import xp_of
from ..reference import Array
from ..runtime import row_blocks
from . import common


def softmax_into(x: Array, axis: int, out: Array | None = None) -> Array:
    """softmax(x) along ``axis`` written into ``out`` (which may be ``x`` itself when the caller owns it)."""
    out = xp_of(x).empty_like(x) if out is None else out
    if axis % x.ndim == 0:
        _softmax_block(x, axis, out)
    else:  # rows are independent: the leading axis splits across cores
        row_blocks.in_row_blocks(
            lambda x_block, out_block: _softmax_block(x_block, axis, out_block),
            x,
            out,
            min_elements=common.NUMPY_MIN_ELEMENTS,
        )
    return out


def _softmax_block(x, axis, out):
    xp = xp_of(x)
    row_max = x.max(axis=axis, keepdims=True)
    xp.maximum(row_max, xp.finfo(x.dtype).min, out=row_max)  # all -inf row: avoid -inf - -inf = nan
    xp.subtract(x, row_max, out=out)
    xp.exp(out, out=out)
    total = out.sum(axis=axis, keepdims=True)
    xp.maximum(total, 1.0, out=total)  # a row with any finite entry sums to >= 1; an all -inf row to 0
    out /= total


def softmax_forward(x: Array, axis: int) -> Array:
    return softmax_into(x, axis)


def softmax_backward(y: Array, grad: Array, axis: int) -> Array:
    grad_x = grad * y
    weighted = grad_x.sum(axis=axis, keepdims=True)
    xp_of(grad).subtract(grad, weighted, out=grad_x)
    grad_x *= y
    return grad_x


def log_softmax_forward(x: Array, axis: int) -> Array:
    xp = xp_of(x)
    y = x - x.max(axis=axis, keepdims=True)
    y -= xp.log(xp.exp(y).sum(axis=axis, keepdims=True))
    return y


def log_softmax_backward(y: Array, grad: Array, axis: int) -> Array:
    grad_x = xp_of(y).exp(y)
    grad_x *= -grad.sum(axis=axis, keepdims=True)
    grad_x += grad
    return grad_x
