"""Unary elementwise ops beyond the primitives: abs, sign, sigmoid, sin, cos, square, rsqrt, clamp; the
binary minimum; and the NaN/Inf tests (boolean results, no gradient).

Derivation: docs/derivations/unary.md. Each backward is arithmetic on what the forward saved, so it
reads the same on arrays and on Tensors. The few calls that exist only as functions of the array
module (``xp.sin`` and friends) go through ``pointwise``, the one place that tells the two apart.
"""

import numbers

import numpy as np

from ..backend import DEFAULT_FLOAT, xp_of
from ..errors import DTypeError, TinygradTxError
from ..function import Function
from ..tensor import Tensor
from .elementwise import Maximum, require_float


def sigmoid_array(x):
    """1 / (1 + e^-x) without overflow: e^-|x| never exceeds 1, and the sign picks the branch."""
    xp = xp_of(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, xp.ones_like(e), e) / (1 + e)


_ARRAY_FUNCTIONS = {
    "exp": lambda x: xp_of(x).exp(x),
    "sin": lambda x: xp_of(x).sin(x),
    "cos": lambda x: xp_of(x).cos(x),
    "sigmoid": sigmoid_array,
}


def pointwise(name, x):
    """``exp``, ``sin``, ``cos`` or ``sigmoid`` of an array or a Tensor: the one array-only spot of the
    backwards here (an array needs its module's function, a Tensor has the method and records it)."""
    return getattr(x, name)() if isinstance(x, Tensor) else _ARRAY_FUNCTIONS[name](x)


def sign_array(x):
    """PyTorch's sign: -1, 0 or 1, and 0 for NaN (NumPy gives NaN); a boolean tensor is its own sign."""
    if x.dtype.kind == "b":
        return x.copy()
    xp = xp_of(x)
    out = xp.sign(x)
    return xp.where(xp.isnan(out), xp.zeros_like(out), out) if out.dtype.kind == "f" else xp.asarray(out)


class Abs(Function):
    """|x|; d|x|/dx = sign(x), which is 0 at x = 0 (as PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        if x.dtype.kind == "b":
            raise DTypeError("abs: not defined for a boolean tensor (convert with .astype('int64') first)")
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(sign_array(x))
        return xp_of(x).abs(x)

    @staticmethod
    def backward(ctx, grad):
        (sign,) = ctx.saved_tensors
        return grad * sign


class Sign(Function):
    """sign(x) in {-1, 0, 1}; its derivative is 0 everywhere (PyTorch's choice at the jump too)."""

    @staticmethod
    def forward(ctx, x):
        return sign_array(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * 0


class Sigmoid(Function):
    """y = 1 / (1 + e^-x); dy/dx = y (1 - y), from the saved output."""

    @staticmethod
    def forward(ctx, x):
        require_float("sigmoid", x)
        y = sigmoid_array(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y * (1 - y)


class Sin(Function):
    """d(sin x)/dx = cos x."""

    @staticmethod
    def forward(ctx, x):
        require_float("sin", x)
        ctx.save_for_backward(x)
        return xp_of(x).sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * pointwise("cos", x)


class Cos(Function):
    """d(cos x)/dx = -sin x."""

    @staticmethod
    def forward(ctx, x):
        require_float("cos", x)
        ctx.save_for_backward(x)
        return xp_of(x).cos(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return -grad * pointwise("sin", x)


class Square(Function):
    """x * x; d(x^2)/dx = 2x. Integers stay integers (a boolean tensor squares as int64, as PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        if x.dtype.kind == "b":
            x = x.astype(np.int64)
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * x


class Rsqrt(Function):
    """y = 1 / sqrt(x); dy/dx = -x^(-3/2) / 2 = -y^3 / 2, from the saved output."""

    @staticmethod
    def forward(ctx, x):
        require_float("rsqrt", x)
        y = 1 / xp_of(x).sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return -0.5 * grad * y * y * y


def _check_bound(name, value, dtype):
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DTypeError(
            f"clamp: {name} must be a Python number or None, got {type(value).__name__} "
            "(for tensor bounds use maximum/minimum)"
        )
    if dtype.kind in "iu" and isinstance(value, numbers.Integral):
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise DTypeError(f"clamp: {name}={value} does not fit dtype {dtype} ({info.min}..{info.max})")
    return value


class Clamp(Function):
    """min(max(x, lo), hi) (PyTorch's order, so lo > hi gives hi everywhere).

    The gradient is 1 where lo <= x <= hi, boundaries included, and 0 outside (PyTorch's choice);
    the mask is saved, and is a constant: its own derivative is 0.
    """

    @staticmethod
    def forward(ctx, x, min=None, max=None):  # PyTorch's keyword names
        if x.dtype.kind == "b":
            x = x.astype(np.int64)  # PyTorch: a boolean tensor clamps as int64 (float32 with a float bound)
        low, high = _check_bound("min", min, x.dtype), _check_bound("max", max, x.dtype)
        if low is None and high is None:
            raise TinygradTxError("clamp: at least one of min or max must be given")
        if x.dtype.kind in "iu" and any(isinstance(b, float) for b in (low, high)):
            x = x.astype(DEFAULT_FLOAT)  # a float bound makes an integer tensor float32, as in PyTorch
        xp = xp_of(x)
        out, inside = x, None
        if low is not None:
            out, inside = xp.maximum(out, low), x >= low
        if high is not None:
            out = xp.minimum(out, high)
            inside = x <= high if inside is None else inside & (x <= high)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(inside)
        return out

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside


class Minimum(Maximum):
    """Elementwise min(a, b): the gradient goes to the smaller input; on a tie each gets half (as Maximum
    and PyTorch). Maximum's forward and backward, with the comparison turned round."""


def float_test(name):
    """isnan / isinf / isfinite as a function of a Tensor: a boolean tensor, no gradient (any dtype)."""

    def test(tensor):
        if not isinstance(tensor, Tensor):
            raise DTypeError(f"{name}: expects a Tensor, got {type(tensor).__name__}")
        return Tensor._wrap(getattr(xp_of(tensor.data), name)(tensor.data))

    test.__name__ = name
    test.__doc__ = f"Elementwise {name} of a tensor of any dtype; a boolean tensor with no gradient."
    return test


isnan, isinf, isfinite = float_test("isnan"), float_test("isinf"), float_test("isfinite")
