"""Composed twins of the fused ops, built only from the engine's Tensor primitives.

They compute the same values and gradients as the fused Functions (the tests hold them to it) and
let the autograd engine derive the backward: the reference the hand-derived backwards are checked
against, and a way to see how many primitive ops a fused op replaces. Same argument checks and
messages as the fused ops (shared helpers), same documented choices (all-ignored loss 0, fully
masked attention rows 0).
"""

from .. import backend
from ..kernels.reference import dropout_mask
from ..ops import require_float, where
from ..tensor import Tensor
from .activations import single_axis
from .attention import allowed_keys, check_attention_inputs, default_scale
from .losses import check_targets
from .normalization import check_eps, check_layer_norm_params


def _row_max(x, axis):
    """The detached row maximum, clamped so an all -inf row shifts by a finite amount (no -inf - -inf)."""
    xp = backend.xp_of(x.data)
    if x.size == 0:  # an empty axis has no maximum; any shift does
        return Tensor._wrap(xp.zeros(x.shape[:axis] + (1,) + x.shape[axis + 1 :], x.dtype))
    row_max = x.data.max(axis=axis, keepdims=True)
    return Tensor._wrap(xp.maximum(row_max, xp.finfo(x.dtype).min))


def softmax(x, axis=-1):
    require_float("softmax", x.data)
    axis = single_axis("softmax", axis, x.ndim)
    exps = (x - _row_max(x, axis)).exp()  # softmax is shift invariant, so the constant shift needs no gradient
    total = exps.sum(axis=axis, keepdims=True)
    return exps / where(total.data == 0, 1.0, total)  # an all -inf row sums to 0: probabilities 0, not nan


def log_softmax(x, axis=-1):
    require_float("log_softmax", x.data)
    axis = single_axis("log_softmax", axis, x.ndim)
    shifted = x - _row_max(x, axis)
    return shifted - shifted.exp().sum(axis=axis, keepdims=True).log()


def cross_entropy(logits, targets, ignore_index=-1, reduction="mean"):
    xp = backend.xp_of(logits.data)
    counted = check_targets(logits.data, targets.data, ignore_index, reduction).reshape(-1)
    log_probs = log_softmax(logits.reshape(counted.shape[0], logits.shape[-1]), axis=-1)
    safe_targets = xp.where(counted, targets.data.reshape(-1), 0)
    picked = log_probs[xp.arange(counted.shape[0]), safe_targets]
    row_loss = -picked * Tensor._wrap(counted.astype(logits.dtype))
    if reduction == "none":
        return row_loss.reshape(targets.shape)
    if reduction == "sum":
        return row_loss.sum()
    return row_loss.sum() / max(float(counted.sum()), 1.0)


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    check_layer_norm_params(x.data, None if weight is None else weight.data, None if bias is None else bias.data)
    eps = check_eps("layer_norm", eps)
    shifted = x - x[..., :1].detach()  # exact for nearby values; the shift cancels in x - mean(x)
    centered = shifted - shifted.mean(axis=-1, keepdims=True)
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    out = centered / (variance + eps).sqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def scaled_dot_product_attention(q, k, v, causal=True, dropout_p=0.0, scale=None, attn_mask=None):
    keys = check_attention_inputs(q.data, k.data, v.data, attn_mask, dropout_p)
    scale = default_scale(q.shape[-1], scale)
    scores = (q * scale) @ k.transpose(-2, -1)
    allowed = allowed_keys(backend.xp_of(q.data), q.shape[-2], keys, causal, attn_mask)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    probs = softmax(scores, axis=-1)
    if dropout_p > 0:
        probs = probs * Tensor._wrap(dropout_mask(probs.shape, dropout_p, probs.dtype, q.device))
    return probs @ v
