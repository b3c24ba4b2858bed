"""Cross-entropy's forward on the GPU (reference.cross_entropy_forward, docs/derivations/cross_entropy.md):
one 256-thread block per row of float32 logits; the backward, and other dtypes, run the reference."""

from __future__ import annotations

import numpy as np

from ... import backend
from .. import reference
from ..reference import Array
from .common import fits_row_kernel, launch, row_kernels, rows

SOURCE = row_kernels(
    r"""// probs = softmax(z); loss = counted ? logsumexp(z) - z[t] : 0
extern "C" __global__ void cross_entropy_rows(const float* z, const long long* targets, const bool* counted,
                                              float* probs, float* loss, int cols) {
    __shared__ float buffer[256];
    size_t offset = (size_t)blockIdx.x * cols;
    float row_max = NEGATIVE_INFINITY;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) row_max = fmaxf(row_max, z[offset + j]);
    row_max = block_reduce(row_max, buffer, true);
    float total = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float e = expf(z[offset + j] - row_max);
        probs[offset + j] = e;
        total += e;
    }
    total = block_reduce(total, buffer, false);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) probs[offset + j] /= total;
    // (row_max - z[t]) first: both near a common offset, their difference is exact, while logf(total) + row_max
    // would round the small log to the offset's ulp (relative error 3e-5 at an offset of 1e4)
    if (threadIdx.x == 0)
        loss[blockIdx.x] = counted[blockIdx.x] ? logf(total) + (row_max - z[offset + targets[blockIdx.x]]) : 0.0f;
}
""",
    "cross_entropy_rows",
)


def cross_entropy_rows(logits_rows, safe_targets, counted):
    """(probs, row_loss) of (N, C) float32 logits; row_loss is 0 where ``counted`` is False."""
    cupy = backend.array_module("gpu")
    logits = rows(logits_rows)
    probs = cupy.empty_like(logits)
    row_loss = cupy.empty((logits.shape[0],), dtype=np.float32)
    launch(
        "cross_entropy_rows",
        logits.shape[0],
        logits,
        cupy.ascontiguousarray(safe_targets, dtype=np.int64),
        cupy.ascontiguousarray(counted, dtype=np.bool_),
        probs,
        row_loss,
        np.int32(logits.shape[1]),
    )
    return probs, row_loss


def cross_entropy_forward(logits: Array, targets: Array, counted: Array) -> tuple[Array, Array]:
    if fits_row_kernel(logits):
        return cross_entropy_rows(logits, targets, counted)
    return reference.cross_entropy_forward(logits, targets, counted)
