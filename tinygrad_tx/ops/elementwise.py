"""Elementwise ops. Binary ones broadcast; each gradient is summed back to its input's shape.

Derivations: docs/derivations/broadcasting.md (unbroadcast) and docs/derivations/elementwise.md.
Arguments that are not Tensors (Python numbers) arrive here as they are and get no gradient.
"""

import math

from ..backend import xp_of
from ..errors import DTypeError, ShapeError
from ..function import Function
from ..tensor import Tensor


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``.

    The one place broadcast gradients are reduced: y = f(broadcast(x)) means every copy of an
    element of x received its own gradient, and the chain rule adds them up.
    """
    if shape is None or tuple(grad.shape) == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    summed = grad.sum(axis=axes, keepdims=True) if axes else grad
    return summed.reshape(shape)


def owned(x):
    """A fresh C-ordered array of a view (``copy``, not ascontiguousarray: that turns 0-d into shape (1,));
    a Tensor as it is (its ops never share memory with a caller)."""
    return x if isinstance(x, Tensor) else x.copy()


def _shape(x):
    return getattr(x, "shape", None)


def _broadcast_error(op, a, b):
    return ShapeError(
        f"{op}: shapes {tuple(_shape(a) or ())} and {tuple(_shape(b) or ())} cannot be broadcast "
        "together (trailing dimensions must be equal or 1)"
    )


def require_float(op, *arrays):
    for array in arrays:
        if array is not None and hasattr(array, "dtype") and array.dtype.kind not in "fc":
            raise DTypeError(f"{op}: needs a float tensor, got dtype {array.dtype} (convert with .astype('float32'))")


class Add(Function):
    """d(a+b)/da = 1, d(a+b)/db = 1, each unbroadcast."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (_shape(a), _shape(b))
        try:
            return a + b
        except ValueError:
            raise _broadcast_error("add", a, b) from None

    @staticmethod
    def backward(ctx, grad):
        (sa, sb), need = ctx.shapes, ctx.needs_input_grad
        return (unbroadcast(grad, sa) if need[0] else None, unbroadcast(grad, sb) if need[1] else None)


class Sub(Function):
    """d(a-b)/da = 1, d(a-b)/db = -1, each unbroadcast."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (_shape(a), _shape(b))
        try:
            return a - b
        except ValueError:
            raise _broadcast_error("sub", a, b) from None

    @staticmethod
    def backward(ctx, grad):
        (sa, sb), need = ctx.shapes, ctx.needs_input_grad
        return (unbroadcast(grad, sa) if need[0] else None, unbroadcast(-grad, sb) if need[1] else None)


class Mul(Function):
    """d(ab)/da = b, d(ab)/db = a."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        try:
            return a * b
        except ValueError:
            raise _broadcast_error("mul", a, b) from None

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need = ctx.needs_input_grad
        return (
            unbroadcast(grad * b, _shape(a)) if need[0] else None,
            unbroadcast(grad * a, _shape(b)) if need[1] else None,
        )


class Div(Function):
    """d(a/b)/da = 1/b, d(a/b)/db = -a/b^2."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        try:
            return a / b
        except ValueError:
            raise _broadcast_error("div", a, b) from None

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need = ctx.needs_input_grad
        grad_a = grad / b
        return (
            unbroadcast(grad_a, _shape(a)) if need[0] else None,
            unbroadcast(-grad * (a / b / b), _shape(b)) if need[1] else None,  # PyTorch's order: same infs
        )


class Neg(Function):
    """d(-x)/dx = -1."""

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Pow(Function):
    """d(x^p)/dx = p x^(p-1) for a Python-number exponent p."""

    @staticmethod
    def forward(ctx, x, exponent):
        require_float("pow", x)
        ctx.save_for_backward(x)
        ctx.exponent = exponent
        if exponent == 2:
            return x * x  # x**2 goes through a slow generic power routine
        return _power(x, exponent)

    @staticmethod
    def backward(ctx, grad):
        (x,), p = ctx.saved_tensors, ctx.exponent
        if p == 2:
            return grad * (2 * x), None
        if p == 0:  # x^0 = 1 everywhere: zero, not 0 * x^-1 (NaN at x = 0), as PyTorch
            return grad * 0, None
        return grad * (p * _power(x, p - 1)), None  # PyTorch's order: the same overflows


def _power(x, p):
    """x ** p with PyTorch's square roots for p = +-0.5 (so (-0.0) ** -0.5 is -inf, as there)."""
    if p in (0.5, -0.5):
        root = xp_of(x).sqrt(x)
        return root if p == 0.5 else 1 / root
    return x**p


class RPow(Function):
    """b^t for a Python-number base b: d(b^t)/dt = b^t ln b (0 where b = 0 and t >= 0, as PyTorch).

    Computed as a power, not as e^(t ln b): a negative base with integer-valued t is finite.
    """

    @staticmethod
    def forward(ctx, t, base):
        out = xp_of(t).power(base, t)
        ctx.save_for_backward(t, out)
        ctx.base = base
        return out

    @staticmethod
    def backward(ctx, grad):
        (t, out), base = ctx.saved_tensors, ctx.base
        if base == 0:  # 0^t is 0 (t > 0), 1 (t = 0) or inf (t < 0)
            return grad * xp_of(t).where(t >= 0, 0.0, out * -math.inf), None
        return grad * out * (math.log(base) if base > 0 else math.nan), None


def integer_power(base, t):
    """base ** t for a Python integer base and an integer array t, as PyTorch: a negative t gives
    1 / base^|t| truncated to an integer (0 unless base is 1 or -1); no gradient."""
    xp = xp_of(t)
    out = xp.power(xp.asarray(base, t.dtype), xp.maximum(t, 0))
    if base in (1, -1):
        return xp.where(t < 0, xp.asarray(1, t.dtype) if base == 1 else 1 - 2 * (t % 2), out).astype(t.dtype)
    return xp.where(t < 0, 0, out).astype(t.dtype)


class Exp(Function):
    """d(e^x)/dx = e^x: the output is saved, not the input."""

    @staticmethod
    def forward(ctx, x):
        require_float("exp", x)
        out = xp_of(x).exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out


class Log(Function):
    """d(ln x)/dx = 1/x."""

    @staticmethod
    def forward(ctx, x):
        require_float("log", x)
        ctx.save_for_backward(x)
        return xp_of(x).log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x


class Sqrt(Function):
    """d(sqrt x)/dx = 1/(2 sqrt x)."""

    @staticmethod
    def forward(ctx, x):
        require_float("sqrt", x)
        out = xp_of(x).sqrt(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad / (2 * out)


class Tanh(Function):
    """d(tanh x)/dx = 1 - tanh(x)^2."""

    @staticmethod
    def forward(ctx, x):
        require_float("tanh", x)
        out = xp_of(x).tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * (1 - out * out)


class Relu(Function):
    """d(max(x, 0))/dx = 0 where x <= 0, else 1 (0 at x = 0; 1 at NaN, as PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        require_float("relu", x)
        out = xp_of(x).maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * ~(out <= 0)  # not out > 0: a NaN passes its gradient through, as in PyTorch


class Maximum(Function):
    """Elementwise max(a, b): the gradient goes to the larger input; on a tie each gets half (as PyTorch).

    Minimum (ops/unary.py) is this op with the comparison turned round (``ctx.function`` says which)."""

    @staticmethod
    def forward(ctx, a, b):
        name = ctx.function.__name__.lower()  # "maximum", or "minimum"
        xp = xp_of(a if hasattr(a, "shape") else b)
        try:
            out = getattr(xp, name)(a, b)
        except ValueError:
            raise _broadcast_error(name, a, b) from None
        ctx.save_for_backward(a, b)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need = ctx.needs_input_grad
        a_loses, b_loses = (a < b, a > b) if ctx.function is Maximum else (a > b, a < b)
        # cast to the gradient's dtype: no bool arithmetic, runs on Tensors too
        half_tie = 0.5 * (a == b).astype(grad.dtype)  # NaN makes all three 0: both get the whole gradient
        return (
            unbroadcast(grad * (1 - a_loses.astype(grad.dtype) - half_tie), _shape(a)) if need[0] else None,
            unbroadcast(grad * (1 - b_loses.astype(grad.dtype) - half_tie), _shape(b)) if need[1] else None,
        )


class Where(Function):
    """where(cond, a, b): the gradient goes to a where cond holds, to b elsewhere.

    ``cond`` must be boolean, as in PyTorch: an integer mask is refused rather than read as
    "nonzero is true", so no op ever takes ``~`` of an integer (bitwise not) for logical not.
    """

    @staticmethod
    def forward(ctx, condition, a, b, op="where"):
        xp = xp_of(condition)
        if condition.dtype.kind != "b":
            raise DTypeError(
                f"{op}: the {'condition' if op == 'where' else 'mask'} must be a boolean tensor, "
                f"got dtype {condition.dtype} "
                "(compare it first, e.g. mask != 0)"
            )
        ctx.save_for_backward(condition)
        ctx.shapes = (_shape(a), _shape(b))
        try:
            return xp.where(condition, a, b)
        except ValueError:
            raise ShapeError(
                f"{op}: condition {tuple(condition.shape)} and values {ctx.shapes[0] or ()}, "
                f"{ctx.shapes[1] or ()} cannot be broadcast together"
            ) from None

    @staticmethod
    def backward(ctx, grad):
        (condition,), (sa, sb), need = ctx.saved_tensors, ctx.shapes, ctx.needs_input_grad
        return (
            None,
            unbroadcast(grad * condition, sa) if need[1] else None,
            unbroadcast(grad * ~condition, sb) if need[2] else None,
        )


class Cast(Function):
    """Change dtype; the gradient is cast back to the input's dtype."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.astype(ctx.in_dtype), None
