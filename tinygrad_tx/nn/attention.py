"""Fused scaled dot-product attention over (..., T, D) heads: one op, one hand-derived backward.

Derivation: docs/derivations/attention.md. Shapes: q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv),
output (..., Tq, Dv); the leading axes (batch, heads) are the same for all three and are handled
by batched matmuls, never a Python loop.
"""
import math

import numpy as np

from .. import backend
from ..backend import xp_of
from ..errors import DTypeError, ShapeError
from ..function import Function
from ..ops import require_float
from .activations import check_dropout_probability, dropout_mask, row_dots, softmax_into


def check_attention_inputs(q, k, v, attn_mask, dropout_p):
    """Shapes, dtypes and the dropout probability; returns the key count Tk."""
    require_float("scaled_dot_product_attention", q, k, v)
    check_dropout_probability("scaled_dot_product_attention", dropout_p)
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim or q.shape[:-2] != k.shape[:-2] \
            or k.shape[:-2] != v.shape[:-2] or q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} "
                         "do not fit: expected (..., Tq, D), (..., Tk, D), (..., Tk, Dv) with the same leading axes")
    scores_shape = q.shape[:-1] + (k.shape[-2],)
    if attn_mask is not None:
        if attn_mask.dtype.kind != "b":
            raise DTypeError(f"scaled_dot_product_attention: attn_mask must be boolean (True = may attend), "
                             f"got dtype {attn_mask.dtype}")
        try:
            fits = np.broadcast_shapes(attn_mask.shape, scores_shape) == scores_shape
        except ValueError:
            fits = False
        if not fits:
            raise ShapeError(f"scaled_dot_product_attention: attn_mask shape {tuple(attn_mask.shape)} does not "
                             f"broadcast to the scores shape {scores_shape}")
    return k.shape[-2]


def allowed_keys(xp, queries, keys, causal, attn_mask):
    """Boolean mask broadcastable to (..., Tq, Tk), True where query i may attend to key j; None = all.

    The causal part is aligned bottom-right: query i sees keys j <= i + Tk - Tq, so the last query
    sees every key (what a key/value cache needs when Tq < Tk; the usual lower triangle when Tq == Tk).
    """
    allowed = xp.tri(queries, keys, k=keys - queries, dtype=bool) if causal else None
    if attn_mask is None:
        return allowed
    return attn_mask if allowed is None else allowed & attn_mask


def default_scale(head_dim, scale):
    """1/sqrt(D) as a Python float: a NumPy float64 scalar would upcast float32 scores to float64."""
    return 1.0 / math.sqrt(head_dim) if scale is None else float(scale)


def _scores_gradient_into(grad_scores, probs, dropped, dropout):
    """grad_scores holds dPd on entry and dS = Pd * dPd - P * rowsum(Pd * dPd) on return."""
    row_dot = row_dots(grad_scores, dropped)
    if dropout:
        grad_scores *= dropped
        grad_scores -= probs * row_dot
    else:                                           # Pd = P: dS = P * (dP - rowsum), no temporary
        grad_scores -= row_dot
        grad_scores *= probs


def _over_batch(function, *arrays):
    """function(*blocks) over blocks of the leading (batch) axis on every core; whole when there is none."""
    if arrays[0].ndim > 2:
        backend.in_row_blocks(function, *arrays)
    else:
        function(*arrays)


def _backward_block(q, k, v, probs, dropped, grad, grad_q, grad_k, grad_v, dropout, scale):
    """The attention backward for one block of the batch, written into grad_q, grad_k, grad_v."""
    xp = xp_of(q)
    xp.matmul(xp.swapaxes(dropped, -1, -2), grad, out=grad_v)
    grad_scores = grad @ xp.swapaxes(v, -1, -2)
    _scores_gradient_into(grad_scores, probs, dropped, dropout)
    xp.matmul(grad_scores, k, out=grad_q)
    grad_q *= scale
    xp.matmul(xp.swapaxes(grad_scores, -1, -2), q, out=grad_k)
    grad_k *= scale


class ScaledDotProductAttention(Function):
    """out = Pd v, Pd = dropout(P), P = softmax(scale q k^T, masked), masked scores set to -inf.

    A query row whose keys are all masked gets P = 0, so its output and its gradients are 0, not NaN.
    Saves q, k, v, P and Pd (the same array as P without dropout).
    """

    @staticmethod
    def forward(ctx, q, k, v, causal=True, dropout_p=0.0, scale=None, attn_mask=None):
        keys = check_attention_inputs(q, k, v, attn_mask, dropout_p)
        xp = xp_of(q)
        scale = default_scale(q.shape[-1], scale)
        dtype = xp.result_type(q, k, v)
        scores = xp.empty(q.shape[:-1] + (keys,), dtype)
        _over_batch(lambda q_block, k_block, out:                  # scaling q: cheaper than Tq x Tk scores
                    xp.matmul(q_block * scale, xp.swapaxes(k_block, -1, -2), out=out), q, k, scores)
        allowed = allowed_keys(xp, q.shape[-2], keys, causal, attn_mask)
        if allowed is not None:
            xp.copyto(scores, -xp.inf, where=~allowed)
        probs = softmax_into(scores, -1, out=scores)
        dropped = probs
        if dropout_p > 0:
            dropped = dropout_mask(probs.shape, dropout_p, probs.dtype, backend.device_of(q))
            dropped *= probs                            # the mask's buffer becomes Pd
        ctx.save_for_backward(q, k, v, probs, dropped)
        ctx.scale = scale
        out = xp.empty(q.shape[:-1] + v.shape[-1:], dtype)
        _over_batch(lambda p_block, v_block, o_block: xp.matmul(p_block, v_block, out=o_block), dropped, v, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        """dv = Pd^T g; dPd = g v^T; dS = Pd * dPd - P * rowsum(Pd * dPd); dq = scale dS k; dk = scale dS^T q.
        docs/derivations/attention.md"""
        q, k, v, probs, dropped = ctx.saved_tensors
        xp = xp_of(q)
        grad_q, grad_k, grad_v = (xp.empty(a.shape, probs.dtype) for a in (q, k, v))
        dropout, scale = dropped is not probs, ctx.scale
        _over_batch(lambda *blocks: _backward_block(*blocks, dropout, scale),
                    q, k, v, probs, dropped, grad, grad_q, grad_k, grad_v)
        return grad_q, grad_k, grad_v
