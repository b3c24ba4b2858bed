"""SiLU and softplus: smooth activations written as primitive-style Functions (no fused kernel).

Derivation: docs/derivations/unary.md (sections on silu and softplus). Each saves only x and
recomputes the sigmoid in backward, through ``ops.unary.pointwise`` so that the same line runs on
arrays and, under create_graph, on Tensors.
"""

import numbers

from ..backend import xp_of
from ..errors import TinygradTxError
from ..function import Function
from ..ops import require_float
from ..ops.unary import pointwise, sigmoid_array


class Silu(Function):
    """silu(x) = x sigmoid(x); d/dx = s (1 + x (1 - s)) with s = sigmoid(x)."""

    @staticmethod
    def forward(ctx, x):
        require_float("silu", x)
        ctx.save_for_backward(x)
        return x * sigmoid_array(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = pointwise("sigmoid", x)
        return grad * s * (1 + x * (1 - s))


def _check_number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TinygradTxError(f"softplus: {name} must be a number, got {value!r}")
    return float(value)


class Softplus(Function):
    """softplus(x) = log(1 + e^(beta x)) / beta, and x itself where beta x > threshold (PyTorch's rule);
    d/dx = sigmoid(beta x), and 1 above the threshold."""

    @staticmethod
    def forward(ctx, x, beta=1.0, threshold=20.0):
        require_float("softplus", x)
        ctx.beta, ctx.threshold = _check_number("beta", beta), _check_number("threshold", threshold)
        xp = xp_of(x)
        scaled = x * ctx.beta
        ctx.save_for_backward(x)
        # exp of at most the threshold: the branch that is thrown away never overflows
        smooth = xp.log1p(xp.exp(xp.minimum(scaled, ctx.threshold))) / ctx.beta
        return xp.where(scaled > ctx.threshold, x, smooth)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        scaled = x * ctx.beta
        s = pointwise("sigmoid", scaled)
        return grad * (s + (scaled > ctx.threshold) * (1 - s))
