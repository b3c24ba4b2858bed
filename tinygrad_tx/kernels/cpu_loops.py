"""Compiled CPU loops (numba): the fast CPU kernels that NumPy can only run as many whole-array passes.

A NumPy expression such as GELU's rational erf makes ~30 passes over the data, each reading and
writing every element; the same formula written as one loop over the elements reads each input
once, keeps the intermediates in registers, and LLVM vectorizes it. These loops are llm.c's C
kernels in Python syntax: plain ``for`` loops over rows and features, compiled by numba on their
first call (and cached on disk), run without the GIL so ``backend.in_row_blocks`` can give each core
its own block of rows. Every loop computes its reference.py formula, in the same order where the
rounding matters; tests/test_kernels*.py hold them to it.

``numba`` is imported with this module, which the fast kernels import on their first call, so
``import tinygrad_tx`` stays light. Only the row sums (``_sum``, ``_dot``) are compiled with
``fastmath={"reassoc"}``, which lets a sum be split into vector lanes as NumPy's pairwise sum splits
it. The kernels themselves are compiled without it: reassociation would also be free to turn
(x - first) - mean into x - (first + mean), which at a 1e4 offset loses four digits.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic

from .reference import INV_SQRT_2PI, SQRT_HALF

_loop = numba.njit(nogil=True, cache=True, error_model="numpy")
_sum_loop = numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "nsz"})


@_sum_loop
def _sum(rows, r):
    """sum(rows[r]) in float64 (vector lanes, then their total)."""
    total = 0.0
    for c in range(rows.shape[1]):
        total += np.float64(rows[r, c])
    return total


@_sum_loop
def _dot(a, b, r):
    """sum(a[r] * b[r]) in float64, each product rounded in the arrays' dtype first (as NumPy's a * b)."""
    total = 0.0
    for c in range(a.shape[1]):
        total += np.float64(a[r, c] * b[r, c])
    return total


# erf(x) ~ x P(x^2) / Q(x^2) on |x| <= 3.92 (beyond it erf rounds to +-1 in float32). Coefficients
# fitted for this project by weighted least squares against math.erf: max error 2e-8 in exact
# arithmetic, 4e-7 (a few ulp near +-1) when evaluated in float32.
ERF_CLAMP = np.float32(3.92)
_P0, _P1, _P2, _P3, _P4, _P5 = (
    np.float32(c)
    for c in (1.1283790879, 0.1910612972, 0.052837851201, 0.0037956042785, 0.0002858892205, 2.0486426455e-06)
)
_Q1, _Q2, _Q3, _Q4, _Q5 = (
    np.float32(c) for c in (0.50265591842, 0.11438271782, 0.015027283208, 0.0011705285462, 3.8131085794e-05)
)
_SQRT_HALF_32, _INV_SQRT_2PI_32 = np.float32(SQRT_HALF), np.float32(INV_SQRT_2PI)
_HALF_32, _ONE_32 = np.float32(0.5), np.float32(1.0)


# ---------------------------------------------------------------- exp of a non-positive float32
# libm's expf is one call per element, which stops LLVM from vectorizing a loop. Every exp the fast
# kernels need has a non-positive argument (x - max x, -x^2/2), so this one covers [-87, 0]:
# e^y = 2^k e^r with k = round(y / ln 2) and |r| <= ln(2)/2, e^r by its Taylor polynomial to r^7
# (truncation error 5e-9), and 2^k written straight into a float's exponent bits. Within 2 ulp of
# np.exp; below -87 (2^-126, the smallest normal float32) it returns 0, and NaN stays NaN.
_LOG2_E = np.float32(1.4426950408889634)
_LN2_HIGH, _LN2_LOW = np.float32(0.693145751953125), np.float32(1.428606765330187e-06)  # k * high is exact
_EXP_TAYLOR = tuple(np.float32(1 / math.factorial(n)) for n in range(8))
_EXP_FLOOR = np.float32(-87.0)


@intrinsic
def _float32_from_bits(typing_context, bits):
    """The float32 whose IEEE-754 bits are the int32 ``bits`` (a register move, no conversion)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return numba.types.float32(numba.types.int32), codegen


@numba.njit(inline="always", cache=True)
def exp_nonpositive(y):
    """e^y for a float32 y <= 0, vectorizable (see above)."""
    k = np.floor(y * _LOG2_E + np.float32(0.5))
    r = (y - k * _LN2_HIGH) - k * _LN2_LOW
    c0, c1, c2, c3, c4, c5, c6, c7 = _EXP_TAYLOR
    taylor = ((((((c7 * r + c6) * r + c5) * r + c4) * r + c3) * r + c2) * r + c1) * r + c0
    power = _float32_from_bits((np.int32(k) + np.int32(127)) << np.int32(23))
    return np.float32(0.0) if y < _EXP_FLOOR else taylor * power


# ---------------------------------------------------------------- erf and GELU (float32, exact form)
@numba.njit(inline="always", cache=True)
def erf_rational(t):
    """erf(t) for a float32 t: the fitted rational above, exactly +-1 beyond the clamp (NaN stays NaN)."""
    s = t * t
    numerator = ((((_P5 * s + _P4) * s + _P3) * s + _P2) * s + _P1) * s + _P0
    denominator = ((((_Q5 * s + _Q4) * s + _Q3) * s + _Q2) * s + _Q1) * s + _ONE_32
    if t >= ERF_CLAMP:  # erf is exactly +-1 in float32 here (gelu(-1e4) = -0, not -3e-4)
        return _ONE_32
    if t <= -ERF_CLAMP:
        return -_ONE_32
    return t * numerator / denominator


@_loop
def erf_float32(x, out):
    """out = erf(x); flat float32 arrays."""
    for i in range(x.size):
        out[i] = erf_rational(x[i])


@_loop
def gelu_exact_forward(x, out):
    """out = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2; flat float32 arrays."""
    for i in range(x.size):
        out[i] = x[i] * (_HALF_32 + _HALF_32 * erf_rational(x[i] * _SQRT_HALF_32))


@_loop
def gelu_exact_backward(x, grad, out):
    """out = grad (Phi(x) + x phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi), Phi recomputed from x; flat float32."""
    for i in range(x.size):
        xi = x[i]
        gate = _HALF_32 + _HALF_32 * erf_rational(xi * _SQRT_HALF_32)
        out[i] = grad[i] * (gate + xi * _INV_SQRT_2PI_32 * exp_nonpositive(-_HALF_32 * xi * xi))


# ---------------------------------------------------------------- layer norm over rows
@_loop
def layer_norm_rows(x, weight, bias, eps, xhat, rstd, out):
    """Per row of (rows, features) x: xhat = (x - mean) rstd, out = xhat weight + bias.

    Each row is shifted by its first element before the mean, as the reference does, and the row
    sums run in float64: a float32 sum of thousands of features, even in vector lanes, drifts further
    from NumPy's pairwise sum than float32 rounding does. ``eps`` has x's dtype; ``weight`` / ``bias``
    may be None (numba compiles that branch away).
    """
    rows, features = x.shape
    for r in range(rows):
        first = x[r, 0]
        for c in range(features):
            xhat[r, c] = x[r, c] - first
        mean = x.dtype.type(_sum(xhat, r) / features)
        for c in range(features):
            xhat[r, c] -= mean
        scale = x.dtype.type(1) / math.sqrt(x.dtype.type(_dot(xhat, xhat, r) / features) + eps)
        rstd[r, 0] = scale
        for c in range(features):
            value = xhat[r, c] * scale
            xhat[r, c] = value
            if weight is not None:
                value = value * weight[c]
            if bias is not None:
                value = value + bias[c]
            out[r, c] = value


@_loop
def layer_norm_backward_rows(grad, xhat, rstd, weight, grad_x, grad_weight, grad_bias):
    """grad_x = rstd (d - mean(d) - xhat mean(d xhat)), d = grad weight, per row; adds this block's
    column sums of grad xhat and grad into ``grad_weight`` and ``grad_bias`` (zeros on entry).
    grad_x's row holds d while the row's two sums are taken."""
    rows, features = xhat.shape
    for r in range(rows):
        for c in range(features):
            grad_x[r, c] = grad[r, c] * weight[c] if weight is not None else grad[r, c]
        mean_d = xhat.dtype.type(_sum(grad_x, r) / features)
        mean_projection = xhat.dtype.type(_dot(grad_x, xhat, r) / features)
        for c in range(features):
            grad_x[r, c] = rstd[r, 0] * (grad_x[r, c] - mean_d - xhat[r, c] * mean_projection)
            if weight is not None:
                grad_weight[c] += grad[r, c] * xhat[r, c]
            grad_bias[c] += grad[r, c]


# ---------------------------------------------------------------- AdamW (flat arrays, in place)
@_loop
def adamw_flat(param, grad, exp_avg, exp_avg_sq, decay, beta1, beta2, step_size, bias_root, eps):
    """One pass of the reference's update; every scalar has the arrays' dtype (as NumPy rounds them)."""
    one = param.dtype.type(1)
    for i in range(param.size):
        g = grad[i]
        m = beta1 * exp_avg[i] + (one - beta1) * g
        v = beta2 * exp_avg_sq[i] + (one - beta2) * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        param[i] = param[i] * decay - step_size * m / (math.sqrt(v) / bias_root + eps)


# ---------------------------------------------------------------- attention's masked softmax (float32)
_LOWEST_32 = np.float32(np.finfo(np.float32).min)
_ZERO_32 = np.float32(0.0)


@_loop
def masked_softmax_float32(scores, allowed):
    """In place over (batch, Tq, Tk) scores: softmax along the last axis of the scores ``allowed`` (a
    (Tq, Tk) boolean array, or None for all) keeps, 0 elsewhere: the reference's where(allowed, S, -inf)
    then softmax, in one pass. A row with nothing allowed gives zeros, as the reference; a NaN score
    makes its row NaN through the sum (the maximum skips it, which only shifts the row)."""
    batch, queries, keys = scores.shape
    rows = scores.reshape(batch * queries, keys)
    for r in range(batch * queries):
        i = r % queries
        row_max = _LOWEST_32  # also the shift of a row with nothing allowed: no -inf - -inf
        for j in range(keys):
            s = rows[r, j] if allowed is None or allowed[i, j] else _LOWEST_32
            row_max = s if s > row_max else row_max
        for j in range(keys):
            e = exp_nonpositive(rows[r, j] - row_max)
            rows[r, j] = e if allowed is None or allowed[i, j] else _ZERO_32
        total = max(np.float32(_sum(rows, r)), np.float32(1.0))
        for j in range(keys):
            rows[r, j] /= total


@_loop
def attention_scores_gradient(grad_scores, probs, dropped):
    """In place over (rows, Tk): grad_scores holds dPd on entry and dS = Pd dPd - P sum(Pd dPd) on
    return; ``dropped`` (Pd) is None without dropout, where Pd = P and dS = P (dP - sum(P dP))."""
    rows, keys = grad_scores.shape
    for r in range(rows):
        kept = probs if dropped is None else dropped
        weighted = grad_scores.dtype.type(_dot(grad_scores, kept, r))
        for j in range(keys):
            if dropped is None:
                grad_scores[r, j] = probs[r, j] * (grad_scores[r, j] - weighted)
            else:
                grad_scores[r, j] = dropped[r, j] * grad_scores[r, j] - probs[r, j] * weighted


def warm_up() -> None:
    """Compile (or load from numba's on-disk cache) the loops for the float32 arrays training uses,
    so the first training step does not pay for it. ``tune_for_training()`` calls it."""
    x = np.ones((2, 4), np.float32)
    flat, column, features = x.reshape(-1), np.ones((2, 1), np.float32), np.ones(4, np.float32)
    gelu_exact_forward(flat, flat.copy())
    gelu_exact_backward(flat, flat, flat.copy())
    for weight, bias in ((features, features), (features, None), (None, None)):
        layer_norm_rows(x, weight, bias, np.float32(1e-5), x.copy(), column.copy(), x.copy())
        layer_norm_backward_rows(x, x, column, weight, x.copy(), features.copy(), features.copy())
    one = np.float32(1)
    adamw_flat(flat.copy(), flat, flat.copy(), flat.copy(), one, one, one, one, one, one)
    masked_softmax_float32(np.ones((1, 2, 2), np.float32), np.ones((2, 2), bool))
    attention_scores_gradient(x.copy(), x, None)
    attention_scores_gradient(x.copy(), x, x)
