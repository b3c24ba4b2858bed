"""Run each CUDA kernel emulated and compare it with ``tinygrad_tx.kernels.reference`` in float64.

Each ``check_*`` launches through ``kernels/cuda/``'s own functions (``device.emulated_gpu``), raises
``AssertionError`` naming the kernel and its error when a result is off, and records the worst error
seen per kernel output in ``WORST`` (``report.py`` prints it). ``row_source`` swaps in another
RawModule source (the mutation tests). Errors are relative to the largest reference value, or to the
size of the terms when the result is a small difference of larger terms (float32 rounds the terms).
"""

import numpy as np

from tinygrad_tx.kernels import reference

from .device import emulated_gpu

F32_RTOL = 1e-6  # the worst seen is ~2e-7 (report.py)
RTOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-14}
WORST = {}


def relative_error(actual, expected, scale=None) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = np.abs(expected).max(initial=0.0) if scale is None else scale
    return float(np.abs(actual - expected).max(initial=0.0) / max(scale, 1e-30))


def assert_close(actual, expected, rtol, what, scale=None) -> None:
    assert np.shape(actual) == np.shape(expected), f"{what}: shape {np.shape(actual)} != {np.shape(expected)}"
    assert not np.isnan(actual).any(), f"{what}: NaN in the result (an element not written, or 0/0)"
    error = relative_error(actual, expected, scale)
    WORST[what] = max(WORST.get(what, 0.0), error)
    assert error <= rtol, f"{what}: max relative error {error:.3g} > {rtol}"


def offset_rows() -> np.ndarray:
    """Rows at a large common offset: 1e4 + N(0, 1), (4, 16)."""
    return (1e4 + np.random.default_rng(0).standard_normal((4, 16))).astype(np.float32)


def rows_of(seed, rows, width, offset, scale=3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (offset + scale * rng.standard_normal((rows, width))).astype(np.float32)


def as64(*arrays):
    return [None if a is None else a.astype(np.float64) for a in arrays]


def check_softmax(x, grad, row_source=None):
    with emulated_gpu(row_source) as cuda:
        y = cuda.softmax_last_axis(x)
        grad_x = cuda.softmax_backward_last_axis(y, grad)
    assert_close(y, reference.softmax_forward(x.astype(np.float64), -1), F32_RTOL, "softmax_rows")
    expected = reference.softmax_backward(*as64(y, grad), -1)
    terms = np.abs(y * grad).max()  # dx = y g - y sum(g y)
    assert_close(grad_x, expected, F32_RTOL, "softmax_backward_rows", scale=terms)


def check_layer_norm(x, grad, affine, eps=1e-5, row_source=None):
    width = x.shape[-1]
    weight = rows_of(7, 1, width, 1.0, 0.5)[0] if affine else None
    bias = rows_of(8, 1, width, 0.0, 0.5)[0] if affine else None
    with emulated_gpu(row_source) as cuda:
        y, xhat, rstd = cuda.layer_norm_rows(x, weight, bias, eps)
        grad_x = cuda.layer_norm_backward_rows(grad, xhat, rstd, weight)
    y64, xhat64, rstd64 = reference.layer_norm_forward(*as64(x, weight, bias), eps)
    assert_close(y, y64, F32_RTOL, "layer_norm_rows y")
    assert_close(xhat, xhat64, F32_RTOL, "layer_norm_rows xhat")
    assert_close(rstd, rstd64, F32_RTOL, "layer_norm_rows rstd")
    expected = reference.layer_norm_backward(*as64(grad, xhat, rstd, weight))[0]
    terms = np.abs(rstd64 * grad * (1.0 if weight is None else weight)).max()  # dx = rstd (d - ...), d = g w
    assert_close(grad_x, expected, F32_RTOL, "layer_norm_backward_rows", scale=terms)


def check_layer_norm_at_offset(x, row_source=None, rtol=2e-6):
    """test_functional_checks' large-offset case: y against the two-pass float64 formula, within 2e-6."""
    with emulated_gpu(row_source) as cuda:
        y = cuda.layer_norm_rows(x, None, None, 1e-5)[0]
    centered = x.astype(np.float64) - x.astype(np.float64).mean(axis=-1, keepdims=True)
    expected = centered / np.sqrt((centered**2).mean(axis=-1, keepdims=True) + 1e-5)
    assert_close(y, expected, rtol, "layer_norm_rows at offset 1e4")


def check_cross_entropy(logits, targets, counted, row_source=None):
    with emulated_gpu(row_source) as cuda:
        probs, row_loss = cuda.cross_entropy_rows(logits, targets, counted)
    probs64, loss64 = reference.cross_entropy_forward(logits.astype(np.float64), targets, counted)
    assert_close(probs, probs64, F32_RTOL, "cross_entropy_rows probs")
    # log(total) rounds total (>= 1) to float32 first: an absolute error for losses below 1
    assert_close(row_loss, loss64, F32_RTOL, "cross_entropy_rows loss", scale=max(np.abs(loss64).max(), 1.0))
    assert not row_loss[~counted].any(), "cross_entropy_rows: an ignored row has a loss"


def check_gelu(x, grad, approximate):
    """gate = (1 + erf)/2 or tanh has terms of size 1 (1 + erf cancels for x << 0); y = x gate; dx = g (...)."""
    rtol, kind = RTOL[x.dtype], f"gelu_{'exact' if approximate == 'none' else 'tanh'} {x.dtype}"
    with emulated_gpu() as cuda:
        y, gate = cuda.gelu_with_gate(x, approximate)
        grad_x = cuda.gelu_backward_from_gate(x, gate, grad, approximate)
    y64, gate64 = (f(x.astype(np.float64), approximate) for f in (reference.gelu_forward, reference.gelu_gate))
    assert_close(gate, gate64, rtol, f"{kind} gate", scale=1.0)
    assert_close(y, y64, rtol, kind, scale=np.abs(x).max())
    expected = reference.gelu_backward(*as64(x, grad), approximate)
    assert_close(grad_x, expected, rtol, f"{kind} backward", scale=np.abs(grad).max())


def check_adamw(param, grad, exp_avg, exp_avg_sq, **hyper):
    """Errors relative to the terms each update sums: p decay - step, b1 m + (1 - b1) g (these can cancel)."""
    expected = as64(param, grad, exp_avg, exp_avg_sq)
    reference.adamw_update(*expected, **hyper)
    beta1 = hyper["beta1"]
    scales = {
        "param": max(np.abs(param).max(), np.abs(expected[0] - param).max()),
        "exp_avg": max(beta1 * np.abs(exp_avg).max(), (1 - beta1) * np.abs(grad).max()),
        "exp_avg_sq": None,
    }
    with emulated_gpu() as cuda:
        cuda.adamw_update(param, grad, exp_avg, exp_avg_sq, **hyper)
    for name, actual, wanted in zip(scales, (param, exp_avg, exp_avg_sq), expected[:1] + expected[2:]):
        assert_close(actual, wanted, RTOL[param.dtype], f"adamw {name} {param.dtype}", scale=scales[name])
