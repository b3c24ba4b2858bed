"""Layer norm on the GPU (reference.layer_norm_forward / layer_norm_backward,
docs/derivations/layernorm.md): one 256-thread block per row of float32 arrays; the parameter
gradients are plain column sums; the reference for any other dtype."""

from __future__ import annotations

import numpy as np

from ... import backend
from .. import reference
from ..reference import Array
from .common import fits_row_kernel, launch, row_kernels, rows

SOURCE = row_kernels(
    r"""// xhat = (x - mean) rstd, rstd = 1 / sqrt(var + eps), y = xhat * w + b (w, b optional).
// Like the reference, every row is first shifted by its first element: with a large common offset
// (1e4 + noise) a float32 sum of the raw values loses the noise (relative error 2.7e-4 at 1e4).
extern "C" __global__ void layer_norm_rows(const float* x, const float* w, const float* b, float* y, float* xhat,
                                           float* rstd, int cols, float eps, int has_w, int has_b) {
    __shared__ float buffer[256];
    size_t offset = (size_t)blockIdx.x * cols;
    float shift = cols > 0 ? x[offset] : 0.0f;
    float total = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) total += x[offset + j] - shift;
    float mean = block_reduce(total, buffer, false) / cols;  // of the shifted row
    float squares = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) { float d = (x[offset + j] - shift) - mean; squares += d * d; }
    float r = 1.0f / sqrtf(block_reduce(squares, buffer, false) / cols + eps);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float h = ((x[offset + j] - shift) - mean) * r;
        xhat[offset + j] = h;
        y[offset + j] = h * (has_w ? w[j] : 1.0f) + (has_b ? b[j] : 0.0f);
    }
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
}

// dx = rstd (d - mean(d) - xhat mean(d xhat)), d = g * w
extern "C" __global__ void layer_norm_backward_rows(const float* g, const float* xhat, const float* rstd,
                                                    const float* w, float* dx, int cols, int has_w) {
    __shared__ float buffer[256];
    size_t offset = (size_t)blockIdx.x * cols;
    float sum_d = 0.0f, sum_dx = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float d = g[offset + j] * (has_w ? w[j] : 1.0f);
        sum_d += d;
        sum_dx += d * xhat[offset + j];
    }
    float mean_d = block_reduce(sum_d, buffer, false) / cols;
    float mean_dx = block_reduce(sum_dx, buffer, false) / cols;
    float r = rstd[blockIdx.x];
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float d = g[offset + j] * (has_w ? w[j] : 1.0f);
        dx[offset + j] = r * (d - mean_d - xhat[offset + j] * mean_dx);
    }
}

""",
    "layer_norm_rows",
    "layer_norm_backward_rows",
)


def layer_norm_rows(x, weight, bias, eps):
    """(y, xhat, rstd) of layer norm over the last axis; rstd has shape (..., 1) as on the CPU path."""
    cupy = backend.array_module("gpu")
    x_rows = rows(x)
    y, xhat = cupy.empty_like(x_rows), cupy.empty_like(x_rows)
    rstd = cupy.empty((x_rows.shape[0],), dtype=np.float32)
    launch(
        "layer_norm_rows",
        x_rows.shape[0],
        x_rows,
        x_rows if weight is None else weight,
        x_rows if bias is None else bias,
        y,
        xhat,
        rstd,
        np.int32(x_rows.shape[1]),
        np.float32(eps),
        np.int32(weight is not None),
        np.int32(bias is not None),
    )
    return y.reshape(x.shape), xhat.reshape(x.shape), rstd.reshape(x.shape[:-1] + (1,))


def layer_norm_backward_rows(grad, xhat, rstd, weight):
    """dx of layer norm (the parameter gradients are plain column sums, left to the caller)."""
    grad_rows, xhat_rows = rows(grad), rows(xhat)
    grad_x = backend.array_module("gpu").empty_like(xhat_rows)
    launch(
        "layer_norm_backward_rows",
        xhat_rows.shape[0],
        grad_rows,
        xhat_rows,
        rows(rstd),
        xhat_rows if weight is None else weight,
        grad_x,
        np.int32(xhat_rows.shape[1]),
        np.int32(weight is not None),
    )
    return grad_x.reshape(xhat.shape)


def layer_norm_forward(x: Array, weight: Array | None, bias: Array | None, eps: float) -> tuple[Array, Array, Array]:
    if fits_row_kernel(x, weight, bias):
        return layer_norm_rows(x, weight, bias, eps)
    return reference.layer_norm_forward(x, weight, bias, eps)


def layer_norm_backward(
    grad: Array, xhat: Array, rstd: Array, weight: Array | None
) -> tuple[Array, Array | None, Array]:
    if not fits_row_kernel(grad, xhat, weight):
        return reference.layer_norm_backward(grad, xhat, rstd, weight)
    features = xhat.shape[-1]
    grad_weight = None if weight is None else (grad * xhat).reshape(-1, features).sum(axis=0)
    return layer_norm_backward_rows(grad, xhat, rstd, weight), grad_weight, grad.reshape(-1, features).sum(axis=0)
