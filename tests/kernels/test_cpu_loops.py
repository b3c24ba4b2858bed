"""The fast CPU kernels' scalar building blocks (kernels/cpu/common.py, gelu.py), checked
on their own against float64 NumPy and math.

The kernels built from them are held to the reference in tests/kernels/test_kernels*.py; these tests pin down
the two approximations (exp on [-87, 0], the fitted erf) over their whole domain and at the edges.
"""

import math

import numba
import numpy as np
import pytest

from tinygrad_tx.kernels import cpu
from tinygrad_tx.kernels.cpu import adamw, common, gelu, layer_norm


@numba.njit
def _exp_all(y, out):
    for i in range(y.size):
        out[i] = common.exp_nonpositive(y[i])


def test_exp_is_within_two_ulp_of_float64_exp_over_its_domain():
    rng = np.random.default_rng(0)
    y = np.concatenate(
        [
            -rng.exponential(5.0, 400_000).astype(np.float32),
            -rng.uniform(0, 87, 400_000).astype(np.float32),
            np.linspace(-1, 0, 100_000, dtype=np.float32),  # around the first range-reduction steps
            np.float32([0.0, -0.0, -1e-30, -0.5 * math.log(2), -math.log(2), -87.0]),
        ]
    )
    out = np.empty_like(y)
    _exp_all(y, out)
    exact = np.exp(y.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    worst = float((np.abs(out - exact) / ulp).max())
    assert worst <= 2.0, f"exp_nonpositive is {worst:.2f} ulp from exp"


def test_exp_edges():
    y = np.float32([0.0, -0.0, -87.5, -100.0, -np.inf, np.nan])
    out = np.empty_like(y)
    _exp_all(y, out)
    assert out[0] == 1.0 and out[1] == 1.0
    assert (out[2:5] == 0.0).all(), "below -87 (under the smallest normal float32) the result is 0"
    assert np.isnan(out[5]), "NaN must stay NaN (a NaN attention score makes its row NaN)"


def test_erf_is_within_its_stated_error_of_math_erf():
    x = np.concatenate([np.linspace(-5, 5, 200_001), [3.91, 3.92, 3.93, -3.92, 1e4, -1e4]]).astype(np.float32)
    out = np.empty_like(x)
    gelu.erf_float32(x, out)
    exact = np.array([math.erf(float(value)) for value in x])
    assert np.abs(out - exact).max() <= 4e-7
    assert out[-2] == 1.0 and out[-1] == -1.0, "beyond the clamp erf is exactly +-1"
    special = np.float32([np.inf, -np.inf, np.nan])
    gelu.erf_float32(special, out[:3])
    assert out[0] == 1.0 and out[1] == -1.0 and np.isnan(out[2])


def test_warm_up_compiles_the_training_signatures():
    cpu.warm_up()
    for kernel in (gelu.gelu_exact_forward, layer_norm.layer_norm_rows, adamw.adamw_flat):
        assert kernel.signatures, f"{kernel.__name__} was not compiled"
    float32_rows = numba.types.Array(numba.float32, 2, "C")
    assert any(signature[0] == float32_rows for signature in layer_norm.layer_norm_rows.signatures)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_rows_keeps_the_mean_at_a_large_offset(dtype):
    """At a 1e4 offset the result keeps float32's digits: the row is shifted by its first element before
    the mean, and the kernel is compiled without reassociation, which may turn (x - first) - mean into
    x - (first + mean) (an early version of this loop lost four digits that way; test_kernels.py's
    explicit 4096-wide, 1e4-offset example caught it)."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3, 4096)) + 1e4).astype(dtype)
    xhat, out = np.empty_like(x), np.empty_like(x)
    rstd = np.empty((3, 1), dtype)
    layer_norm.layer_norm_rows(x, None, None, dtype(1e-5), xhat, rstd, out)
    exact = x.astype(np.float64) - x.astype(np.float64).mean(axis=1, keepdims=True)
    exact /= np.sqrt((exact**2).mean(axis=1, keepdims=True) + 1e-5)
    assert np.abs(out - exact).max() < (2e-5 if dtype == np.float32 else 1e-10)
