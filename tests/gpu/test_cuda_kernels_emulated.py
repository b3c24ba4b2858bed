"""Every CUDA kernel of tinygrad_tx.kernels.cuda, executed on the CPU from its very source string
(NVRTC -> PTX -> tests/cuda_emulation's interpreter) through kernels/cuda/'s own launch functions, and
compared with tinygrad_tx.kernels.reference evaluated in float64 on the same inputs.

Inputs: hypothesis draws rows and widths (1, 255, 256, 257 around the 256-thread block, and others),
values at a 1e4 common offset or around zero, fully masked (all -inf) softmax rows, ignored
cross-entropy targets; one 4096-wide case per row kernel (marked ``wide``, kept to one test).
"""

import numpy as np
import pytest
from cuda_emulation.checks import (
    check_adamw,
    check_cross_entropy,
    check_gelu,
    check_layer_norm,
    check_layer_norm_at_offset,
    check_softmax,
    offset_rows,
    rows_of,
)
from cuda_emulation.device import emulated_gpu
from hypothesis import given
from hypothesis import strategies as st

from helpers.optional import requires_cuda_emulation

# NVRTC (through CuPy) compiles, the PTX emulator runs: skipped, with the extra to install, without them
pytestmark = requires_cuda_emulation

WIDTHS = st.one_of(st.sampled_from([1, 255, 256, 257]), st.integers(2, 300))
ROWS = st.integers(1, 3)
OFFSETS = st.sampled_from([0.0, 1e4])
SEEDS = st.integers(0, 2**32 - 1)
DTYPES = st.sampled_from([np.float32, np.float64])


@given(ROWS, WIDTHS, OFFSETS, SEEDS)
def test_softmax_rows_match_the_reference(rows, width, offset, seed):
    check_softmax(rows_of(seed, rows, width, offset), rows_of(seed + 1, rows, width, 0.0))


def test_a_fully_masked_softmax_row_gives_zeros():
    x = rows_of(0, 3, 257, 0.0)
    x[1] = -np.inf
    x[2, ::2] = -np.inf
    check_softmax(x, rows_of(1, 3, 257, 0.0))
    with emulated_gpu() as cuda:
        assert not cuda.softmax_last_axis(x)[1].any()


@given(ROWS, WIDTHS, OFFSETS, st.booleans(), SEEDS)
def test_layer_norm_rows_match_the_reference(rows, width, offset, affine, seed):
    check_layer_norm(rows_of(seed, rows, width, offset), rows_of(seed + 1, rows, width, 0.0), affine)


def test_layer_norm_keeps_float32_accuracy_at_a_1e4_offset():
    """Regression for defect 2 of issue 12: without the first-element shift the error was 2.7e-4 here."""
    check_layer_norm_at_offset(offset_rows())


@given(ROWS, WIDTHS, OFFSETS, SEEDS)
def test_cross_entropy_rows_match_the_reference_with_ignored_targets(rows, width, offset, seed):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, width, rows).astype(np.int64)
    counted = rng.random(rows) < 0.7
    check_cross_entropy(rows_of(seed, rows, width, offset), targets, counted)


@pytest.mark.wide
def test_every_row_kernel_at_width_4096():
    x, grad = rows_of(11, 2, 4096, 1e4), rows_of(12, 2, 4096, 0.0)
    check_softmax(x, grad)
    check_layer_norm(x, grad, affine=True)
    check_cross_entropy(x, np.array([5, 4095]), np.array([True, False]))


@given(st.sampled_from(["none", "tanh"]), DTYPES, st.integers(1, 700), SEEDS)
def test_gelu_kernels_match_the_reference(approximate, dtype, size, seed):
    rng = np.random.default_rng(seed)
    check_gelu((4 * rng.standard_normal(size)).astype(dtype), rng.standard_normal(size).astype(dtype), approximate)


@given(DTYPES, st.integers(1, 700), st.integers(1, 50), SEEDS)
def test_adamw_kernel_matches_the_reference(dtype, size, step, seed):
    rng = np.random.default_rng(seed)
    param, grad, exp_avg = (rng.standard_normal(size).astype(dtype) for _ in range(3))
    check_adamw(
        param,
        grad,
        exp_avg,
        rng.random(size).astype(dtype),
        lr=3e-3,
        beta1=0.9,
        beta2=0.95,
        eps=1e-8,
        weight_decay=0.1,
        step=step,
    )
