"""Movement ops: they rearrange elements without computing new values, so each backward moves the
gradient back to where its element came from. Derivation: docs/derivations/movement.md.
"""

import numpy as np

from ..backend import scatter_add, xp_of
from ..errors import IndexOutOfRangeError, ShapeError
from ..function import Function
from ..tensor import Tensor
from .elementwise import unbroadcast


class Reshape(Function):
    """Same elements, new shape; the gradient takes the old shape back."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ShapeError(
                f"reshape: cannot reshape {tuple(x.shape)} ({x.size} elements) into {tuple(shape)}"
            ) from None

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.in_shape), None


class Permute(Function):
    """Axes reordered by ``axes``; the gradient goes through the inverse permutation."""

    @staticmethod
    def forward(ctx, x, axes):
        in_range = all(-x.ndim <= a < x.ndim for a in axes)  # checked before % folds 5 into range
        axes = tuple(a % x.ndim for a in axes) if x.ndim and in_range else tuple(axes)
        if not in_range or sorted(axes) != list(range(x.ndim)):
            raise ShapeError(f"permute: {axes} is not a permutation of the {x.ndim} axes of shape {tuple(x.shape)}")
        ctx.inverse = tuple(axes.index(i) for i in range(len(axes)))
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, grad):
        return xp_of(grad).transpose(grad, ctx.inverse), None


class Expand(Function):
    """Broadcast to a bigger shape (a view); the gradient is summed back (unbroadcast)."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        lead = len(shape) - x.ndim  # -1 keeps an existing axis's size, as in PyTorch
        shape = tuple(x.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(shape))
        try:
            return xp_of(x).broadcast_to(x, shape)
        except ValueError:
            raise ShapeError(f"expand: cannot broadcast shape {tuple(x.shape)} to {tuple(shape)}") from None

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(grad, ctx.in_shape), None


def _is_integer_array(item):
    return (
        hasattr(item, "dtype")
        and item.dtype.kind in "iu"
        or (isinstance(item, (list, tuple)) and any(not isinstance(v, bool) for v in item))
    )


class GetItem(Function):
    """``x[index]``: basic and advanced NumPy indexing.

    The gradient is zero except where elements were read. Integer-array indices may read one element
    several times, so their gradients are scatter-added (every read contributes); ints, slices,
    None, Ellipsis and boolean masks read each element at most once, so plain assignment suffices.
    """

    @staticmethod
    def forward(ctx, x, index):
        ctx.in_shape, ctx.index = x.shape, index
        items = index if isinstance(index, tuple) else (index,)
        ctx.advanced = any(_is_integer_array(item) for item in items)
        try:
            return x[index]
        except IndexError as exc:
            raise IndexOutOfRangeError(f"getitem: {exc} (tensor shape {tuple(x.shape)})") from None

    @staticmethod
    def backward(ctx, grad):
        if isinstance(grad, Tensor):  # recorded (create_graph): the same scatter, as an op of its own
            return ScatterAdd.apply(grad, ctx.index, ctx.in_shape, ctx.advanced), None
        return ScatterAdd.forward(ctx, grad, ctx.index, ctx.in_shape, ctx.advanced), None


class ScatterAdd(Function):
    """GetItem's backward as an op: zeros of ``shape`` with ``values`` added at ``index`` (repeated integer
    indices add up when ``advanced``; other indices read each element once, so plain assignment suffices).

    Its own backward reads the gradient at ``index``: a GetItem. So indexing is differentiable to any order.
    """

    @staticmethod
    def forward(ctx, values, index, shape, advanced):
        ctx.index = index
        out = xp_of(values).zeros(shape, values.dtype)
        if advanced:
            scatter_add(out, index, values)
        else:
            out[index] = values
        return out

    @staticmethod
    def backward(ctx, grad):
        return GetItem.apply(grad, ctx.index) if isinstance(grad, Tensor) else grad[ctx.index], None, None, None


class Concatenate(Function):
    """Join along ``axis``; the gradient is cut back into the pieces."""

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        xp = xp_of(arrays[0])
        try:
            out = xp.concatenate(arrays, axis=axis)
        except ValueError:
            shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
            raise ShapeError(f"concatenate: shapes {shapes} differ outside axis {axis}") from None
        ctx.axis = axis
        ctx.boundaries = []
        total = 0
        for a in arrays[:-1]:
            total += a.shape[axis]
            ctx.boundaries.append(total)
        return out

    @staticmethod
    def backward(ctx, grad):
        return tuple(xp_of(grad).split(grad, ctx.boundaries, axis=ctx.axis))


class Stack(Function):
    """Join along a new ``axis``; piece i's gradient is the slice i of that axis."""

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        ctx.axis = axis
        try:
            return xp_of(arrays[0]).stack(arrays, axis=axis)
        except ValueError:
            shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
            raise ShapeError(f"stack: all shapes must be equal, got {shapes}") from None

    @staticmethod
    def backward(ctx, grad):
        xp = xp_of(grad)
        return tuple(xp.take(grad, i, axis=ctx.axis) for i in range(grad.shape[ctx.axis]))


class Split(Function):
    """Cut along ``axis`` into pieces of the given sizes (PyTorch's ``split``); several outputs.

    The backward concatenates the pieces' gradients (zeros for pieces that were not used).
    """

    @staticmethod
    def forward(ctx, x, split_size_or_sections, axis=0):
        length = x.shape[axis]
        if isinstance(split_size_or_sections, int):
            if split_size_or_sections < 1:
                raise ShapeError(f"split: split size must be positive, got {split_size_or_sections}")
            sizes = [min(split_size_or_sections, length - start) for start in range(0, length, split_size_or_sections)]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != length:
                raise ShapeError(f"split: sizes {sizes} add up to {sum(sizes)}, but axis {axis} has length {length}")
        ctx.axis = axis
        boundaries, total = [], 0
        for size in sizes[:-1]:
            total += size
            boundaries.append(total)
        return tuple(xp_of(x).split(x, boundaries, axis=axis))

    @staticmethod
    def backward(ctx, *grads):
        joined = _adjacent_views_joined(grads, ctx.axis)
        return joined if joined is not None else xp_of(grads[0]).concatenate(grads, axis=ctx.axis), None, None


def _adjacent_views_joined(pieces, axis):
    """concatenate(pieces, axis) as a view, when the pieces already lie side by side in one NumPy array
    (attention's q, k, v gradients, written into one buffer shaped like the projection they were cut
    from: kernels/cpu/attention_heads.py); None otherwise."""
    first = pieces[0]
    base = first.base if isinstance(first, np.ndarray) else None
    if not isinstance(base, np.ndarray) or not base.flags.c_contiguous:
        return None
    step = first.strides[axis]
    address = first.__array_interface__["data"][0]
    others = first.shape[:axis] + first.shape[axis + 1 :]
    for piece in pieces:
        same_frame = piece.base is base and piece.strides == first.strides and piece.dtype == first.dtype
        if not same_frame or piece.shape[:axis] + piece.shape[axis + 1 :] != others:
            return None
        if piece.shape[axis] == 0 or piece.__array_interface__["data"][0] != address:
            return None
        address += step * piece.shape[axis]
    shape = first.shape[:axis] + (sum(piece.shape[axis] for piece in pieces),) + first.shape[axis + 1 :]
    offset = first.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    return np.ndarray(shape, first.dtype, buffer=base, offset=offset, strides=first.strides)
