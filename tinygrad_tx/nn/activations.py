"""Fused activations: softmax, log_softmax, gelu, dropout.

Each op is one Function with a hand-derived backward (pages in docs/derivations/). The Function
checks its arguments and keeps what the backward needs; the arithmetic is a kernel that
``tinygrad_tx.kernels.pick`` chooses: the reference formula, the fast CPU code or a CUDA kernel.
"""

import numbers

from ..errors import TinygradTxError
from ..function import Function
from ..kernels import pick, reference
from ..ops import normalize_axes, require_float
from ..tensor import Tensor


def single_axis(op, axis, ndim):
    if not isinstance(axis, numbers.Integral):
        raise TinygradTxError(f"{op}: axis must be one int, got {axis!r}")
    return normalize_axes(op, axis, ndim)[0]


def check_dropout_probability(op, p):
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
        raise TinygradTxError(f"{op}: dropout probability must be a number in [0, 1), got {p!r}")


class Softmax(Function):
    """y = exp(x - max x) / sum exp(x - max x) along ``axis``; saves y. An all -inf row gives zeros.

    Reference: kernels/reference.py: softmax_forward, softmax_backward
    Derivation: docs/derivations/softmax.md
    Test: tests/nn/test_functional.py::test_softmax_and_log_softmax
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        require_float("softmax", x)
        ctx.axis = single_axis("softmax", axis, x.ndim)
        y = pick(reference.softmax_forward, x)(x, ctx.axis) if x.size else x.copy()  # an empty axis has no maximum
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        """dx = y * (g - sum(g * y, axis)).  docs/derivations/softmax.md"""
        (y,) = ctx.saved_tensors
        return pick(reference.softmax_backward, y)(y, grad, ctx.axis)


class LogSoftmax(Function):
    """y = x - max x - log sum exp(x - max x) along ``axis``; saves y.

    Reference: kernels/reference.py: log_softmax_forward, log_softmax_backward
    Derivation: docs/derivations/softmax.md
    Test: tests/nn/test_functional.py::test_softmax_and_log_softmax
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        require_float("log_softmax", x)
        ctx.axis = single_axis("log_softmax", axis, x.ndim)
        y = pick(reference.log_softmax_forward, x)(x, ctx.axis) if x.size else x.copy()  # an empty axis has no maximum
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        """dx = g - exp(y) * sum(g, axis).  docs/derivations/softmax.md"""
        (y,) = ctx.saved_tensors
        return pick(reference.log_softmax_backward, y)(y, grad, ctx.axis)


class Gelu(Function):
    """gelu(x) = x Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2, or PyTorch's tanh approximation; saves x
    only: the backward recomputes Phi(x) (or the tanh), as PyTorch does, instead of holding a second x-sized array.

    Reference: kernels/reference.py: gelu_forward, gelu_backward
    Derivation: docs/derivations/gelu.md
    Test: tests/nn/test_functional.py::test_gelu
    """

    @staticmethod
    def forward(ctx, x, approximate="none"):
        require_float("gelu", x)
        if approximate not in ("none", "tanh"):
            raise TinygradTxError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        ctx.approximate, ctx.in_shape = approximate, x.shape
        # a 0-d input runs as shape (1,): NumPy arithmetic on 0-d arrays returns scalars, which out= refuses
        if x.ndim == 0:
            x = x.reshape((1,))
        out = pick(reference.gelu_forward, x)(x, approximate)
        ctx.save_for_backward(x)
        return out.reshape(ctx.in_shape)

    @staticmethod
    def backward(ctx, grad):
        """none: dx = g (Phi(x) + x phi(x));  tanh: dx = g (1+t)/2 + g x (1-t^2) sqrt(2/pi) (1 + 3 0.044715 x^2) / 2.
        docs/derivations/gelu.md"""
        (x,) = ctx.saved_tensors
        if isinstance(grad, Tensor) and ctx.inputs[0] is not None:  # recorded: the input itself, not a saved copy
            x = ctx.inputs[0].reshape(x.shape)
        grad = grad.reshape(x.shape)
        return pick(reference.gelu_backward, x)(x, grad, ctx.approximate).reshape(ctx.in_shape)


class DropoutFunction(Function):
    """Inverted dropout: y = x * mask, mask in {0, 1/(1-p)} drawn from backend.rng; saves the mask.

    Reference: kernels/reference.py: dropout_forward, dropout_backward
    Derivation: docs/derivations/dropout.md
    Test: tests/nn/test_functional.py::test_dropout_mask_statistics_and_backward_uses_the_same_mask
    """

    @staticmethod
    def forward(ctx, x, p):
        require_float("dropout", x)
        out, mask = pick(reference.dropout_forward, x)(x, p)
        ctx.save_for_backward(mask)
        return out

    @staticmethod
    def backward(ctx, grad):
        """dx = g * mask (the forward's own mask).  docs/derivations/dropout.md"""
        (mask,) = ctx.saved_tensors
        return pick(reference.dropout_backward, mask)(mask, grad), None
