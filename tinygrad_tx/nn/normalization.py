"""Fused layer normalization over the last axis (biased variance, as PyTorch).

Derivation: docs/derivations/layernorm.md.
"""
from ..backend import xp_of
from ..errors import ShapeError, TinygradTxError
from ..function import Function
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
        xp = xp_of(x)
        # Shifting by the row's first element first is exact for nearby values and keeps the mean
        # accurate when all features share a large offset (float32 loses it to rounding otherwise).
        xhat = x - x[..., :1]
        xhat -= xhat.mean(axis=-1, keepdims=True)
        variance = (xhat * xhat).mean(axis=-1, keepdims=True)
        rstd = 1.0 / xp.sqrt(variance + eps)
        xhat *= rstd
        ctx.save_for_backward(xhat, rstd, weight)
        out = xhat * weight if weight is not None else xhat.copy()
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def backward(ctx, grad):
        """dx = rstd (d - mean(d) - xhat mean(d xhat)), d = g * weight; dweight = sum g xhat; dbias = sum g.
        docs/derivations/layernorm.md"""
        xhat, rstd, weight = ctx.saved_tensors
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        features = xhat.shape[-1]
        grad_x = grad_weight = grad_bias = None
        if need_x:
            dxhat = grad * weight if weight is not None else grad
            grad_x = dxhat * xhat
            projection = grad_x.mean(axis=-1, keepdims=True)
            xp_of(xhat).multiply(xhat, projection, out=grad_x)
            xp_of(xhat).subtract(dxhat, grad_x, out=grad_x)
            grad_x -= dxhat.mean(axis=-1, keepdims=True)
            grad_x *= rstd
        if need_weight:
            grad_weight = (grad * xhat).reshape(-1, features).sum(axis=0)
        if need_bias:
            grad_bias = grad.reshape(-1, features).sum(axis=0)
        return grad_x, grad_weight, grad_bias
