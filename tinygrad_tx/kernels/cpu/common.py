"""What several fast CPU ops share: numba's compile settings, float64 row sums, a vectorizable float32
exp, and the NumPy-side checks and helpers (``flat``, ``same_float_dtype``, ``row_dots``).

Only the row sums (``row_sum``, ``row_dot``) are compiled with ``fastmath={"reassoc"}``, which lets a
sum be split into vector lanes as NumPy's pairwise sum splits it. The kernels themselves are compiled
without it: reassociation would also be free to turn (x - first) - mean into x - (first + mean),
which at a 1e4 offset loses four digits.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic

from ...backend import xp_of
from ..reference import Array

# The compiled loops: llm.c's C kernels in Python syntax, compiled by numba on first call (cached on
# disk), run without the GIL so row_blocks.in_row_blocks can give each core its own block of rows.
loop = numba.njit(nogil=True, cache=True, error_model="numpy")
_sum_loop = numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "nsz"})
# NumPy chains (softmax, the attention blocks) do several passes per element: threads pay off from
# ~256K elements, sooner than for the compiled loops (row_blocks.PARALLEL_MIN_ELEMENTS).
NUMPY_MIN_ELEMENTS = 1 << 18


@_sum_loop
def row_sum(rows, r):
    """sum(rows[r]) in float64 (vector lanes, then their total)."""
    total = 0.0
    for c in range(rows.shape[1]):
        total += np.float64(rows[r, c])
    return total


@_sum_loop
def row_dot(a, b, r):
    """sum(a[r] * b[r]) in float64, each product rounded in the arrays' dtype first (as NumPy's a * b)."""
    total = 0.0
    for c in range(a.shape[1]):
        total += np.float64(a[r, c] * b[r, c])
    return total


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


# ---------------------------------------------------------------- NumPy-side helpers
def flat(array: Array) -> Array:
    """A contiguous 1-D view (or copy) of ``array``."""
    return xp_of(array).ascontiguousarray(array).reshape(-1)


def same_float_dtype(*arrays: Array | None) -> bool:
    """Whether the compiled loops take these arrays: float32 or float64, all one dtype (None skipped)."""
    dtypes = {a.dtype for a in arrays if a is not None}
    return len(dtypes) == 1 and dtypes <= {np.dtype(np.float32), np.dtype(np.float64)}


def contiguous(*arrays: Array | None) -> bool:
    return all(a is None or a.flags.c_contiguous for a in arrays)


def row_dots(a: Array, b: Array) -> Array:
    """sum(a * b, axis=-1, keepdims=True) without an a-sized temporary (NumPy >= 2's vecdot)."""
    xp = xp_of(a)
    if hasattr(xp, "vecdot"):
        return xp.vecdot(a, b)[..., None]
    return (a * b).sum(axis=-1, keepdims=True)
