"""The fast CPU elementwise kernels (kernels/cpu/gelu.py, dropout.py, adamw.py, embedding.py) equal the reference.

GELU in both forms, dropout, the embedding backward and the AdamW update, on the hard inputs of
tests/helpers/kernel_cases.py; the reference erf against math.erf; mutation tests at the end.
"""

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tinygrad_tx.kernels import reference

from helpers.kernel_cases import (
    DTYPES,
    FAST,
    LAYOUTS,
    OFFSETS,
    REFERENCE,
    ROWS,
    SEEDS,
    WIDTHS,
    WORST,
    hard_array,
    report_worst,
)
from helpers.kernel_checks import check_adamw, check_dropout, check_embedding_backward, check_gelu


@pytest.fixture(scope="module", autouse=True)
def _report_worst_errors():
    yield
    report_worst()


# ---------------------------------------------------------------- hypothesis-drawn hard inputs
@given(
    rows=ROWS,
    width=WIDTHS,
    dtype=DTYPES,
    offset=OFFSETS,
    layout=LAYOUTS,
    approximate=st.sampled_from(["none", "tanh"]),
    seed=SEEDS,
)
@example(80, 4096, np.float32, 0.0, "strided", "none", 0)  # large enough for threads: always run
def test_gelu(rows, width, dtype, offset, layout, approximate, seed):
    rng = np.random.default_rng(seed)
    x = hard_array(rng, (rows, width), dtype, offset, layout, scale=3.0)
    check_gelu(FAST, x, hard_array(rng, (rows, width), dtype, layout=layout), approximate)


@given(
    rows=ROWS,
    width=WIDTHS,
    dtype=DTYPES,
    offset=OFFSETS,
    layout=LAYOUTS,
    p=st.sampled_from([0.1, 0.5, 0.9]),
    seed=SEEDS,
)
@example(80, 4096, np.float32, 1e4, "transposed", 0.5, 0)
def test_dropout(rows, width, dtype, offset, layout, p, seed):
    rng = np.random.default_rng(seed)
    x = hard_array(rng, (rows, width), dtype, offset, layout)
    check_dropout(FAST, x, p, hard_array(rng, (rows, width), dtype, layout=layout), seed)


@given(
    count=st.sampled_from([0, 1, 50, 400]),
    width=WIDTHS,
    num_rows=st.sampled_from([1, 7, 256, 300]),
    dtype=DTYPES,
    offset=OFFSETS,
    layout=LAYOUTS,
    seed=SEEDS,
)
@example(400, 4096, 300, np.float32, 1e4, "strided", 1)
def test_embedding_backward(count, width, num_rows, dtype, offset, layout, seed):
    """Tables up to 256 rows take the one-hot product, larger ones the sort-and-reduceat path."""
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, min(num_rows, 5) if seed % 2 else num_rows, count)  # often many repeats
    check_embedding_backward(FAST, indices, hard_array(rng, (count, width), dtype, offset, layout), num_rows)


@given(rows=ROWS, width=WIDTHS, dtype=DTYPES, layout=LAYOUTS, weight_decay=st.sampled_from([0.0, 0.1]), seed=SEEDS)
@example(80, 4096, np.float32, "strided", 0.1, 0)
def test_adamw_update(rows, width, dtype, layout, weight_decay, seed):
    def make_state():
        rng = np.random.default_rng(seed)
        return (
            hard_array(rng, (rows, width), dtype, layout=layout),
            np.zeros((rows, width), dtype),
            np.zeros((rows, width), dtype),
        )

    rng = np.random.default_rng(seed + 1)
    grads = [hard_array(rng, (rows, width), dtype, layout=layout, scale=scale) for scale in (1.0, 1e-3, 10.0)]
    check_adamw(FAST, make_state, grads, weight_decay)


def test_reference_erf_is_within_float64_rounding_of_math_erf():
    x = np.linspace(-7.0, 7.0, 2801)
    assert np.abs(reference.erf(x) - np.array([math.erf(v) for v in x])).max() < 5e-15
    assert reference.erf(x.astype(np.float32)).dtype == np.float32


# ---------------------------------------------------------------- the checks catch wrong kernels
def _gelu_exact_with_the_tanh_form(x, approximate):
    """Off by up to 5e-4: the tanh form cannot stand in for the exact one."""
    return REFERENCE["gelu_forward"](x, "tanh")


def _embedding_backward_last_write_wins(indices, grad_rows, num_rows):
    out = np.zeros((num_rows, grad_rows.shape[1]), grad_rows.dtype)
    out[indices] += grad_rows  # buffered: a repeated index keeps one row, not the sum
    return out


def _adamw_without_bias_correction(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step):
    REFERENCE["adamw_update"](param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, 10**6)


def _gelu_case(fast):
    rng = np.random.default_rng(0)
    x, grad = rng.standard_normal((2, 3, 64)).astype(np.float32)
    check_gelu(fast, x, grad, "none")


def _embedding_case(fast):
    rng = np.random.default_rng(0)
    check_embedding_backward(fast, np.array([0, 2, 2, 1]), rng.standard_normal((4, 8)), 300)


def _adamw_case(fast):
    rng = np.random.default_rng(0)
    state = rng.standard_normal((2, 5))
    check_adamw(
        fast, lambda: (state.copy(), np.zeros_like(state), np.zeros_like(state)), [rng.standard_normal((2, 5))], 0.1
    )


MUTATIONS = {  # what is wrong: (the kernel replaced, the wrong kernel, the check that must catch it)
    "exact GELU computed by the tanh form": ("gelu_forward", _gelu_exact_with_the_tanh_form, _gelu_case),
    "embedding backward where a repeated index keeps one row": (
        "embedding_backward",
        _embedding_backward_last_write_wins,
        _embedding_case,
    ),
    "AdamW without bias correction": ("adamw_update", _adamw_without_bias_correction, _adamw_case),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_wrong_fast_kernel_fails_the_check(mutation):
    name, wrong, run_check = MUTATIONS[mutation]
    run_check(FAST)  # the real kernel passes on this very input ...
    worst_of_real_kernels = dict(WORST)
    with pytest.raises(AssertionError, match="fast differs from the reference"):
        run_check({**FAST, name: wrong})  # ... the mutated one does not
    WORST.clear()
    WORST.update(worst_of_real_kernels)  # the report lists the real kernels' errors only
