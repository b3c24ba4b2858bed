"""Layer norm over the last axis, fast on the CPU (reference.layer_norm_forward / layer_norm_backward,
docs/derivations/layernorm.md).

One compiled pass per row (``layer_norm_rows``, ``layer_norm_backward_rows``: numba loops that shift
each row by its first element as the reference does and sum in float64), over blocks of rows on every
core: the row blocks of row_blocks.in_row_blocks, or the team's block functions below once
tune_for_training() started it. Other dtypes take the reference.
"""

from __future__ import annotations

import math

import numpy as np
from numba import carray

from .. import reference
from ..reference import Array
from ..runtime import jobs, row_blocks
from ..runtime.native import float32_pointer, float64_pointer, int64_pointer
from ..runtime.slots import Slots
from .common import contiguous, loop, row_dot, row_sum, same_float_dtype


def layer_norm_forward(x: Array, weight: Array | None, bias: Array | None, eps: float) -> tuple[Array, Array, Array]:
    """One compiled pass per row (layer_norm_rows), over blocks of rows on every core."""
    if not same_float_dtype(x, weight, bias):
        return reference.layer_norm_forward(x, weight, bias, eps)
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    xhat, out = np.empty_like(rows), np.empty_like(rows)
    rstd = np.empty((rows.shape[0], 1), x.dtype)
    eps = x.dtype.type(eps)
    on_team = row_blocks.team() is not None and x.dtype == np.float32 and contiguous(weight, bias)
    if not on_team or not _forward_on_team(rows, weight, bias, eps, xhat, rstd, out):
        row_blocks.in_row_blocks(
            lambda *blocks: layer_norm_rows(blocks[0], weight, bias, eps, *blocks[1:]), rows, xhat, rstd, out
        )
    return out.reshape(x.shape), xhat.reshape(x.shape), rstd.reshape(x.shape[:-1] + (1,))


def layer_norm_backward(
    grad: Array, xhat: Array, rstd: Array, weight: Array | None
) -> tuple[Array, Array | None, Array]:
    """One compiled pass per row for dx; each block also returns its column sums for dweight and dbias."""
    if not same_float_dtype(grad, xhat, rstd, weight):
        return reference.layer_norm_backward(grad, xhat, rstd, weight)
    features = xhat.shape[-1]
    rows = [np.ascontiguousarray(a).reshape(-1, a.shape[-1]) for a in (grad, xhat, rstd)]
    grad_x = np.empty(rows[1].shape, xhat.dtype)

    def block(grad_rows, xhat_rows, rstd_rows, grad_x_rows):
        column_sums = np.zeros((2, features), xhat.dtype)  # this block's share of dweight, dbias
        layer_norm_backward_rows(grad_rows, xhat_rows, rstd_rows, weight, grad_x_rows, column_sums[0], column_sums[1])
        return column_sums

    on_team = row_blocks.team() is not None and xhat.dtype == np.float32 and contiguous(weight)
    sums = _backward_on_team(rows[0], rows[1], rows[2], weight, grad_x) if on_team else None
    grad_weight, grad_bias = sums if sums is not None else sum(row_blocks.in_row_blocks(block, *rows, grad_x))
    return grad_x.reshape(xhat.shape), None if weight is None else grad_weight, grad_bias


# ---------------------------------------------------------------- the compiled loops
@loop
def layer_norm_rows(x, weight, bias, eps, xhat, rstd, out):
    """Per row of (rows, features) x: xhat = (x - mean) rstd, out = xhat weight + bias.

    Each row is shifted by its first element before the mean, as the reference does, and the row
    sums run in float64: a float32 sum of thousands of features, even in vector lanes, drifts further
    from NumPy's pairwise sum than float32 rounding does. ``eps`` has x's dtype; ``weight`` / ``bias``
    may be None (numba compiles that branch away).
    """
    rows, features = x.shape
    for r in range(rows):
        first = x[r, 0]
        for c in range(features):
            xhat[r, c] = x[r, c] - first
        mean = x.dtype.type(row_sum(xhat, r) / features)
        for c in range(features):
            xhat[r, c] -= mean
        scale = x.dtype.type(1) / math.sqrt(x.dtype.type(row_dot(xhat, xhat, r) / features) + eps)
        rstd[r, 0] = scale
        for c in range(features):
            value = xhat[r, c] * scale
            xhat[r, c] = value
            if weight is not None:
                value = value * weight[c]
            if bias is not None:
                value = value + bias[c]
            out[r, c] = value


@loop
def layer_norm_backward_rows(grad, xhat, rstd, weight, grad_x, grad_weight, grad_bias):
    """grad_x = rstd (d - mean(d) - xhat mean(d xhat)), d = grad weight, per row; adds this block's
    column sums of grad xhat and grad into ``grad_weight`` and ``grad_bias`` (zeros on entry).
    grad_x's row holds d while the row's two sums are taken."""
    rows, features = xhat.shape
    for r in range(rows):
        for c in range(features):
            grad_x[r, c] = grad[r, c] * weight[c] if weight is not None else grad[r, c]
        mean_d = xhat.dtype.type(row_sum(grad_x, r) / features)
        mean_projection = xhat.dtype.type(row_dot(grad_x, xhat, r) / features)
        for c in range(features):
            grad_x[r, c] = rstd[r, 0] * (grad_x[r, c] - mean_d - xhat[r, c] * mean_projection)
            if weight is not None:
                grad_weight[c] += grad[r, c] * xhat[r, c]
            grad_bias[c] += grad[r, c]


def warm_up() -> None:
    """Compile (or load from numba's cache) the loops for the float32 arrays training uses."""
    x = np.ones((2, 4), np.float32)
    column, features = np.ones((2, 1), np.float32), np.ones(4, np.float32)
    for weight, bias in ((features, features), (features, None), (None, None)):
        layer_norm_rows(x, weight, bias, np.float32(1e-5), x.copy(), column.copy(), x.copy())
        layer_norm_backward_rows(x, x, column, weight, x.copy(), features.copy(), features.copy())


# ---------------------------------------------------------------- on the team: blocks of rows
FORWARD = Slots(
    "layer_norm", "x", "weight", "bias", "xhat", "rstd", "out", "rows", "features", "blocks", floats=("eps",)
)
BACKWARD = Slots(
    "layer_norm_backward", "grad", "xhat", "rstd", "weight", "grad_x", "sums", "rows", "features", "blocks"
)
_F, _B = FORWARD.at, BACKWARD.at


@jobs.block_function
def _forward_block(arguments, block):
    a = carray(int64_pointer(arguments), (_F.size,))
    rows, features = a[_F.rows], a[_F.features]
    low, high = jobs.span(rows, block, a[_F.blocks])
    x = carray(float32_pointer(a[_F.x] + 4 * low * features), (high - low, features))
    xhat = carray(float32_pointer(a[_F.xhat] + 4 * low * features), (high - low, features))
    out = carray(float32_pointer(a[_F.out] + 4 * low * features), (high - low, features))
    rstd = carray(float32_pointer(a[_F.rstd] + 4 * low), (high - low, 1))
    eps = np.float32(carray(float64_pointer(arguments), (_F.size,))[_F.eps])
    weight = carray(float32_pointer(a[_F.weight]), (features,))
    bias = carray(float32_pointer(a[_F.bias]), (features,))
    if a[_F.weight] and a[_F.bias]:
        layer_norm_rows(x, weight, bias, eps, xhat, rstd, out)
    elif a[_F.weight]:
        layer_norm_rows(x, weight, None, eps, xhat, rstd, out)
    elif a[_F.bias]:
        layer_norm_rows(x, None, bias, eps, xhat, rstd, out)
    else:
        layer_norm_rows(x, None, None, eps, xhat, rstd, out)


@jobs.block_function
def _backward_block(arguments, block):
    a = carray(int64_pointer(arguments), (_B.size,))
    rows, features, blocks = a[_B.rows], a[_B.features], a[_B.blocks]
    low, high = jobs.span(rows, block, blocks)
    grad = carray(float32_pointer(a[_B.grad] + 4 * low * features), (high - low, features))
    xhat = carray(float32_pointer(a[_B.xhat] + 4 * low * features), (high - low, features))
    grad_x = carray(float32_pointer(a[_B.grad_x] + 4 * low * features), (high - low, features))
    rstd = carray(float32_pointer(a[_B.rstd] + 4 * low), (high - low, 1))
    sums = carray(float32_pointer(a[_B.sums]), (blocks, 2, features))
    if a[_B.weight]:
        weight = carray(float32_pointer(a[_B.weight]), (features,))
        layer_norm_backward_rows(grad, xhat, rstd, weight, grad_x, sums[block, 0], sums[block, 1])
    else:
        layer_norm_backward_rows(grad, xhat, rstd, None, grad_x, sums[block, 0], sums[block, 1])


def _forward_on_team(rows, weight, bias, eps, xhat, rstd, out) -> bool:
    """layer_norm_rows over (N, C) contiguous float32 rows, split over the team; False (nothing done)
    for a job too small to share."""
    blocks = jobs.blocks_for(rows.size, jobs.MIN_ELEMENTS, rows.shape[0])
    if blocks == 1:
        return False
    arguments = FORWARD.pack(
        x=rows.ctypes.data, weight=jobs.address_of(weight), bias=jobs.address_of(bias), xhat=xhat.ctypes.data,
        rstd=rstd.ctypes.data, out=out.ctypes.data, rows=rows.shape[0], features=rows.shape[1], blocks=blocks, eps=eps,
    )  # fmt: skip
    row_blocks.team().run(_forward_block.address, arguments, blocks)
    return True


def _backward_on_team(grad, xhat, rstd, weight, grad_x) -> np.ndarray | None:
    """grad_x in place; returns the column sums (2, C): dweight's and dbias's, block by block summed
    (None, and nothing done, for a job too small to share)."""
    rows, features = xhat.shape
    blocks = jobs.blocks_for(xhat.size, jobs.MIN_ELEMENTS, rows)
    if blocks == 1:
        return None
    sums = np.zeros((blocks, 2, features), np.float32)
    arguments = BACKWARD.pack(
        grad=grad.ctypes.data, xhat=xhat.ctypes.data, rstd=rstd.ctypes.data, weight=jobs.address_of(weight),
        grad_x=grad_x.ctypes.data, sums=sums.ctypes.data, rows=rows, features=features, blocks=blocks,
    )  # fmt: skip
    row_blocks.team().run(_backward_block.address, arguments, blocks)
    return sums.sum(axis=0)
