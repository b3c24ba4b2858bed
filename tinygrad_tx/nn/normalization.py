"""Fused layer normalization over the last axis (biased variance, as PyTorch).

Derivation: docs/derivations/layernorm.md.
"""
import numbers

from .. import backend
from ..backend import xp_of
from ..errors import ShapeError, TinygradTxError
from ..function import Function
from ..ops import as_rows, require_float
from ..kernels import cuda as cuda_kernels
from .activations import row_dots


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
            raise ShapeError(f"layer_norm: {name} shape {tuple(param.shape)} does not match the normalized shape "
                             f"{features} of input shape {tuple(x.shape)}")


def _normalize_rows(x, xhat, rstd, out, weight, bias, eps):
    """xhat = (x - mean) rstd, out = xhat weight + bias for a block of (rows, features)."""
    xp = xp_of(x)
    # Shifting by the row's first element first is exact for nearby values and keeps the mean
    # accurate when all features share a large offset (float32 loses it to rounding otherwise).
    xp.subtract(x, x[:, :1], out=xhat)
    xhat -= xhat.mean(axis=-1, keepdims=True)
    variance = row_dots(xhat, xhat)
    variance *= 1.0 / x.shape[-1]
    variance += eps
    xp.sqrt(variance, out=variance)
    xp.divide(1.0, variance, out=rstd)
    xhat *= rstd
    if weight is not None:
        xp.multiply(xhat, weight, out=out)
    else:
        out[...] = xhat
    if bias is not None:
        out += bias


def _input_gradient_rows(grad, xhat, rstd, out, weight):
    """out = rstd (d - mean(d) - xhat mean(d xhat)), d = grad weight, for a block of (rows, features)."""
    xp = xp_of(xhat)
    dxhat = grad * weight if weight is not None else grad
    projection = row_dots(dxhat, xhat)
    projection *= 1.0 / xhat.shape[-1]
    xp.multiply(xhat, projection, out=out)
    xp.subtract(dxhat, out, out=out)
    out -= dxhat.mean(axis=-1, keepdims=True)
    out *= rstd


class LayerNorm(Function):
    """y = xhat * weight + bias, xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps); saves xhat and rstd."""

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, eps=1e-5):
        check_layer_norm_params(x, weight, bias)
        eps = check_eps("layer_norm", eps)
        ctx.empty = x.size == 0
        if ctx.empty:   # no rows or no features: nothing to normalize (and no 1/features)
            return x.copy()
        if cuda_kernels.fits_row_kernel(x, weight, bias):
            out, xhat, rstd = cuda_kernels.layer_norm(x, weight, bias, eps)
            ctx.save_for_backward(xhat, rstd, weight)
            return out
        xp = xp_of(x)
        rows = as_rows(x)
        xhat, out = xp.empty_like(rows), xp.empty_like(rows)
        rstd = xp.empty((rows.shape[0], 1), x.dtype)
        backend.in_row_blocks(lambda *blocks: _normalize_rows(*blocks, weight, bias, eps), rows, xhat, rstd, out)
        lead = x.shape[:-1] + (1,)
        ctx.save_for_backward(xhat.reshape(x.shape), rstd.reshape(lead), weight)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        """dx = rstd (d - mean(d) - xhat mean(d xhat)), d = g * weight; dweight = sum g xhat; dbias = sum g.
        docs/derivations/layernorm.md"""
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        if ctx.empty:
            features = (grad.shape[-1],)
            return grad.copy() if need_x else None, *(xp_of(grad).zeros(features, grad.dtype) if need else None
                                                      for need in (need_weight, need_bias))
        xhat, rstd, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if need_x and cuda_kernels.fits_row_kernel(grad, xhat, weight):
            grad_x = cuda_kernels.layer_norm_backward(grad, xhat, rstd, weight)
        elif need_x:
            grad_x = xp_of(xhat).empty_like(xhat)
            backend.in_row_blocks(lambda *blocks: _input_gradient_rows(*blocks, weight),
                                  as_rows(grad), as_rows(xhat),
                                  as_rows(rstd), as_rows(grad_x))
        if need_weight:
            grad_weight = as_rows(grad * xhat).sum(axis=0)
        if need_bias:
            grad_bias = as_rows(grad).sum(axis=0)
        return grad_x, grad_weight, grad_bias
