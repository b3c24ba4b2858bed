"""The error function as a primitive op: erf(x) = 2/sqrt(pi) int_0^x e^(-t^2) dt, d erf(x)/dx = 2/sqrt(pi) e^(-x^2).

GELU's exact form needs it. Its forward is a series; its backward is the derivative above (not the
derivative of a hundred-term series), written with Tensor-compatible operators, so it can be
differentiated again and again (docs/derivations/gelu.md, docs/derivations/second_order.md).
"""

import math

from ..backend import xp_of
from ..function import Function
from .elementwise import require_float

TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
ERF_SERIES_CLAMP, ERF_SERIES_TERMS = 6.0, 100  # erf(6) is 1 in float64; 100 terms reach float64 rounding there


def erf_series(x):
    """erf(x) = 2/sqrt(pi) e^(-x^2) sum_n 2^n x^(2n+1) / (2n+1)!!, elementwise on an array.

    Every term of this series is positive, so nothing cancels; evaluated in float64 it is within
    ~2e-15 of erf, then rounded to x's dtype. Slow (a hundred passes) but plain.
    """
    xp = xp_of(x)
    clamped = xp.clip(x.astype(xp.float64), -ERF_SERIES_CLAMP, ERF_SERIES_CLAMP)
    term, total = clamped, clamped
    for n in range(1, ERF_SERIES_TERMS):
        term = term * (2.0 * clamped * clamped / (2 * n + 1))
        total = total + term
    return (TWO_OVER_SQRT_PI * xp.exp(-clamped * clamped) * total).astype(x.dtype)


class Erf(Function):
    """d erf(x)/dx = 2/sqrt(pi) e^(-x^2)."""

    @staticmethod
    def forward(ctx, x):
        require_float("erf", x)
        ctx.save_for_backward(x)
        return erf_series(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (TWO_OVER_SQRT_PI * xp_of(x).exp(-(x * x)))
