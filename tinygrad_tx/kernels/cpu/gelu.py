"""GELU and its erf, fast on the CPU (reference.gelu_forward / gelu_backward, reference.erf,
docs/derivations/gelu.md).

NumPy has no erf. In float32 the exact form runs as one compiled pass (``gelu_exact_forward``,
``gelu_exact_backward``) over a rational erf fitted for this project (``erf_rational``, within 4e-7
of erf), on the row blocks or the team; float64 and the tanh form run NumPy ``out=`` chains.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import carray

from ...backend import xp_of
from .. import reference
from ..reference import INV_SQRT_2PI, SQRT_2_OVER_PI, SQRT_HALF, TANH_CUBIC, Array
from ..runtime import jobs, row_blocks
from ..runtime.native import float32_pointer, int64_pointer
from ..runtime.slots import Slots
from .common import exp_nonpositive, flat, loop

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


def erf(x: Array) -> Array:
    """The error function of a float array, elementwise (NumPy has none; scipy is not a dependency).

    float64: the reference's everywhere-positive series (error ~2e-15), slow but exact enough for
    gradchecks. float32: the fitted rational x P(x^2)/Q(x^2) below, within 4e-7 of erf, one compiled
    pass on every core. Other dtypes go through float32.
    """
    if x.dtype == np.float64:
        return reference.erf(x)
    flat_x = flat(x.astype(np.float32, copy=False))
    out = np.empty_like(flat_x)
    row_blocks.in_row_blocks(erf_float32, flat_x, out)
    return out.reshape(x.shape).astype(x.dtype, copy=False)


def _gate(x: Array, approximate: str) -> Array:
    """reference.gelu_gate in place: Phi(x) through the fast erf, or the tanh form."""
    xp = xp_of(x)
    if approximate == "none":
        gate = erf(x * SQRT_HALF)  # becomes Phi(x)
        gate += 1.0
        gate *= 0.5
        return gate
    gate = x * x
    gate *= TANH_CUBIC
    gate += 1.0
    gate *= x
    gate *= SQRT_2_OVER_PI
    return xp.tanh(gate, out=gate)  # t = tanh(sqrt(2/pi) (x + 0.044715 x^3))


def gelu_forward(x: Array, approximate: str) -> Array:
    if approximate == "none" and x.dtype == np.float32:  # one compiled pass on every core
        out = np.empty(x.size, x.dtype)
        if row_blocks.team() is None or not _on_team(flat(x), out):
            row_blocks.in_row_blocks(gelu_exact_forward, flat(x), out)
        return out.reshape(x.shape)
    gate = _gate(x, approximate)
    if approximate == "none":
        gate *= x
        return gate
    gate += 1.0
    gate *= 0.5
    gate *= x
    return gate


def gelu_backward(x: Array, grad: Array, approximate: str) -> Array:
    if approximate == "none" and x.dtype == grad.dtype == np.float32:  # Phi recomputed inside the loop
        slope = np.empty(x.size, x.dtype)
        if row_blocks.team() is None or not _on_team(flat(x), slope, flat(grad)):
            row_blocks.in_row_blocks(gelu_exact_backward, flat(x), flat(grad), slope)
        return slope.reshape(x.shape)
    gate = _gate(x, approximate)
    if approximate == "none":
        slope = x * x
        slope *= -0.5
        np.exp(slope, out=slope)
        slope *= INV_SQRT_2PI  # phi(x), the standard normal density
        slope *= x
        slope += gate
    else:
        slope = x * x
        slope *= 3.0 * TANH_CUBIC
        slope += 1.0
        slope *= SQRT_2_OVER_PI
        slope *= 1.0 - gate * gate
        slope *= x
        slope += 1.0 + gate
        slope *= 0.5
    slope *= grad
    return slope


# ---------------------------------------------------------------- the compiled loops (float32, exact form)
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


@loop
def erf_float32(x, out):
    """out = erf(x); flat float32 arrays."""
    for i in range(x.size):
        out[i] = erf_rational(x[i])


@loop
def gelu_exact_forward(x, out):
    """out = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2; flat float32 arrays."""
    for i in range(x.size):
        out[i] = x[i] * (_HALF_32 + _HALF_32 * erf_rational(x[i] * _SQRT_HALF_32))


@loop
def gelu_exact_backward(x, grad, out):
    """out = grad (Phi(x) + x phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi), Phi recomputed from x; flat float32."""
    for i in range(x.size):
        xi = x[i]
        gate = _HALF_32 + _HALF_32 * erf_rational(xi * _SQRT_HALF_32)
        out[i] = grad[i] * (gate + xi * _INV_SQRT_2PI_32 * exp_nonpositive(-_HALF_32 * xi * xi))


def warm_up() -> None:
    """Compile (or load from numba's cache) the loops for the float32 arrays training uses."""
    flat_x = np.ones(8, np.float32)
    gelu_exact_forward(flat_x, flat_x.copy())
    gelu_exact_backward(flat_x, flat_x, flat_x.copy())


# ---------------------------------------------------------------- on the team: blocks of elements
FORWARD = Slots("gelu", "x", "out", "count", "blocks")
BACKWARD = Slots("gelu_backward", "x", "grad", "out", "count", "blocks")
_F, _B = FORWARD.at, BACKWARD.at


@jobs.block_function
def _forward_block(arguments, block):
    a = carray(int64_pointer(arguments), (_F.size,))
    low, high = jobs.span(a[_F.count], block, a[_F.blocks])
    x = carray(float32_pointer(a[_F.x] + 4 * low), (high - low,))
    gelu_exact_forward(x, carray(float32_pointer(a[_F.out] + 4 * low), (high - low,)))


@jobs.block_function
def _backward_block(arguments, block):
    a = carray(int64_pointer(arguments), (_B.size,))
    low, high = jobs.span(a[_B.count], block, a[_B.blocks])
    x = carray(float32_pointer(a[_B.x] + 4 * low), (high - low,))
    grad = carray(float32_pointer(a[_B.grad] + 4 * low), (high - low,))
    out = carray(float32_pointer(a[_B.out] + 4 * low), (high - low,))
    gelu_exact_backward(x, grad, out)


def _on_team(x: np.ndarray, out: np.ndarray, grad: np.ndarray | None = None) -> bool:
    """out = gelu(x), or its input gradient when ``grad`` is given; flat contiguous float32 arrays.
    False (nothing done) for a job too small to share."""
    blocks = jobs.blocks_for(x.size, jobs.MIN_ELEMENTS, x.size)
    if blocks == 1:
        return False
    if grad is None:
        arguments = FORWARD.pack(x=x.ctypes.data, out=out.ctypes.data, count=x.size, blocks=blocks)
        row_blocks.team().run(_forward_block.address, arguments, blocks)
    else:
        arguments = BACKWARD.pack(
            x=x.ctypes.data, grad=grad.ctypes.data, out=out.ctypes.data, count=x.size, blocks=blocks
        )
        row_blocks.team().run(_backward_block.address, arguments, blocks)
    return True
