"""The fused ops as their derivation pages' boxed formulas: one plain forward/backward pair per op.

This is the layer a learner reads and the pages in docs/derivations/ quote ("As implemented"). Each
function is plain array code on NumPy or CuPy (the module comes from the input): no ``out=`` chains,
no row blocks, no threads. The fast CPU versions (cpu/<op>.py) and the CUDA kernels
(cuda/<op>.py) compute the same values; tests/kernels/test_kernels.py holds them to these functions.
``tinygrad_tx.kernels.use("reference")`` makes the whole engine run on this file.

Shapes: ``axis`` is one non-negative axis; the row ops take (..., C) or (N, C) arrays; the saved
arrays (softmax's y, layer norm's xhat and rstd, GELU's gate, attention's probabilities) are what the
matching backward takes, in the same form for every implementation.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..ops.erf import erf_series

Array = Any  # a NumPy or CuPy array (each function takes its module from its inputs)

SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
TANH_CUBIC = 0.044715  # the cubic coefficient of GELU's tanh approximation (Hendrycks & Gimpel)


# ---------------------------------------------------------------- linear: one GEMM over rows
def linear_forward(rows: Array, weight: Array, bias: Array | None) -> Array:
    """y = x W^T + b for (N, in) rows x, (out, in) W and (out,) b.  docs/derivations/matmul.md"""
    out = rows @ weight.T
    if bias is not None:
        out += bias
    return out


def linear_backward(
    grad_rows: Array, rows: Array, weight: Array, needs: tuple[bool, bool, bool]
) -> tuple[Array | None, Array | None, Array | None]:
    """(dx, dW, db) = (g W, g^T x, sum over rows of g) for (N, out) g; each is None unless ``needs``
    (x, W, b) asks for it.  docs/derivations/matmul.md"""
    need_x, need_weight, need_bias = needs
    return (
        grad_rows @ weight if need_x else None,
        grad_rows.T @ rows if need_weight else None,
        grad_rows.sum(axis=0) if need_bias else None,
    )


# ---------------------------------------------------------------- softmax and log-softmax
def softmax_forward(x: Array, axis: int) -> Array:
    """y = exp(x - max x) / sum exp(x - max x) along ``axis``.  docs/derivations/softmax.md

    A row that is entirely -inf (a fully masked attention row) gives zeros, not NaN: its maximum is
    clamped to the most negative float, and its sum (0) to 1. Any other row sums to at least 1.
    """
    xp = backend.xp_of(x)
    row_max = xp.maximum(x.max(axis=axis, keepdims=True), xp.finfo(x.dtype).min)
    exps = xp.exp(x - row_max)
    return exps / xp.maximum(exps.sum(axis=axis, keepdims=True), 1.0)


def softmax_backward(y: Array, grad: Array, axis: int) -> Array:
    """dx = y * (g - sum(g * y, axis)).  docs/derivations/softmax.md"""
    return y * (grad - (grad * y).sum(axis=axis, keepdims=True))


def log_softmax_forward(x: Array, axis: int) -> Array:
    """y = x - max x - log sum exp(x - max x) along ``axis``.  docs/derivations/softmax.md"""
    xp = backend.xp_of(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def log_softmax_backward(y: Array, grad: Array, axis: int) -> Array:
    """dx = g - exp(y) * sum(g, axis).  docs/derivations/softmax.md"""
    return grad - backend.xp_of(y).exp(y) * grad.sum(axis=axis, keepdims=True)


# ---------------------------------------------------------------- cross-entropy over (N, C) logits
def cross_entropy_forward(logits: Array, targets: Array, counted: Array) -> tuple[Array, Array]:
    """(probs, row_loss): p_n = softmax(z_n), loss_n = logsumexp(z_n) - z_n[t_n], 0 where not counted.

    logits (N, C); targets (N,) class indices, valid in every row (ignored rows may hold any class);
    counted (N,) bool.  docs/derivations/cross_entropy.md
    """
    xp = backend.xp_of(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exps = xp.exp(shifted)
    total = exps.sum(axis=1)
    picked = xp.take_along_axis(shifted, targets[:, None], axis=1)[:, 0]
    row_loss = (xp.log(total) - picked) * counted
    return exps / total[:, None], row_loss


def cross_entropy_backward(probs: Array, targets: Array, row_weight: Array) -> Array:
    """dz_n = w_n (p_n - onehot(t_n)), w_n the row's weight (0 for an ignored row).
    docs/derivations/cross_entropy.md"""
    xp = backend.xp_of(probs)
    one_hot = (xp.arange(probs.shape[1]) == targets[:, None]).astype(probs.dtype)
    return row_weight[:, None] * (probs - one_hot)


# ---------------------------------------------------------------- layer norm over the last axis
def layer_norm_forward(x: Array, weight: Array | None, bias: Array | None, eps: float) -> tuple[Array, Array, Array]:
    """(y, xhat, rstd): xhat = (x - mean) rstd, rstd = 1 / sqrt(var + eps), y = xhat weight + bias.

    weight and bias may be None; rstd has shape (..., 1). Shifting each row by its first element
    first changes no result in exact arithmetic and keeps float32's mean accurate when every feature
    shares a large offset (1e4 + noise).  docs/derivations/layernorm.md
    """
    xp = backend.xp_of(x)
    shifted = x - x[..., :1]
    centered = shifted - shifted.mean(axis=-1, keepdims=True)
    rstd = 1.0 / xp.sqrt((centered * centered).mean(axis=-1, keepdims=True) + eps)
    xhat = centered * rstd
    y = xhat if weight is None else xhat * weight
    return (y if bias is None else y + bias), xhat, rstd


def layer_norm_backward(
    grad: Array, xhat: Array, rstd: Array, weight: Array | None
) -> tuple[Array, Array | None, Array]:
    """(dx, dweight, dbias): dx = rstd (d - mean(d) - xhat mean(d xhat)) with d = g weight;
    dweight = sum g xhat, dbias = sum g over every row (dweight is None without a weight).
    docs/derivations/layernorm.md"""
    d = grad if weight is None else grad * weight
    grad_x = rstd * (d - d.mean(axis=-1, keepdims=True) - xhat * (d * xhat).mean(axis=-1, keepdims=True))
    features = xhat.shape[-1]
    grad_weight = None if weight is None else (grad * xhat).reshape(-1, features).sum(axis=0)
    return grad_x, grad_weight, grad.reshape(-1, features).sum(axis=0)


# ---------------------------------------------------------------- GELU, exact and tanh forms
def erf(x: Array) -> Array:
    """The error function, elementwise: erf(x) = 2/sqrt(pi) e^(-x^2) sum_n 2^n x^(2n+1) / (2n+1)!!.

    On arrays, that series (ops/erf.py: erf_series; within ~2e-15 of erf, slow but plain). On a
    Tensor (a backward being recorded, create_graph=True), the primitive op Erf, whose derivative is
    2/sqrt(pi) e^(-x^2): a second derivative never goes through the hundred terms of the series.
    docs/derivations/gelu.md"""
    return erf_series(x) if isinstance(x, backend.ARRAY_TYPES) else backend.xp_of(x).erf(x)


def gelu_gate(x: Array, approximate: str) -> Array:
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2 ("none"), or t = tanh(sqrt(2/pi) (x + 0.044715 x^3)) ("tanh").
    docs/derivations/gelu.md"""
    if approximate == "none":
        return 0.5 * (1.0 + erf(x * SQRT_HALF))
    return backend.xp_of(x).tanh(SQRT_2_OVER_PI * (x + TANH_CUBIC * x * x * x))


def gelu_forward(x: Array, approximate: str) -> Array:
    """y = x Phi(x) ("none"), or y = x (1 + t) / 2 ("tanh"), the gate from gelu_gate.  docs/derivations/gelu.md

    Only x is kept for the backward, which recomputes the gate (as PyTorch does): one more erf there,
    one x-sized array less held between forward and backward.
    """
    gate = gelu_gate(x, approximate)
    return x * gate if approximate == "none" else 0.5 * x * (1.0 + gate)


def gelu_backward(x: Array, grad: Array, approximate: str) -> Array:
    """none: dx = g (Phi(x) + x phi(x));  tanh: dx = g (1 + t + x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2)) / 2.
    docs/derivations/gelu.md"""
    gate = gelu_gate(x, approximate)
    if approximate == "none":
        return grad * (gate + x * INV_SQRT_2PI * backend.xp_of(x).exp(-0.5 * x * x))
    return grad * 0.5 * (1.0 + gate + x * (1.0 - gate * gate) * SQRT_2_OVER_PI * (1.0 + 3.0 * TANH_CUBIC * x * x))


# ---------------------------------------------------------------- dropout
def dropout_mask(shape: tuple[int, ...], p: float, dtype: Any, device: str) -> Array:
    """mask = (u >= p) / (1 - p) with u uniform in [0, 1), drawn in float32 from backend.rng(device).
    docs/derivations/dropout.md"""
    draws = backend.rng(device).random(shape, dtype="float32")
    return (draws >= p).astype(dtype) * (1.0 / (1.0 - p))


def dropout_forward(x: Array, p: float) -> tuple[Array, Array]:
    """(y, mask): y = x * mask, each element kept with probability 1 - p.  docs/derivations/dropout.md"""
    mask = dropout_mask(x.shape, p, x.dtype, backend.device_of(x))
    return x * mask, mask


def dropout_backward(mask: Array, grad: Array) -> Array:
    """dx = g * mask, the forward's own mask.  docs/derivations/dropout.md"""
    return grad * mask


# ---------------------------------------------------------------- scaled dot-product attention
def attention_forward(
    q: Array, k: Array, v: Array, allowed: Array | None, dropout_p: float, scale: float
) -> tuple[Array, Array, Array]:
    """(out, P, Pd): out = Pd v, Pd = dropout(P), P = softmax(S), S = scale q k^T set to -inf where not allowed.

    q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv); allowed: boolean, broadcastable to (..., Tq, Tk),
    or None for all. Without dropout Pd is P itself.  docs/derivations/attention.md
    """
    xp = backend.xp_of(q)
    scores = (q * scale) @ xp.swapaxes(k, -1, -2)
    if allowed is not None:
        scores = xp.where(allowed, scores, -xp.inf)
    probs = softmax_forward(scores, -1)
    dropped = dropout_forward(probs, dropout_p)[0] if dropout_p > 0 else probs
    return dropped @ v, probs, dropped


def attention_backward(
    q: Array, k: Array, v: Array, probs: Array, dropped: Array, grad: Array, scale: float
) -> tuple[Array, Array, Array]:
    """(dq, dk, dv): dv = Pd^T g; dPd = g v^T; dS = Pd * dPd - P * rowsum(Pd * dPd); dq = scale dS k;
    dk = scale dS^T q.  docs/derivations/attention.md"""
    xp = backend.xp_of(q)
    grad_v = xp.swapaxes(dropped, -1, -2) @ grad
    grad_dropped = grad @ xp.swapaxes(v, -1, -2)
    kept = dropped * grad_dropped
    grad_scores = kept - probs * kept.sum(axis=-1, keepdims=True)
    return scale * (grad_scores @ k), scale * (xp.swapaxes(grad_scores, -1, -2) @ q), grad_v


# ---------------------------------------------------------------- embedding (the lookup's backward)
def embedding_backward(indices: Array, grad_rows: Array, num_rows: int) -> Array:
    """dweight[k] = sum of g[n] over every n with indices[n] == k; (N,) indices, (N, D) g -> (num_rows, D).
    docs/derivations/embedding.md"""
    grad_weight = backend.xp_of(grad_rows).zeros((num_rows, grad_rows.shape[1]), grad_rows.dtype)
    return backend.scatter_add(grad_weight, indices, grad_rows)  # repeated indices all add up


# ---------------------------------------------------------------- AdamW (updates its arrays in place)
def adamw_update(
    param: Array,
    grad: Array,
    exp_avg: Array,
    exp_avg_sq: Array,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: int,
) -> None:
    """torch.optim.AdamW's step t, in place: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    p = p (1 - lr wd) - lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps).  docs/derivations/adamw.md"""
    xp = backend.xp_of(param)
    exp_avg[...] = beta1 * exp_avg + (1 - beta1) * grad
    exp_avg_sq[...] = beta2 * exp_avg_sq + (1 - beta2) * grad * grad
    denominator = xp.sqrt(exp_avg_sq) / math.sqrt(1 - beta2**step) + eps
    param[...] = param * (1 - lr * weight_decay) - lr / (1 - beta1**step) * exp_avg / denominator
