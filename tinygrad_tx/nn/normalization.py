"""Fused layer normalization over the last axis (biased variance, as PyTorch).

Derivation: docs/derivations/layernorm.md.
"""
from ..errors import ShapeError, TinygradTxError
from ..function import Function
from ..kernels import pick
from ..ops import require_float


def check_layer_norm_params(x, weight, bias):
    require_float("layer_norm", x, weight, bias)
    if x.ndim == 0:
        raise ShapeError("layer_norm: input must have at least one axis to normalize, got a 0-d tensor")
    features = (x.shape[-1],)
    for name, param in (("weight", weight), ("bias", bias)):
        if param is not None and tuple(param.shape) != features:
            raise ShapeError(f"layer_norm: {name} shape {tuple(param.shape)} does not match the normalized shape "
                             f"{features} of input shape {tuple(x.shape)}")


class LayerNorm(Function):
    """y = xhat * weight + bias, xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps); saves xhat and rstd."""

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, eps=1e-5):
        check_layer_norm_params(x, weight, bias)
        if not eps >= 0:
            raise TinygradTxError(f"layer_norm: eps must be >= 0, got {eps!r}")
        out, xhat, rstd = pick("layer_norm_forward", x)(x, weight, bias, eps)
        ctx.save_for_backward(xhat, rstd, weight)
        return out

    @staticmethod
    def backward(ctx, grad):
        """dx = rstd (d - mean(d) - xhat mean(d xhat)), d = g * weight; dweight = sum g xhat; dbias = sum g.
        docs/derivations/layernorm.md"""
        xhat, rstd, weight = ctx.saved_tensors
        grads = pick("layer_norm_backward", xhat)(grad, xhat, rstd, weight)
        return tuple(g if needed else None for g, needed in zip(grads, ctx.needs_input_grad))
