"""Fused layer normalization over the last axis (biased variance, as PyTorch).

Derivation: docs/derivations/layernorm.md.
"""

import numbers

from ..backend import xp_of
from ..errors import ShapeError, TinygradTxError
from ..function import Function
from ..kernels import pick, reference
from ..ops import require_float
from ..ops.elementwise import owned
from ..tensor import Tensor


def check_eps(op, eps):
    """One rule for F.layer_norm (both impls) and nn.LayerNorm: a real eps >= 0 (0 is PyTorch's limit too)."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
        raise TinygradTxError(f"{op}: eps must be a number >= 0, got {eps!r}")
    return float(eps)


def check_layer_norm_params(x, weight, bias):
    require_float("layer_norm", x, weight, bias)
    if x.ndim == 0:
        raise ShapeError("layer_norm: input must have at least one axis to normalize, got a 0-d tensor")
    features = (x.shape[-1],)
    for name, param in (("weight", weight), ("bias", bias)):
        if param is not None and tuple(param.shape) != features:
            raise ShapeError(
                f"layer_norm: {name} shape {tuple(param.shape)} does not match the normalized shape "
                f"{features} of input shape {tuple(x.shape)}"
            )


class LayerNormFunction(Function):
    """y = xhat * weight + bias, xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps); saves xhat and rstd.

    Reference: kernels/reference.py: layer_norm_forward, layer_norm_backward
    Derivation: docs/derivations/layernorm.md
    Test: tests/nn/test_functional.py::test_layer_norm
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, eps=1e-5):
        check_layer_norm_params(x, weight, bias)
        eps = check_eps("layer_norm", eps)
        ctx.empty = x.size == 0
        if ctx.empty:  # no rows or no features: nothing to normalize (and no 1/features)
            return x.copy()
        out, xhat, rstd = pick(reference.layer_norm_forward, x)(x, weight, bias, eps)
        ctx.save_for_backward(xhat, rstd, weight)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx, grad):
        """dx = rstd (d - mean(d) - xhat mean(d xhat)), d = g * weight; dweight = sum g xhat; dbias = sum g.
        docs/derivations/layernorm.md"""
        need = ctx.needs_input_grad[:3]
        if ctx.empty:
            features = (grad.shape[-1],)
            zeros = [xp_of(grad).zeros(features, grad.dtype) if needed else None for needed in need[1:]]
            return (owned(grad) if need[0] else None, *zeros)
        xhat, rstd, weight = ctx.saved_tensors
        if isinstance(grad, Tensor) and ctx.inputs[0] is not None:
            # recorded (create_graph): xhat and rstd recomputed from the input, so that they are differentiated too
            _, xhat, rstd = reference.layer_norm_forward(ctx.inputs[0], None, None, ctx.eps)
        grads = pick(reference.layer_norm_backward, xhat)(grad, xhat, rstd, weight)
        return tuple(g if needed else None for g, needed in zip(grads, need))
