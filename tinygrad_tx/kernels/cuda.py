"""Fused CuPy kernels for the GPU path of the fused ops: GELU, softmax, layer norm, cross-entropy, AdamW.

Each formula of reference.py becomes one kernel launch here instead of a chain of elementwise
passes and reductions, and nothing comes back to the host. The row kernels (softmax, layer norm,
cross-entropy) run one 256-thread block per row of a C-contiguous float32 (rows, cols) array and
reduce in shared memory; ``fits_row_kernel`` says when they apply, and cuda_fast.py runs the
reference formula for anything else. The math is reference.py's, with the same pages in docs/derivations/.

CuPy comes from ``tinygrad_tx.backend`` (never imported here); kernels compile on first use.
"""

import functools

import numpy as np

from .. import backend

THREADS = 256  # threads per row block; a power of two for the shared-memory tree reduction

_ROW_SOURCE = r"""
// NVRTC (CuPy's compiler) has no math.h, so INFINITY is undefined there (nvcc would accept it): -inf by its bits.
#define NEGATIVE_INFINITY __int_as_float(0xff800000)

__device__ float block_reduce(float value, float* buffer, bool take_max) {
    buffer[threadIdx.x] = value;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) {
            float other = buffer[threadIdx.x + half];
            buffer[threadIdx.x] = take_max ? fmaxf(buffer[threadIdx.x], other) : buffer[threadIdx.x] + other;
        }
        __syncthreads();
    }
    float result = buffer[0];
    __syncthreads();  // every thread has read buffer[0] before it is reused
    return result;
}

// y = exp(x - max) / sum; a row that is all -inf gives zeros (as softmax_into).
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

// xhat = (x - mean) rstd, rstd = 1 / sqrt(var + eps), y = xhat * w + b (w, b optional).
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

// probs = softmax(z); loss = counted ? logsumexp(z) - z[t] : 0
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
"""


@functools.cache
def _kernels():
    """Compile (once) and return every kernel, keyed by name."""
    cupy = backend.array_module("gpu")
    rows = cupy.RawModule(code=_ROW_SOURCE)
    kernels = {
        name: rows.get_function(name)
        for name in (
            "softmax_rows",
            "softmax_backward_rows",
            "layer_norm_rows",
            "layer_norm_backward_rows",
            "cross_entropy_rows",
        )
    }
    kernels["gelu_exact"] = cupy.ElementwiseKernel(
        "T x",
        "T y, T gate",
        "gate = (T)0.5 * ((T)1 + erf(x * (T)0.7071067811865476)); y = x * gate;",
        "tinygrad_tx_gelu_exact",
    )
    kernels["gelu_exact_backward"] = cupy.ElementwiseKernel(
        "T x, T gate, T g",
        "T dx",
        "dx = g * (gate + x * (T)0.3989422804014327 * exp((T)-0.5 * x * x));",
        "tinygrad_tx_gelu_exact_backward",
    )
    kernels["gelu_tanh"] = cupy.ElementwiseKernel(
        "T x",
        "T y, T gate",
        "gate = tanh((T)0.7978845608028654 * (x + (T)0.044715 * x * x * x)); y = (T)0.5 * x * ((T)1 + gate);",
        "tinygrad_tx_gelu_tanh",
    )
    kernels["gelu_tanh_backward"] = cupy.ElementwiseKernel(
        "T x, T gate, T g",
        "T dx",
        "dx = g * (T)0.5 * ((T)1 + gate + x * ((T)1 - gate * gate) * (T)0.7978845608028654"
        " * ((T)1 + (T)0.134145 * x * x));",
        "tinygrad_tx_gelu_tanh_backward",
    )
    kernels["adamw"] = cupy.ElementwiseKernel(
        "T grad, T decay, T beta1, T beta2, T step_size, T bias2_sqrt, T eps",
        "T param, T exp_avg, T exp_avg_sq",
        "param *= decay;"
        "exp_avg = beta1 * exp_avg + ((T)1 - beta1) * grad;"
        "exp_avg_sq = beta2 * exp_avg_sq + ((T)1 - beta2) * grad * grad;"
        "param -= step_size * exp_avg / (sqrt(exp_avg_sq) / bias2_sqrt + eps);",
        "tinygrad_tx_adamw",
    )
    return kernels


def fits_row_kernel(*arrays):
    """True when every array is a float32 CuPy array (the row kernels' case); None entries are skipped."""
    present = [a for a in arrays if a is not None]
    return bool(present) and all(backend.is_gpu_array(a) and a.dtype == np.float32 for a in present)


def _rows(array):
    """A C-contiguous (rows, cols) view (or copy) of ``array`` over its last axis."""
    cupy = backend.array_module("gpu")
    return cupy.ascontiguousarray(array).reshape(-1, array.shape[-1])


def _launch(name, rows, *args):
    if rows:  # CUDA rejects an empty grid; zero rows need no work
        _kernels()[name]((rows,), (THREADS,), args)


# ---------------------------------------------------------------- GELU (any float dtype)
def gelu(x, approximate="none"):
    """(gelu(x), gate): gate = Phi(x) ("none") or tanh(sqrt(2/pi)(x + 0.044715 x^3)) ("tanh"), kept for backward."""
    return _kernels()["gelu_exact" if approximate == "none" else "gelu_tanh"](x)


def gelu_backward(x, gate, grad, approximate="none"):
    """dx of gelu from the forward's x and gate (docs/derivations/gelu.md)."""
    return _kernels()["gelu_exact_backward" if approximate == "none" else "gelu_tanh_backward"](x, gate, grad)


# ---------------------------------------------------------------- row ops (float32, last axis)
def softmax_last_axis(x, out=None):
    """softmax over the last axis of a float32 CuPy array, written into ``out`` (may be x) or a new array."""
    rows = _rows(x)
    result = backend.array_module("gpu").empty_like(rows) if out is None or not out.flags.c_contiguous else out
    _launch("softmax_rows", rows.shape[0], rows, result, np.int32(rows.shape[1]))
    return result.reshape(x.shape)


def softmax_backward_last_axis(y, grad):
    """y * (g - sum(g * y)) over the last axis."""
    y_rows, grad_rows = _rows(y), _rows(grad)
    grad_x = backend.array_module("gpu").empty_like(y_rows)
    _launch("softmax_backward_rows", y_rows.shape[0], y_rows, grad_rows, grad_x, np.int32(y_rows.shape[1]))
    return grad_x.reshape(y.shape)


def layer_norm(x, weight, bias, eps):
    """(y, xhat, rstd) of layer norm over the last axis; rstd has shape (..., 1) as on the CPU path."""
    cupy = backend.array_module("gpu")
    rows = _rows(x)
    y, xhat = cupy.empty_like(rows), cupy.empty_like(rows)
    rstd = cupy.empty((rows.shape[0],), dtype=np.float32)
    _launch(
        "layer_norm_rows",
        rows.shape[0],
        rows,
        rows if weight is None else weight,
        rows if bias is None else bias,
        y,
        xhat,
        rstd,
        np.int32(rows.shape[1]),
        np.float32(eps),
        np.int32(weight is not None),
        np.int32(bias is not None),
    )
    return y.reshape(x.shape), xhat.reshape(x.shape), rstd.reshape(x.shape[:-1] + (1,))


def layer_norm_backward(grad, xhat, rstd, weight):
    """dx of layer norm (the parameter gradients are plain column sums, left to the caller)."""
    grad_rows, xhat_rows = _rows(grad), _rows(xhat)
    grad_x = backend.array_module("gpu").empty_like(xhat_rows)
    _launch(
        "layer_norm_backward_rows",
        xhat_rows.shape[0],
        grad_rows,
        xhat_rows,
        _rows(rstd),
        xhat_rows if weight is None else weight,
        grad_x,
        np.int32(xhat_rows.shape[1]),
        np.int32(weight is not None),
    )
    return grad_x.reshape(xhat.shape)


def cross_entropy_rows(logits_rows, safe_targets, counted):
    """(probs, row_loss) of (N, C) float32 logits; row_loss is 0 where ``counted`` is False."""
    cupy = backend.array_module("gpu")
    rows = _rows(logits_rows)
    probs = cupy.empty_like(rows)
    row_loss = cupy.empty((rows.shape[0],), dtype=np.float32)
    _launch(
        "cross_entropy_rows",
        rows.shape[0],
        rows,
        cupy.ascontiguousarray(safe_targets, dtype=np.int64),
        cupy.ascontiguousarray(counted, dtype=np.bool_),
        probs,
        row_loss,
        np.int32(rows.shape[1]),
    )
    return probs, row_loss


# ---------------------------------------------------------------- AdamW (any float dtype, in place)
def adamw_update(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step):
    """torch.optim.AdamW's update of one parameter and its moments, in place, in one launch."""
    scalar = param.dtype.type
    step_size = lr / (1 - beta1**step)
    bias2_sqrt = (1 - beta2**step) ** 0.5
    _kernels()["adamw"](
        grad,
        scalar(1 - lr * weight_decay),
        scalar(beta1),
        scalar(beta2),
        scalar(step_size),
        scalar(bias2_sqrt),
        scalar(eps),
        param,
        exp_avg,
        exp_avg_sq,
    )
