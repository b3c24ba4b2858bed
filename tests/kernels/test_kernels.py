"""The fast CPU row kernels (tinygrad_tx/kernels/cpu/<op>.py) equal the reference (kernels/reference.py).

Softmax, log-softmax, cross-entropy, layer norm and attention: forward, every saved array and every
gradient, on hypothesis-drawn hard inputs (widths 1, 255, 256, 257, 4096 and small random ones; rows
at a +-1e4 common offset; fully masked rows; float32 and float64; transposed and strided views; 80
rows x 4096 columns, where the fast code runs in threads). Each check runs the backward of both
implementations on the reference forward's saved arrays, so a gradient is compared on its own.
A deliberately wrong fast kernel must fail these checks (the mutation tests at the end).
The elementwise kernels are in tests/kernels/test_kernels_elementwise.py, the switch in test_kernels_dispatch.py.
"""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from helpers.kernel_cases import (
    DTYPES,
    FAST,
    LAYOUTS,
    OFFSETS,
    ROWS,
    SEEDS,
    WIDTHS,
    WORST,
    hard_array,
    report_worst,
)
from helpers.kernel_checks import (
    check_attention,
    check_cross_entropy,
    check_layer_norm,
    check_log_softmax,
    check_softmax,
)


@pytest.fixture(scope="module", autouse=True)
def _report_worst_errors():
    yield
    report_worst()


# ---------------------------------------------------------------- hypothesis-drawn hard inputs
def softmax_input(rows, width, dtype, offset, layout, axis, masked, seed):
    rng = np.random.default_rng(seed)
    x = hard_array(rng, (rows, width), dtype, offset, layout, scale=3.0)
    if masked:  # the first row along the axis entirely -inf (a fully masked attention row), and some entries
        x[(0, slice(None)) if axis == 1 else (slice(None), 0)] = -np.inf
        x[rng.random(x.shape) < 0.2] = -np.inf
    return x, hard_array(rng, (rows, width), dtype, layout=layout)


@given(
    rows=ROWS,
    width=WIDTHS,
    dtype=DTYPES,
    offset=OFFSETS,
    layout=LAYOUTS,
    axis=st.sampled_from([0, 1]),
    masked=st.booleans(),
    seed=SEEDS,
)
@example(80, 4096, np.float32, 1e4, "strided", 1, True, 0)  # large enough for threads: always run
def test_softmax(rows, width, dtype, offset, layout, axis, masked, seed):
    x, grad = softmax_input(rows, width, dtype, offset, layout, axis, masked, seed)
    check_softmax(FAST, x, axis, grad)


@given(rows=ROWS, width=WIDTHS, dtype=DTYPES, offset=OFFSETS, layout=LAYOUTS, axis=st.sampled_from([0, 1]), seed=SEEDS)
@example(80, 4096, np.float32, -1e4, "transposed", 1, 0)
def test_log_softmax(rows, width, dtype, offset, layout, axis, seed):
    x, grad = softmax_input(rows, width, dtype, offset, layout, axis, False, seed)
    check_log_softmax(FAST, x, axis, grad)


@given(
    rows=ROWS,
    width=WIDTHS,
    dtype=DTYPES,
    offset=OFFSETS,
    layout=LAYOUTS,
    ignored=st.sampled_from(["none", "some", "all"]),
    seed=SEEDS,
)
@example(80, 4096, np.float32, 1e4, "strided", "all", 0)
def test_cross_entropy(rows, width, dtype, offset, layout, ignored, seed):
    rng = np.random.default_rng(seed)
    logits = hard_array(rng, (rows, width), dtype, offset, layout, scale=3.0)
    targets = rng.integers(0, width, rows)
    counted = {"none": np.ones(rows, bool), "some": rng.random(rows) < 0.5, "all": np.zeros(rows, bool)}[ignored]
    row_weight = (rng.standard_normal(rows) * counted).astype(dtype)  # what CrossEntropy.backward passes
    check_cross_entropy(FAST, logits, targets, counted, row_weight)


@given(
    lead=st.sampled_from([(), (2,)]),
    rows=ROWS,
    width=WIDTHS,
    dtype=DTYPES,
    offset=OFFSETS,
    layout=LAYOUTS,
    affine=st.sampled_from(["both", "weight", "none"]),
    seed=SEEDS,
)
@example((), 80, 4096, np.float32, 1e4, "contiguous", "both", 0)
def test_layer_norm(lead, rows, width, dtype, offset, layout, affine, seed):
    rng = np.random.default_rng(seed)
    x = hard_array(rng, lead + (rows, width), dtype, offset, layout)
    weight = hard_array(rng, (width,), dtype, 1.0) if affine != "none" else None
    bias = hard_array(rng, (width,), dtype) if affine == "both" else None
    check_layer_norm(FAST, x, weight, bias, hard_array(rng, lead + (rows, width), dtype, layout=layout))


@given(
    batch=st.sampled_from([(1,), (2, 2)]),
    queries=st.sampled_from([1, 5, 64]),
    keys=WIDTHS,
    head_dim=st.sampled_from([1, 3, 8]),
    dtype=DTYPES,
    offset=OFFSETS,
    layout=LAYOUTS,
    mask=st.sampled_from(["none", "causal", "fully masked row", "broadcast", "per batch"]),
    dropout_p=st.sampled_from([0.0, 0.3]),
    seed=SEEDS,
)
@example((2, 2), 64, 4096, 8, np.float32, 1e4, "strided", "fully masked row", 0.3, 0)
def test_attention(batch, queries, keys, head_dim, dtype, offset, layout, mask, dropout_p, seed):
    rng = np.random.default_rng(seed)
    q = hard_array(rng, batch + (queries, head_dim), dtype, layout=layout)
    k = hard_array(rng, batch + (keys, head_dim), dtype, layout=layout)
    v = hard_array(rng, batch + (keys, head_dim), dtype, offset, layout)  # out rows inherit the offset
    allowed = None
    if mask == "causal":
        allowed = np.tri(queries, keys, k=keys - queries, dtype=bool)
    elif mask == "fully masked row":
        allowed = rng.random((queries, keys)) < 0.7
        allowed[0] = False
    elif mask == "broadcast":  # leading axes of 1: the compiled masked softmax takes it as (Tq, Tk)
        allowed = rng.random((1,) * len(batch) + (queries, keys)) < 0.7
    elif mask == "per batch":  # differs along the batch: the NumPy path
        allowed = rng.random(batch + (queries, keys)) < 0.7
    grad = hard_array(rng, batch + (queries, head_dim), dtype, layout=layout)
    check_attention(FAST, q, k, v, allowed, dropout_p, grad, seed)


# ---------------------------------------------------------------- the checks catch wrong kernels
def _softmax_backward_without_y(y, grad, axis):
    return grad - (grad * y).sum(axis=axis, keepdims=True)


def _softmax_forward_nan_on_masked_rows(x, axis):
    exps = np.exp(x - x.max(axis=axis, keepdims=True))
    return exps / exps.sum(axis=axis, keepdims=True)


def _layer_norm_without_shift(x, weight, bias, eps):
    """The CUDA kernel's defect (issue 12): a running float32 sum of the unshifted values for the mean."""
    mean = np.cumsum(x, axis=-1)[..., -1:] / x.shape[-1]
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (x - mean) * rstd
    return xhat * weight + bias, xhat, rstd


def _cross_entropy_backward_without_target(probs, targets, row_weight):
    return probs * row_weight[:, None]


def _attention_backward_without_rowsum(q, k, v, probs, dropped, grad, scale):
    grad_scores = dropped * (grad @ np.swapaxes(v, -1, -2))
    grad_v = np.swapaxes(dropped, -1, -2) @ grad
    return scale * (grad_scores @ k), scale * (np.swapaxes(grad_scores, -1, -2) @ q), grad_v


def _softmax_case(fast, masked=False):
    x, grad = softmax_input(3, 257, np.float32, 0.0, "contiguous", 1, masked, 0)
    check_softmax(fast, x, 1, grad)


def _layer_norm_offset_case(fast):
    rng = np.random.default_rng(0)
    x, grad = hard_array(rng, (4, 256), np.float32, 1e4), hard_array(rng, (4, 256), np.float32)
    check_layer_norm(fast, x, np.ones(256, np.float32), np.zeros(256, np.float32), grad)


def _cross_entropy_case(fast):
    logits = np.random.default_rng(0).standard_normal((4, 9))
    check_cross_entropy(fast, logits, np.arange(4), np.ones(4, bool), np.ones(4))


def _attention_case(fast):
    rng = np.random.default_rng(0)
    q, k, v, grad = (rng.standard_normal(shape) for shape in ((2, 4, 8), (2, 5, 8), (2, 5, 8), (2, 4, 8)))
    check_attention(fast, q, k, v, None, 0.0, grad, 0)


MUTATIONS = {  # what is wrong: (the kernel replaced, the wrong kernel, the check that must catch it)
    "softmax backward without the y factor": ("softmax_backward", _softmax_backward_without_y, _softmax_case),
    "softmax NaN on a fully masked row": (
        "softmax_forward",
        _softmax_forward_nan_on_masked_rows,
        lambda fast: _softmax_case(fast, masked=True),
    ),
    "layer norm without the first-element shift": (
        "layer_norm_forward",
        _layer_norm_without_shift,
        _layer_norm_offset_case,
    ),
    "cross-entropy backward without the target's -1": (
        "cross_entropy_backward",
        _cross_entropy_backward_without_target,
        _cross_entropy_case,
    ),
    "attention backward without the row sum": (
        "attention_backward",
        _attention_backward_without_rowsum,
        _attention_case,
    ),
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
