"""Reductions with NumPy's ``axis`` (int, tuple or None) and ``keepdims``.

Derivation: docs/derivations/broadcasting.md (a reduction's backward is a broadcast, and back).
"""

import math

from ..backend import xp_of
from ..errors import ShapeError
from ..function import Function
from .elementwise import owned


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
        return x.sum(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        return _expand_back(grad, ctx.in_shape, ctx.axes, ctx.keepdims)


class Mean(Function):
    """d(mean x)/dx_i = 1/n, n the number of elements averaged."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
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
    """d(max x)/dx_i = 1 for the arg-max element, 0 elsewhere.

    Ties: the whole gradient goes to the first maximal element in C order over the reduced axes
    (NumPy's ``argmax``), so results are deterministic. PyTorch's full ``max()`` splits it evenly
    among ties instead; the two agree whenever the maximum is unique.
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        axes = normalize_axes("max", axis, x.ndim)
        if any(x.shape[a] == 0 for a in axes):
            raise ShapeError(f"max: cannot reduce over an empty axis (tensor shape {tuple(x.shape)}, axis {axis})")
        kept = [i for i in range(x.ndim) if i not in axes]
        reduced = math.prod(x.shape[a] for a in axes)  # not -1: ambiguous when another axis is empty
        moved = x.transpose(kept + list(axes)).reshape([x.shape[i] for i in kept] + [reduced])
        ctx.argmax = moved.argmax(axis=-1)
        ctx.moved_shape, ctx.order, ctx.in_shape = moved.shape, kept + list(axes), x.shape
        return x.max(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        one_hot = xp_of(ctx.argmax).arange(ctx.moved_shape[-1]) == ctx.argmax[..., None]
        flat_grad = grad.reshape(ctx.argmax.shape)[..., None] * one_hot
        moved_axes_shape = [ctx.in_shape[i] for i in ctx.order]
        inverse = [ctx.order.index(i) for i in range(len(ctx.order))]
        return owned(xp_of(grad).transpose(flat_grad.reshape(moved_axes_shape), inverse))
