"""Exact IEEE rounding for the PTX floating-point instructions, vectorised with NumPy.

How each instruction is modelled (all float32 results are exactly what IEEE-754 prescribes):
- ``add/sub/mul/div/sqrt/rcp .rn`` (f32, f64): NumPy's own float32/float64 operations, which are
  correctly rounded to nearest-even. ``div``/``sqrt``/``rcp`` in float32 are computed in float64 and
  rounded once more to float32, which is provably innocuous (53 >= 2*24 + 2 bits).
- ``fma.rn.f32``: the product of two float32 values is exact in float64; the sum with ``c`` is kept as
  an exact pair (``two_sum``) and rounded to float64 *to odd*, then to float32 to nearest: rounding to
  odd with >= 2 extra bits makes the double rounding exact (Boldo & Melquiond 2008).
- ``fma.rn.f64``: the same paper's emulated FMA: exact product pair (Veltkamp/Dekker), exact sum pair,
  middle terms rounded to odd, one final rounding to nearest. Exact barring overflow/underflow of the
  error terms (|values| beyond ~1e300 or below ~1e-290), which these kernels never reach.
- Directed modes (``.rm``, ``.rp``, ``.rz``; NVRTC's ``expf`` uses ``fma.rm``) for float32: round the
  exact pair to nearest, then step one ulp where that landed on the wrong side of the exact value.
- ``.ftz``: float32 subnormal inputs and results become zero of the same sign (``-ftz=true`` is one of
  CuPy's options, so every float32 instruction NVRTC emits for these kernels carries it).
- ``ex2.approx``, ``lg2.approx``, ``rcp.approx``, ``rsqrt.approx``, ``sqrt.approx``: hardware gives an
  approximation within a documented bound (ex2.approx.f32: 2 ulp; rcp.approx.f64 is only a seed for
  the Newton steps NVRTC wraps around it). They are modelled as the correctly rounded result, which
  lies inside that bound; results may therefore differ from a real GPU by those few ulps, which the
  comparisons against the reference allow.
"""

import numpy as np

F32_MIN_NORMAL = np.float32(2.0**-126)
_SPLITTER = 134217729.0  # 2**27 + 1, Veltkamp's constant for float64


def ftz32(values: np.ndarray) -> np.ndarray:
    """float32 subnormals -> signed zero."""
    values = np.asarray(values, dtype=np.float32)
    return np.where(np.abs(values) < F32_MIN_NORMAL, np.copysign(np.float32(0), values), values)


def two_sum(a: np.ndarray, b: np.ndarray):
    """(s, e) with s = RN(a + b) and a + b = s + e exactly (Knuth), float64."""
    s = a + b
    b_virtual = s - a
    e = (a - (s - b_virtual)) + (b - b_virtual)
    return s, np.where(np.isfinite(s), e, 0.0)


def two_product(a: np.ndarray, b: np.ndarray):
    """(p, e) with p = RN(a * b) and a * b = p + e exactly (Dekker), float64."""
    p = a * b

    def split(x):
        scaled = _SPLITTER * x
        high = scaled - (scaled - x)
        return high, x - high

    a_high, a_low = split(a)
    b_high, b_low = split(b)
    e = ((a_high * b_high - p) + a_high * b_low + a_low * b_high) + a_low * b_low
    return p, np.where(np.isfinite(p), e, 0.0)


def round_to_odd(s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The float64 nearest s + e with an odd last bit when inexact (s = RN(s + e))."""
    even = (np.asarray(s, dtype=np.float64).view(np.int64) & 1) == 0
    step = (e != 0) & even & np.isfinite(s)
    return np.where(step, np.nextafter(s, np.where(e > 0, np.inf, -np.inf)), s)


def round_pair_to_f32(s: np.ndarray, e: np.ndarray, mode: str) -> np.ndarray:
    """float32 rounding of the exact value s + e (float64 pair) in PTX rounding ``mode`` (rn, rm, rp, rz)."""
    nearest = round_to_odd(s, e).astype(np.float32)
    if mode == "rn":
        return nearest
    wide = nearest.astype(np.float64)
    above = (wide > s) | ((wide == s) & (e < 0))
    below = (wide < s) | ((wide == s) & (e > 0))
    exact_negative = (s < 0) | ((s == 0) & (e < 0))
    if mode == "rm":
        down, up = above, np.zeros_like(above)
    elif mode == "rp":
        down, up = np.zeros_like(above), below
    elif mode == "rz":
        down, up = above & ~exact_negative, below & exact_negative
    else:
        raise ValueError(f"unknown rounding mode {mode!r}")
    result = np.where(down, np.nextafter(nearest, np.float32(-np.inf)), nearest)
    return np.where(up, np.nextafter(nearest, np.float32(np.inf)), result)


def f32_arith(op: str, operands: list, mode: str = "rn") -> np.ndarray:
    """add/sub/mul/fma on float32 operands with exact rounding in ``mode``."""
    if mode == "rn" and op in ("add", "sub", "mul"):
        a, b = operands
        return {"add": np.add, "sub": np.subtract, "mul": np.multiply}[op](a, b, dtype=np.float32)
    wide = [np.asarray(x, dtype=np.float32).astype(np.float64) for x in operands]
    if op == "add":
        s, e = two_sum(wide[0], wide[1])
    elif op == "sub":
        s, e = two_sum(wide[0], -wide[1])
    elif op == "mul":
        s, e = wide[0] * wide[1], np.zeros_like(wide[0] * wide[1])  # exact: 24 + 24 bits fit in 53
    elif op == "fma":
        s, e = two_sum(wide[0] * wide[1], wide[2])
    else:
        raise ValueError(op)
    return round_pair_to_f32(s, e, mode)


def fma_f64(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Correctly rounded float64 a * b + c (Boldo-Melquiond emulated FMA)."""
    a, b, c = (np.asarray(x, dtype=np.float64) for x in (a, b, c))
    product_high, product_low = two_product(a, b)
    sum_high, sum_low = two_sum(c, product_high)
    middle, middle_error = two_sum(sum_low, product_low)
    fused = sum_high + round_to_odd(middle, middle_error)
    naive = a * b + c
    return np.where(np.isfinite(naive) & np.isfinite(product_high), fused, naive)
