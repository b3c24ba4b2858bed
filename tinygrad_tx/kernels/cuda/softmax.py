"""Softmax on the GPU (reference.softmax_forward / softmax_backward, docs/derivations/softmax.md): one
256-thread block per row of a float32 array over its last axis; the reference for anything else
(another axis or dtype, and log-softmax, which has no kernel)."""

from __future__ import annotations

import numpy as np

from ... import backend
from .. import reference
from ..reference import Array
from .common import fits_row_kernel, launch, row_kernels, rows

SOURCE = row_kernels(
    r"""// y = exp(x - max) / sum; a row that is all -inf gives zeros (as softmax_into).
extern "C" __global__ void softmax_rows(const float* x, float* y, int cols) {
    __shared__ float buffer[256];
    const float* xr = x + (size_t)blockIdx.x * cols;
    float* yr = y + (size_t)blockIdx.x * cols;
    float row_max = NEGATIVE_INFINITY;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) row_max = fmaxf(row_max, xr[j]);
    row_max = block_reduce(row_max, buffer, true);
    if (row_max == NEGATIVE_INFINITY) row_max = 0.0f;
    float total = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) { float e = expf(xr[j] - row_max); yr[j] = e; total += e; }
    total = block_reduce(total, buffer, false);
    float scale = total > 0.0f ? 1.0f / total : 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) yr[j] *= scale;
}

// dx = y * (g - sum(g * y))
extern "C" __global__ void softmax_backward_rows(const float* y, const float* g, float* dx, int cols) {
    __shared__ float buffer[256];
    size_t offset = (size_t)blockIdx.x * cols;
    float dot = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) dot += g[offset + j] * y[offset + j];
    dot = block_reduce(dot, buffer, false);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) dx[offset + j] = y[offset + j] * (g[offset + j] - dot);
}

""",
    "softmax_rows",
    "softmax_backward_rows",
)


def softmax_last_axis(x, out=None):
    """softmax over the last axis of a float32 CuPy array, written into ``out`` (may be x) or a new array."""
    x_rows = rows(x)
    result = backend.array_module("gpu").empty_like(x_rows) if out is None or not out.flags.c_contiguous else out
    launch("softmax_rows", x_rows.shape[0], x_rows, result, np.int32(x_rows.shape[1]))
    return result.reshape(x.shape)


def softmax_backward_last_axis(y, grad):
    """y * (g - sum(g * y)) over the last axis."""
    y_rows, grad_rows = rows(y), rows(grad)
    grad_x = backend.array_module("gpu").empty_like(y_rows)
    launch("softmax_backward_rows", y_rows.shape[0], y_rows, grad_rows, grad_x, np.int32(y_rows.shape[1]))
    return grad_x.reshape(y.shape)


def softmax_forward(x: Array, axis: int) -> Array:
    if axis == x.ndim - 1 and fits_row_kernel(x):
        return softmax_last_axis(x)
    return reference.softmax_forward(x, axis)


def softmax_backward(y: Array, grad: Array, axis: int) -> Array:
    if axis == y.ndim - 1 and fits_row_kernel(y, grad):
        return softmax_backward_last_axis(y, grad)
    return reference.softmax_backward(y, grad, axis)
