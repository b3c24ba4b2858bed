"""Shared by tests/kernels/: the hard inputs of the kernel tests, and the error measure and its bound.

Error measure: max |fast - reference| / max |reference| over one output (normwise relative error),
so rows of tiny values (softmax over 4096 columns) and rows of huge ones (a 1e4 offset) are held to
the same standard, and an output that is exactly zero in the reference (a fully masked row) must be
exactly zero in the fast kernel too. Where a result is a difference of much larger terms (a layer
norm gradient over 2 features, attention gradients when v sits at a 1e4 offset), its rounding error
is proportional to those terms, not to the result: the standard bound for a sum is
|fl(sum) - sum| <= n u sum |terms|. There the check divides by ``magnitude``, the same formula
evaluated on absolute values, as that bound does.
"""

import numpy as np
from hypothesis import strategies as st

from tinygrad_tx import kernels
from tinygrad_tx.kernels import reference
from tinygrad_tx.kernels.dispatch import KERNEL_NAMES

# Widths around the CUDA block size (256 threads) and the largest GPT row, plus small random ones.
WIDTHS = st.sampled_from([1, 255, 256, 257, 4096]) | st.integers(2, 40)
# 80 rows x 4096 columns passes backend.PARALLEL_MIN_ELEMENTS: the fast code then runs in threads.
ROWS = st.sampled_from([1, 2, 3, 80])
DTYPES = st.sampled_from([np.float32, np.float64])
OFFSETS = st.sampled_from([0.0, 1e4, -1e4])
LAYOUTS = st.sampled_from(["contiguous", "transposed", "strided"])
SEEDS = st.integers(0, 2**16)

# The two implementations evaluate the same formula in different operation orders (in place vs
# fresh temporaries, vecdot vs pairwise sums, blocked vs whole, a fitted float32 erf vs the series).
# Each rounding costs at most u = 2^-24 = 6e-8 relative in float32 (1.1e-16 in float64). A result
# goes through up to a dozen roundings on each side (the fitted float32 erf is within 4e-7 = 7u),
# plus sums: the error of an n-term sum is bounded by (n - 1) u in the worst case and by
# lambda sqrt(n) u with high probability (Higham & Mary 2019, probabilistic rounding error analysis).
# So the bound is u (16 + 2 sqrt(n)), n the longest sum behind the output (at most the largest axis
# of the inputs): 9.5e-7 for an elementwise float32 op, 8.6e-6 for a float32 row of 4096. The
# worst errors seen over thousands of hypothesis examples stay 3-4x below it (-s prints them).
ROUNDINGS, SUM_LAMBDA = 16, 2


def tolerance(dtype, terms=1):
    """The bound on the normwise error between two evaluation orders of one formula (see above)."""
    return np.finfo(dtype).eps / 2 * (ROUNDINGS + SUM_LAMBDA * np.sqrt(terms))


WORST = {}  # (op, dtype name) -> (worst error, worst error as a fraction of its bound) in this run


def implementations(choice):
    """{kernel name: the function ``choice`` ("fast" | "reference") runs on NumPy arrays}, via the public dispatch."""
    probe = np.empty(0)
    with kernels.use(choice):
        return {name: kernels.pick(getattr(reference, name), probe) for name in KERNEL_NAMES}


FAST, REFERENCE = implementations("fast"), implementations("reference")


def hard_array(rng, shape, dtype, offset=0.0, layout="contiguous", scale=1.0):
    """Normal values times ``scale`` plus ``offset``, in ``dtype``, laid out contiguously or as a
    transposed (Fortran-order) or strided (every other column) view."""
    values = rng.standard_normal(shape) * scale + offset
    if layout == "transposed":
        out = np.empty(shape[::-1], dtype).T
    elif layout == "strided":
        out = np.empty(shape[:-1] + (2 * shape[-1],), dtype)[..., ::2]
    else:
        out = np.empty(shape, dtype)
    out[...] = values
    return out


def relative_error(actual, expected, magnitude=None):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = np.abs(expected).max(initial=0.0)
    if magnitude is not None:
        scale = max(scale, float(np.max(magnitude, initial=0.0)))
    difference = np.abs(actual - expected).max(initial=0.0)
    if scale == 0.0:
        return 0.0 if difference == 0.0 else np.inf
    return float(difference / scale)


def assert_same(op, what, fast, reference, magnitude=None, terms=1):
    """fast equals reference: same shape and dtype, normwise relative error (relative to ``magnitude``,
    the formula on absolute values, where that is larger) within ``tolerance(dtype, terms)``."""
    fast, reference = np.asarray(fast), np.asarray(reference)
    assert fast.shape == reference.shape, f"{op} {what}: shape {fast.shape} != reference {reference.shape}"
    assert fast.dtype == reference.dtype, f"{op} {what}: dtype {fast.dtype} != reference {reference.dtype}"
    assert np.isfinite(reference).all(), f"{op} {what}: the reference itself is not finite"
    error = relative_error(fast, reference, magnitude)
    bound = tolerance(reference.dtype, terms)
    key = (op, reference.dtype.name)
    worst_error, worst_fraction = WORST.get(key, (0.0, 0.0))
    WORST[key] = (max(worst_error, error), max(worst_fraction, error / bound))
    assert error <= bound, f"{op} {what}: fast differs from the reference by {error:.3g} (relative) > {bound:.3g}"


def report_worst():
    print("\nworst fast-vs-reference error: op, dtype, max |fast - ref| / max |ref|, that as a fraction of its bound")
    for (op, dtype), (error, fraction) in sorted(WORST.items()):
        print(f"  {op:24s} {dtype:8s} {error:.2e}  {fraction:.3f}")
