"""Fused scaled dot-product attention over (..., T, D) heads: one op, one hand-derived backward.

Derivation: docs/derivations/attention.md. Shapes: q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv),
output (..., Tq, Dv); the leading axes (batch, heads) are the same for all three and are handled
by batched matmuls, never a Python loop.
"""

import math

import numpy as np

from ..backend import xp_of
from ..errors import DTypeError, ShapeError
from ..function import Function
from ..kernels import pick, reference
from ..ops import require_float
from ..tensor import Tensor
from .activations import check_dropout_probability


def check_attention_inputs(q, k, v, attn_mask, dropout_p):
    """Shapes, dtypes and the dropout probability; returns the key count Tk."""
    require_float("scaled_dot_product_attention", q, k, v)
    check_dropout_probability("scaled_dot_product_attention", dropout_p)
    if (
        q.ndim < 2
        or k.ndim != q.ndim
        or v.ndim != q.ndim
        or q.shape[:-2] != k.shape[:-2]
        or k.shape[:-2] != v.shape[:-2]
        or q.shape[-1] != k.shape[-1]
        or k.shape[-2] != v.shape[-2]
    ):
        raise ShapeError(
            f"scaled_dot_product_attention: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} "
            "do not fit: expected (..., Tq, D), (..., Tk, D), (..., Tk, Dv) with the same leading axes"
        )
    scores_shape = q.shape[:-1] + (k.shape[-2],)
    if attn_mask is not None:
        if attn_mask.dtype.kind != "b":
            raise DTypeError(
                f"scaled_dot_product_attention: attn_mask must be boolean (True = may attend), "
                f"got dtype {attn_mask.dtype}"
            )
        try:
            fits = np.broadcast_shapes(attn_mask.shape, scores_shape) == scores_shape
        except ValueError:
            fits = False
        if not fits:
            raise ShapeError(
                f"scaled_dot_product_attention: attn_mask shape {tuple(attn_mask.shape)} does not "
                f"broadcast to the scores shape {scores_shape}"
            )
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
    """1/sqrt(D) as a Python float: a NumPy float64 scalar would upcast float32 scores to float64.

    With D = 0 every score is an empty sum, 0, whatever the scale: 1.0 then (PyTorch's result, the
    softmax of zeros)."""
    if scale is not None:
        return float(scale)
    return 1.0 / math.sqrt(head_dim) if head_dim else 1.0


class ScaledDotProductAttention(Function):
    """out = Pd v, Pd = dropout(P), P = softmax(scale q k^T, masked), masked scores set to -inf.

    A query row whose keys are all masked gets P = 0, so its output and its gradients are 0, not NaN.
    Saves q, k, v, P and Pd (the same array as P without dropout).

    Reference: kernels/reference.py: attention_forward, attention_backward
    Derivation: docs/derivations/attention.md
    Test: tests/nn/test_functional.py::test_attention_causal_and_full
    """

    @staticmethod
    def forward(ctx, q, k, v, causal=True, dropout_p=0.0, scale=None, attn_mask=None):
        keys = check_attention_inputs(q, k, v, attn_mask, dropout_p)
        ctx.scale = default_scale(q.shape[-1], scale)
        xp = xp_of(q)
        ctx.dropout_p = dropout_p
        if q.shape[-2] == 0 or keys == 0:  # no scores: a query without keys outputs 0, as in PyTorch
            probs = xp.zeros(q.shape[:-1] + (keys,), q.dtype)
            ctx.save_for_backward(q, k, v, probs, probs)
            return xp.zeros(q.shape[:-1] + v.shape[-1:], q.dtype)
        allowed = allowed_keys(xp, q.shape[-2], keys, causal, attn_mask)
        out, probs, dropped = pick(reference.attention_forward, q)(q, k, v, allowed, dropout_p, ctx.scale)
        ctx.save_for_backward(q, k, v, probs, dropped)
        ctx.allowed = allowed
        return out

    @staticmethod
    def backward(ctx, grad):
        """dv = Pd^T g; dPd = g v^T; dS = Pd * dPd - P * rowsum(Pd * dPd); dq = scale dS k; dk = scale dS^T q.
        docs/derivations/attention.md"""
        q, k, v, probs, dropped = ctx.saved_tensors
        if probs.size == 0:  # no scores (T = 0 or no keys): nothing to recompute, the formula on empty shapes
            return reference.attention_backward(q, k, v, probs, dropped, grad, ctx.scale)
        if isinstance(grad, Tensor):  # recorded (create_graph): P recomputed from q and k, the same dropout mask
            mask = None
            if ctx.dropout_p > 0:
                kept = probs.data > 0
                mask = xp_of(kept).where(kept, dropped.data / xp_of(kept).where(kept, probs.data, 1), 0)
            probs = reference.attention_forward(q, k, v, ctx.allowed, 0.0, ctx.scale)[1]
            dropped = probs if mask is None else probs * mask
        return pick(reference.attention_backward, q)(q, k, v, probs, dropped, grad, ctx.scale)
