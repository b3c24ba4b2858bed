"""Every CUDA kernel of tinygrad_tx.kernels.cuda, executed on the CPU from its very source string
(NVRTC -> PTX -> tests/cuda_emulation's interpreter) through cuda.py's own launch functions, and
compared with tinygrad_tx.kernels.reference evaluated in float64 on the same inputs.

Inputs: hypothesis draws rows and widths (1, 255, 256, 257 around the 256-thread block, and others),
values at a 1e4 common offset or around zero, fully masked (all -inf) softmax rows, ignored
cross-entropy targets; one 4096-wide case per row kernel (marked ``wide``). Tolerances are relative
to the largest reference value and leave room for float32 sums in another order than the reference's.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

pytest.importorskip("cuda_emulation.nvrtc", reason="needs cupy-cuda12x and nvidia-cuda-nvrtc-cu12")
from cuda_emulation.device import emulated_gpu  # noqa: E402

from tinygrad_tx.kernels import reference  # noqa: E402

WIDTHS = st.one_of(st.sampled_from([1, 255, 256, 257]), st.integers(2, 300))
ROWS = st.integers(1, 3)
OFFSETS = st.sampled_from([0.0, 1e4])
F32_RTOL = 3e-6


def relative_error(actual, expected, scale=None):
    """max |actual - expected| over ``scale``: the largest |expected| unless the result is a small
    difference of larger terms (then their size, since float32 rounds the terms, not the result)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    assert not np.isnan(actual).any(), "the kernel left NaN (an element not written?)"
    scale = np.abs(expected).max(initial=0.0) if scale is None else scale
    return float(np.abs(actual - expected).max(initial=0.0) / max(scale, 1e-30))


def assert_close(actual, expected, rtol, what, scale=None):
    error = relative_error(actual, expected, scale)
    assert error <= rtol, f"{what}: max relative error {error:.3g} > {rtol}"


def rows_of(seed, rows, width, offset, scale=3.0):
    rng = np.random.default_rng(seed)
    return (offset + scale * rng.standard_normal((rows, width))).astype(np.float32)


def as64(*arrays):
    return [None if a is None else a.astype(np.float64) for a in arrays]


# ---------------------------------------------------------------- softmax
def check_softmax(x, grad):
    with emulated_gpu() as cuda:
        y = cuda.softmax_last_axis(x)
        grad_x = cuda.softmax_backward_last_axis(y, grad)
    assert_close(y, reference.softmax_forward(x.astype(np.float64), -1), F32_RTOL, "softmax_rows")
    expected = reference.softmax_backward(*as64(y, grad), -1)
    terms = np.abs(y * grad).max()  # dx = y g - y sum(g y)
    assert_close(grad_x, expected, F32_RTOL, "softmax_backward_rows", scale=terms)


@given(ROWS, WIDTHS, OFFSETS, st.integers(0, 2**32 - 1))
def test_softmax_rows_match_the_reference(rows, width, offset, seed):
    check_softmax(rows_of(seed, rows, width, offset), rows_of(seed + 1, rows, width, 0.0))


def test_a_fully_masked_softmax_row_gives_zeros():
    x = rows_of(0, 3, 257, 0.0)
    x[1] = -np.inf
    x[2, ::2] = -np.inf
    check_softmax(x, rows_of(1, 3, 257, 0.0))
    with emulated_gpu() as cuda:
        assert not cuda.softmax_last_axis(x)[1].any()


# ---------------------------------------------------------------- layer norm
def check_layer_norm(x, grad, affine, eps=1e-5):
    width = x.shape[-1]
    weight = rows_of(7, 1, width, 1.0, 0.5)[0] if affine else None
    bias = rows_of(8, 1, width, 0.0, 0.5)[0] if affine else None
    with emulated_gpu() as cuda:
        y, xhat, rstd = cuda.layer_norm(x, weight, bias, eps)
        grad_x = cuda.layer_norm_backward(grad, xhat, rstd, weight)
    y64, xhat64, rstd64 = reference.layer_norm_forward(*as64(x, weight, bias), eps)
    assert_close(y, y64, F32_RTOL, "layer_norm_rows y")
    assert_close(xhat, xhat64, F32_RTOL, "layer_norm_rows xhat")
    assert_close(rstd, rstd64, F32_RTOL, "layer_norm_rows rstd")
    expected = reference.layer_norm_backward(*as64(grad, xhat, rstd, weight))[0]
    terms = np.abs(rstd64 * grad * (1.0 if weight is None else weight)).max()  # dx = rstd (d - ...), d = g w
    assert_close(grad_x, expected, F32_RTOL, "layer_norm_backward_rows", scale=terms)


@given(ROWS, WIDTHS, OFFSETS, st.booleans(), st.integers(0, 2**32 - 1))
def test_layer_norm_rows_match_the_reference(rows, width, offset, affine, seed):
    check_layer_norm(rows_of(seed, rows, width, offset), rows_of(seed + 1, rows, width, 0.0), affine)


def test_layer_norm_keeps_float32_accuracy_at_a_1e4_offset():
    """Regression for defect 2 of issue 12: without the first-element shift the error was 2.7e-4."""
    x = rows_of(3, 4, 16, 1e4, 1.0)
    with emulated_gpu() as cuda:
        y = cuda.layer_norm(x, None, None, 1e-5)[0]
    centered = x.astype(np.float64) - x.astype(np.float64).mean(axis=-1, keepdims=True)
    expected = centered / np.sqrt((centered ** 2).mean(axis=-1, keepdims=True) + 1e-5)
    assert_close(y, expected, 2e-6, "layer_norm_rows at offset 1e4")  # the bound of test_functional_checks


# ---------------------------------------------------------------- cross-entropy
def check_cross_entropy(logits, targets, counted):
    with emulated_gpu() as cuda:
        probs, row_loss = cuda.cross_entropy_rows(logits, targets, counted)
    probs64, loss64 = reference.cross_entropy_forward(logits.astype(np.float64), targets, counted)
    assert_close(probs, probs64, F32_RTOL, "cross_entropy_rows probs")
    assert_close(row_loss, loss64, F32_RTOL, "cross_entropy_rows loss")
    assert not row_loss[~counted].any()


@given(ROWS, WIDTHS, OFFSETS, st.integers(0, 2**32 - 1))
def test_cross_entropy_rows_match_the_reference_with_ignored_targets(rows, width, offset, seed):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, width, rows).astype(np.int64)
    counted = rng.random(rows) < 0.7
    check_cross_entropy(rows_of(seed, rows, width, offset), targets, counted)


# ---------------------------------------------------------------- the 4096-wide rows (few: slow to emulate)
@pytest.mark.wide
def test_every_row_kernel_at_width_4096():
    x, grad = rows_of(11, 2, 4096, 1e4), rows_of(12, 2, 4096, 0.0)
    check_softmax(x, grad)
    check_layer_norm(x, grad, affine=True)
    check_cross_entropy(x, np.array([5, 4095]), np.array([True, False]))


# ---------------------------------------------------------------- GELU and AdamW (ElementwiseKernels)
DTYPES = st.sampled_from([np.float32, np.float64])
RTOL = {np.float32: 2e-6, np.float64: 1e-13}


@given(st.sampled_from(["none", "tanh"]), DTYPES, st.integers(1, 700), st.integers(0, 2**32 - 1))
def test_gelu_kernels_match_the_reference(approximate, dtype, size, seed):
    rng = np.random.default_rng(seed)
    x = (4 * rng.standard_normal(size)).astype(dtype)
    grad = rng.standard_normal(size).astype(dtype)
    with emulated_gpu() as cuda:
        y, gate = cuda.gelu(x, approximate)
        grad_x = cuda.gelu_backward(x, gate, grad, approximate)
    # gate = (1 + erf) / 2 or tanh: terms of size 1 (1 + erf cancels for x << 0); y = x gate; dx = g (...)
    y64, gate64 = reference.gelu_forward(x.astype(np.float64), approximate)
    assert_close(gate, gate64, RTOL[dtype], f"gelu {approximate} gate {np.dtype(dtype)}", scale=1.0)
    assert_close(y, y64, RTOL[dtype], f"gelu {approximate} {np.dtype(dtype)}", scale=np.abs(x).max())
    expected = reference.gelu_backward(*as64(x, gate, grad), approximate)
    assert_close(grad_x, expected, RTOL[dtype], f"gelu {approximate} backward {np.dtype(dtype)}",
                 scale=np.abs(grad).max())


@given(DTYPES, st.integers(1, 700), st.integers(1, 50), st.integers(0, 2**32 - 1))
def test_adamw_kernel_matches_the_reference(dtype, size, step, seed):
    rng = np.random.default_rng(seed)
    param, grad = (rng.standard_normal(size).astype(dtype) for _ in range(2))
    exp_avg, exp_avg_sq = rng.standard_normal(size).astype(dtype), rng.random(size).astype(dtype)
    expected = as64(param, grad, exp_avg, exp_avg_sq)
    hyper = dict(lr=3e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, step=step)
    reference.adamw_update(*expected, **hyper)
    with emulated_gpu() as cuda:
        cuda.adamw_update(param, grad, exp_avg, exp_avg_sq, **hyper)
    for name, actual, wanted in zip(("param", "exp_avg", "exp_avg_sq"), (param, exp_avg, exp_avg_sq),
                                    expected[:1] + expected[2:]):
        assert_close(actual, wanted, RTOL[dtype], f"adamw {name} {np.dtype(dtype)}")
