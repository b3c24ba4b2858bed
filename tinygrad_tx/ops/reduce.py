"""Reductions with NumPy's ``axis`` (int, tuple or None) and ``keepdims``.

Derivation: docs/derivations/broadcasting.md (a reduction's backward is a broadcast, and back).
"""

from ..backend import xp_of
from ..errors import ShapeError
from ..function import Function
from .elementwise import owned, require_float


def normalize_axes(op, axis, ndim):
    """``axis`` -> a sorted tuple of non-negative axes; a clear error when one is out of range."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    normalized = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ShapeError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        normalized.append(a % ndim)
    if len(set(normalized)) != len(normalized):
        raise ShapeError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(normalized))


def _expand_back(grad, in_shape, axes, keepdims):
    """A reduced gradient -> the input's shape (re-insert the reduced axes, then broadcast)."""
    if not keepdims:
        grad = grad.reshape([1 if i in axes else n for i, n in enumerate(in_shape)])
    return owned(xp_of(grad).broadcast_to(grad, in_shape))


class Sum(Function):
    """d(sum x)/dx_i = 1: the output gradient is copied to every summed element."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes = normalize_axes("sum", axis, x.ndim)
        ctx.in_shape, ctx.keepdims = x.shape, keepdims
        integer = x.dtype.kind in "biu"  # PyTorch sums booleans and integers as int64
        return x.sum(axis=ctx.axes, keepdims=keepdims, dtype="int64" if integer else None)

    @staticmethod
    def backward(ctx, grad):
        return _expand_back(grad, ctx.in_shape, ctx.axes, ctx.keepdims)


class Mean(Function):
    """d(mean x)/dx_i = 1/n, n the number of elements averaged."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        require_float("mean", x)
        ctx.axes = normalize_axes("mean", axis, x.ndim)
        ctx.in_shape, ctx.keepdims = x.shape, keepdims
        ctx.count = 1
        for a in ctx.axes:
            ctx.count *= x.shape[a]
        return x.mean(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        # an empty axis (count 0) has no element to send a gradient to: divide by 1, not 0 (no NaN in a second pass)
        return _expand_back(grad / max(ctx.count, 1), ctx.in_shape, ctx.axes, ctx.keepdims)


class Max(Function):
    """d(max x)/dx_i = 1/m for each of the m elements equal to the maximum, 0 elsewhere.

    Ties split the gradient evenly, as PyTorch's ``amax`` and full ``max()`` do (a NaN maximum
    equals no element, so its gradient is NaN, as in PyTorch). Min is the same op with ``argmin``'s
    comparison, computed directly: -max(-x) wraps around for unsigned integers and INT_MIN.
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, op="max"):
        axes = normalize_axes(op, axis, x.ndim)
        if any(x.shape[a] == 0 for a in axes):
            raise ShapeError(f"{op}: cannot reduce over an empty axis (tensor shape {tuple(x.shape)}, axis {axis})")
        out = getattr(x, op)(axis=axes, keepdims=True)
        if x.dtype.kind == "f":  # the share of the gradient each element gets (integers get none)
            hits = x == out
            ctx.share = hits / hits.sum(axis=axes, keepdims=True, dtype=x.dtype)
        ctx.in_shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        return out if keepdims else out.reshape([n for i, n in enumerate(x.shape) if i not in axes])

    @staticmethod
    def backward(ctx, grad):
        return _expand_back(grad, ctx.in_shape, ctx.axes, ctx.keepdims) * ctx.share


class Min(Max):
    """d(min x)/dx_i = 1/m for each of the m elements equal to the minimum (see Max)."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        return Max.forward(ctx, x, axis, keepdims, op="min")
