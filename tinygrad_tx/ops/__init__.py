"""The primitive ops, and the Tensor methods and operators that call them.

tensor.py knows no op; this module attaches ``+ - * / ** @``, indexing and the methods to Tensor,
so that the graph machinery and the ops stay in separate files.
"""

import numbers

import numpy as np

from ..backend import ARRAY_TYPES, as_array, xp_of
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from . import tensor_module
from .elementwise import (
    Add,
    Cast,
    Div,
    Exp,
    Log,
    Maximum,
    Mul,
    Neg,
    Pow,
    Relu,
    RPow,
    Sqrt,
    Sub,
    Tanh,
    Where,
    integer_power,
    require_float,
    unbroadcast,
)
from .erf import Erf
from .extra import attach_methods
from .matmul import MatMul, as_rows
from .movement import Concatenate, Expand, GetItem, Permute, Reshape, Split, Stack
from .promotion import promote
from .reduce import Max, Mean, Min, Sum, normalize_axes
from .unary import Minimum, isfinite, isinf, isnan

__all__ = [
    "as_rows",
    "concatenate",
    "stack",
    "split",
    "where",
    "maximum",
    "minimum",
    "isnan",
    "isinf",
    "isfinite",
    "unbroadcast",
    "normalize_axes",
    "require_float",
]


def _operand(value):
    """Python and NumPy scalars pass through as Python numbers (NumPy scalars would upcast float32)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, numbers.Number):
        return value
    # an array keeps its dtype (a float64 operand is not rounded to float32 first); lists get Tensor's default
    return Tensor(value, dtype=value.dtype if isinstance(value, ARRAY_TYPES) else None)


def _binary(function, a, b):
    """Both operands promoted as PyTorch does (ops/promotion.py), then the op."""
    return function.apply(*promote(function.__name__.lower(), _operand(a), _operand(b)))


def _shape_arg(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


# ---------------------------------------------------------------- operators
Tensor.__add__ = lambda self, other: _binary(Add, self, other)
Tensor.__radd__ = lambda self, other: _binary(Add, other, self)
Tensor.__sub__ = lambda self, other: _binary(Sub, self, other)
Tensor.__rsub__ = lambda self, other: _binary(Sub, other, self)
Tensor.__mul__ = lambda self, other: _binary(Mul, self, other)
Tensor.__rmul__ = lambda self, other: _binary(Mul, other, self)
Tensor.__truediv__ = lambda self, other: _binary(Div, self, other)
Tensor.__rtruediv__ = lambda self, other: _binary(Div, other, self)
Tensor.__neg__ = lambda self: Neg.apply(*promote("neg", self))
Tensor.__matmul__ = lambda self, other: _binary(MatMul, self, other)
Tensor.__rmatmul__ = lambda self, other: _binary(MatMul, other, self)


def _pow(self, exponent):
    if isinstance(exponent, Tensor):
        raise DTypeError(
            "pow: the exponent must be a Python number, not a tensor (use (b * a.log()).exp() for a "
            "tensor exponent b and a positive base a)"
        )
    return Pow.apply(self, _operand(exponent))


def _rpow(self, base):
    """base ** t for a Python-number base: a power (finite for a negative base and integer-valued t)."""
    base, t = promote("pow", _operand(base), self)
    if isinstance(base, Tensor):
        return _pow(base, t)
    if t.dtype.kind in "biu":
        return Tensor._wrap(integer_power(base, t.data))
    return RPow.apply(t, base)


Tensor.__pow__ = _pow
Tensor.__rpow__ = _rpow


def _compare(ufunc_name):
    def compare(self, other):
        a, b = promote(ufunc_name, self, _operand(other))
        try:
            return Tensor._wrap(getattr(xp_of(self.data), ufunc_name)(a.data, b.data if isinstance(b, Tensor) else b))
        except ValueError:
            raise ShapeError(
                f"{ufunc_name}: shapes {self.shape} and {tuple(getattr(other, 'shape', ()))} cannot be "
                "broadcast together (trailing dimensions must be equal or 1)"
            ) from None

    compare.__doc__ = f"Elementwise {ufunc_name}; a boolean tensor with no gradient."
    return compare


for _name, _ufunc in [
    ("__lt__", "less"),
    ("__le__", "less_equal"),
    ("__gt__", "greater"),
    ("__ge__", "greater_equal"),
    ("__eq__", "equal"),
    ("__ne__", "not_equal"),
]:
    setattr(Tensor, _name, _compare(_ufunc))
Tensor.__hash__ = object.__hash__


def _invert(self):
    """Elementwise logical not of a boolean tensor (bitwise not of an integer one); no gradient."""
    if self.dtype.kind not in "biu":
        raise DTypeError(f"invert: only boolean and integer tensors can be inverted (~), got dtype {self.dtype}")
    return Tensor._wrap(xp_of(self.data).invert(self.data))


def _argmax(self, axis=None, keepdims=False):
    """Index of the largest value (the first one on ties) along ``axis``, as an int64 tensor; no gradient."""
    if self.dtype.kind == "b":
        raise DTypeError("argmax: a boolean tensor has no argmax (as in PyTorch; convert with .astype('int64'))")
    axis = None if axis is None else normalize_axes("argmax", axis, self.ndim)[0]
    if (self.shape[axis] if axis is not None else self.size) == 0:
        raise ShapeError(f"argmax: an empty axis has no largest value (shape {self.shape}, axis {axis})")
    index = xp_of(self.data).argmax(self.data, axis=axis, keepdims=keepdims)
    return Tensor._wrap(xp_of(self.data).asarray(index, dtype=np.int64))


Tensor.__invert__ = _invert
Tensor.argmax = _argmax


def _getitem(self, index):
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return GetItem.apply(self, index)


Tensor.__getitem__ = _getitem


# ---------------------------------------------------------------- methods
def _sum(self, axis=None, keepdims=False):
    return Sum.apply(self, axis=axis, keepdims=keepdims)


def _mean(self, axis=None, keepdims=False):
    return Mean.apply(self, axis=axis, keepdims=keepdims)


def _max(self, axis=None, keepdims=False):
    return Max.apply(self, axis=axis, keepdims=keepdims)


def _min(self, axis=None, keepdims=False):
    return Min.apply(self, axis=axis, keepdims=keepdims)


def _reshape(self, *shape):
    return Reshape.apply(self, _shape_arg(shape))


def _permute(self, *axes):
    return Permute.apply(self, _shape_arg(axes))


def _transpose(self, axis0=None, axis1=None):
    """``t.transpose()`` reverses the axes (like ``.T``); ``t.transpose(a, b)`` swaps two (PyTorch style);
    ``t.transpose((2, 0, 1))`` permutes them all (NumPy style, as ``permute``)."""
    if isinstance(axis0, (tuple, list)) and axis1 is None:
        return Permute.apply(self, tuple(axis0))
    if axis0 is None and axis1 is None:
        return Permute.apply(self, tuple(reversed(range(self.ndim))))
    axis0, axis1 = (normalize_axes("transpose", a, self.ndim)[0] for a in (axis0, axis1))
    axes = list(range(self.ndim))
    axes[axis0], axes[axis1] = axes[axis1], axes[axis0]
    return Permute.apply(self, tuple(axes))


def _expand(self, *shape):
    return Expand.apply(self, _shape_arg(shape))


def _unsqueeze(self, axis):
    (axis,) = normalize_axes("unsqueeze", axis, self.ndim + 1)
    return Reshape.apply(self, self.shape[:axis] + (1,) + self.shape[axis:])


def _squeeze(self, axis=None):
    if axis is None:
        axes = [i for i, n in enumerate(self.shape) if n == 1]
    else:
        axes = normalize_axes("squeeze", axis, self.ndim)
    for a in axes:
        if self.shape[a] != 1:
            raise ShapeError(f"squeeze: axis {a} has size {self.shape[a]}; only size-1 axes can be removed")
    return Reshape.apply(self, tuple(n for i, n in enumerate(self.shape) if i not in axes))


def _split(self, split_size_or_sections, axis=0, dim=None):
    (axis,) = normalize_axes("split", axis if dim is None else dim, self.ndim)
    return Split.apply(self, split_size_or_sections, axis)


def _mask_array(mask, device):
    """A mask or condition as a raw array on ``device``; Where refuses it unless it is boolean."""
    return mask.data if isinstance(mask, Tensor) else as_array(mask, device)


def _masked_fill(self, mask, value):
    """Elements where the boolean ``mask`` holds become ``value``; they get no gradient."""
    return Where.apply(_mask_array(mask, self.device), _operand(value), self, op="masked_fill")


def _astype(self, dtype):
    return self if self.dtype == dtype else Cast.apply(self, dtype)


for _name, _method in [
    ("sum", _sum),
    ("mean", _mean),
    ("max", _max),
    ("min", _min),
    ("reshape", _reshape),
    ("view", _reshape),
    ("permute", _permute),
    ("transpose", _transpose),
    ("expand", _expand),
    ("broadcast_to", _expand),
    ("unsqueeze", _unsqueeze),
    ("squeeze", _squeeze),
    ("split", _split),
    ("masked_fill", _masked_fill),
    ("astype", _astype),
]:
    setattr(Tensor, _name, _method)
Tensor.T = property(lambda self: self.transpose())
Tensor.exp = lambda self: Exp.apply(self)
Tensor.log = lambda self: Log.apply(self)
Tensor.sqrt = lambda self: Sqrt.apply(self)
Tensor.erf = lambda self: Erf.apply(self)
Tensor.array_module = property(lambda self: tensor_module.for_device(self.device))
Tensor.tanh = lambda self: Tanh.apply(self)
Tensor.relu = lambda self: Relu.apply(self)
Tensor.maximum = lambda self, other: _binary(Maximum, self, other)
Tensor.float = lambda self: self.astype("float32")
Tensor.double = lambda self: self.astype("float64")


# ---------------------------------------------------------------- functions over several tensors
def concatenate(tensors, axis=0):
    """Join tensors along an existing axis."""
    tensors = [_operand(t) for t in tensors]
    if not tensors:
        raise ShapeError("concatenate: needs at least one tensor")
    (axis,) = normalize_axes("concatenate", axis, tensors[0].ndim)
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    """Join same-shape tensors along a new axis."""
    tensors = [_operand(t) for t in tensors]
    if not tensors:
        raise ShapeError("stack: needs at least one tensor")
    (axis,) = normalize_axes("stack", axis, tensors[0].ndim + 1)
    return Stack.apply(*tensors, axis=axis)


def split(tensor, split_size_or_sections, axis=0):
    """Pieces of ``tensor`` along ``axis``: an int is each piece's size, a list gives every size."""
    return tensor.split(split_size_or_sections, axis=axis)


def where(condition, a, b):
    """``a`` where the boolean ``condition`` holds, else ``b``; gradients flow to a and b accordingly.

    A non-boolean condition raises DTypeError (as PyTorch does) instead of being read as nonzero.
    """
    a, b = _operand(a), _operand(b)
    device = next((t.device for t in (a, b) if isinstance(t, Tensor)), "cpu")
    return Where.apply(_mask_array(condition, device), a, b)


def maximum(a, b):
    return _binary(Maximum, a, b)


def minimum(a, b):
    return _binary(Minimum, a, b)


# abs, sign, sigmoid, sin, cos, square, rsqrt, clamp/clip, minimum, var, std, logsumexp, cumsum, argmin,
# any, all, tril, triu, gather, isnan, isinf, isfinite: tinygrad_tx/ops/extra.py
attach_methods(Tensor, _binary)
