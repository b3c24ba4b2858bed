"""Reductions beyond sum/mean/max: var, std, logsumexp, cumsum; and the ones with no gradient, argmin,
any and all. Axes follow reduce.py (NumPy's ``axis``: an int, a tuple, or None for every axis).

Derivation: docs/derivations/statistics.md. The backwards are arithmetic on saved values plus
reshape, slicing, ``mean`` and ``cumsum``, which arrays and Tensors both have; logsumexp's ``exp`` goes
through ``unary.pointwise``.
"""

import math
import numbers

import numpy as np

from ..backend import xp_of
from ..errors import DTypeError, ShapeError, TinygradTxError
from ..function import Function
from ..tensor import Tensor
from .elementwise import require_float
from .reduce import normalize_axes
from .unary import pointwise


def _kept_shape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def correction_of(op, correction, unbiased):
    """PyTorch's two spellings: ``correction`` (a number, default 1) or the older ``unbiased`` flag."""
    if correction is not None and unbiased is not None:
        raise TinygradTxError(f"{op}: give correction or unbiased, not both (got {correction!r} and {unbiased!r})")
    if unbiased is not None:
        if not isinstance(unbiased, (bool, np.bool_)):
            raise TinygradTxError(f"{op}: unbiased must be True or False, got {unbiased!r}")
        return int(unbiased)
    if correction is None:
        return 1
    if isinstance(correction, bool) or not isinstance(correction, numbers.Real) or correction < 0:
        raise TinygradTxError(f"{op}: correction must be a non-negative number, got {correction!r}")
    return correction


class Var(Function):
    """sum((x - mean)^2) / (n - correction) over ``axis``; d var/dx_i = 2 (x_i - mean) / (n - correction).

    Bessel-corrected (correction = 1) by default, as PyTorch. n - correction <= 0 gives inf or NaN
    forward and NaN or a negative scale backward, exactly as PyTorch.
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, correction=1, op="var"):
        require_float(op, x)
        ctx.axes = normalize_axes(op, axis, x.ndim)
        ctx.kept, ctx.keepdims = _kept_shape(x.shape, ctx.axes), keepdims
        n = math.prod(x.shape[a] for a in ctx.axes)
        ctx.scale = 2.0 / (n - correction) if n != correction else math.inf
        divisor = max(n - correction, 0)
        centered = x - x.mean(axis=ctx.axes, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):  # n - correction <= 0: inf or NaN, as PyTorch
            out = xp_of(x).asarray((centered * centered).sum(axis=ctx.axes, keepdims=keepdims) / float(divisor))
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad.reshape(ctx.kept) * ctx.scale * (x - x.mean(axis=ctx.axes, keepdims=True))


class Std(Function):
    """sqrt(var); d std = d var / (2 std), and 0 where std = 0 (a constant slice), as PyTorch."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, correction=1):
        variance = Var.forward(ctx, x, axis, keepdims, correction, op="std")
        out = xp_of(x).sqrt(variance)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        out = out.reshape(ctx.kept)
        grad_var = grad.reshape(ctx.kept) * (out != 0) / (2 * (out + (out == 0)))
        return grad_var * ctx.scale * (x - x.mean(axis=ctx.axes, keepdims=True))


class LogSumExp(Function):
    """y = m + log(sum(exp(x - m))) with m the maximum (0 where it is infinite); dy/dx_i = exp(x_i - y).

    An empty reduction gives -inf, a row of -inf gives -inf (and NaN gradients, as PyTorch).
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        require_float("logsumexp", x)
        xp = xp_of(x)
        ctx.axes = normalize_axes("logsumexp", axis, x.ndim)
        ctx.kept = _kept_shape(x.shape, ctx.axes)
        if any(x.shape[a] == 0 for a in ctx.axes):
            out = xp.full(ctx.kept, -np.inf, dtype=x.dtype)
        else:
            m = xp.asarray(x.max(axis=ctx.axes, keepdims=True))
            m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
            out = xp.log(xp.exp(x - m).sum(axis=ctx.axes, keepdims=True)) + m
        if not keepdims:
            out = out.reshape([n for i, n in enumerate(x.shape) if i not in ctx.axes])
        ctx.save_for_backward(x, out)  # the very array returned: create_graph hands it back as this op's output
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        return grad.reshape(ctx.kept) * pointwise("exp", x - out.reshape(ctx.kept))


class CumSum(Function):
    """y_i = sum_{j <= i} x_j along ``axis``; x_j's gradient is the reversed cumulative sum of the
    output gradient, sum_{i >= j} g_i. Integer and boolean inputs sum as int64, as PyTorch."""

    @staticmethod
    def forward(ctx, x, axis):
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ShapeError(f"cumsum: axis must be one int, got {axis!r}")
        (ctx.axis,) = normalize_axes("cumsum", axis, x.ndim)
        return x.cumsum(axis=ctx.axis, dtype=np.int64 if x.dtype.kind in "biu" else x.dtype)

    @staticmethod
    def backward(ctx, grad):
        reverse = (slice(None),) * ctx.axis + (slice(None, None, -1),)
        return grad[reverse].cumsum(axis=ctx.axis)[reverse], None


# ---------------------------------------------------------------- no gradient: Tensor methods
def argmin(self, axis=None, keepdims=False):
    """Index of the smallest value (the first one on ties) along ``axis``, as an int64 tensor; no gradient."""
    axis = None if axis is None else normalize_axes("argmin", axis, self.ndim)[0]
    if (self.shape[axis] if axis is not None else self.size) == 0:
        raise ShapeError(f"argmin: an empty axis has no smallest value (shape {self.shape}, axis {axis})")
    index = xp_of(self.data).argmin(self.data, axis=axis, keepdims=keepdims)
    return Tensor._wrap(xp_of(self.data).asarray(index, dtype=np.int64))


def _logical_reduction(name):
    def reduce(self, axis=None, keepdims=False):
        axes = normalize_axes(name, axis, self.ndim)
        xp = xp_of(self.data)
        if self.dtype.kind not in "biuf":
            raise DTypeError(f"{name}: needs a numeric or boolean tensor, got dtype {self.dtype}")
        out = xp.asarray(getattr(xp, name)(self.data, axis=axes, keepdims=keepdims))
        # PyTorch keeps uint8 for uint8 input (its old byte-mask convention); bool for everything else
        return Tensor._wrap(out.astype(np.uint8) if self.dtype == np.uint8 else out)

    reduce.__name__ = name
    reduce.__doc__ = f"Logical {name} over ``axis`` (nonzero is true): a boolean tensor with no gradient."
    return reduce


any_ = _logical_reduction("any")
all_ = _logical_reduction("all")
