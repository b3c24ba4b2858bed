"""Scaled dot-product attention, fast on the CPU (reference.attention_forward / attention_backward,
docs/derivations/attention.md).

float32 NumPy arrays in layouts sgemm can read take the per-head compiled loops of attention_heads.py
(one loop per block of the batch: every head's products and its softmax while the scores are in
cache). Everything else runs here as NumPy matmuls over blocks of the batch on every core, with the
masked softmax and the scores gradient as compiled row loops where the dtype allows.
"""

from __future__ import annotations

import numpy as np

from ... import backend
from ...backend import xp_of
from ..reference import Array
from ..runtime import row_blocks
from . import attention_heads, common
from .common import row_dots, same_float_dtype
from .dropout import dropout_mask
from .softmax import softmax_into


def _over_batch(function, *arrays):
    """function(*blocks) over blocks of the leading (batch) axis on every core; whole when there is none."""
    if arrays[0].ndim > 2:
        row_blocks.in_row_blocks(function, *arrays, min_elements=common.NUMPY_MIN_ELEMENTS)
    else:
        function(*arrays)


def _masked_softmax_into(scores: Array, allowed: Array | None) -> Array:
    """softmax(where(allowed, scores, -inf)) in place: one compiled pass for float32 and a mask that
    is the same for every batch entry (causal, or a (Tq, Tk) mask), NumPy otherwise."""
    xp = xp_of(scores)
    per_query = allowed is None or all(n == 1 for n in allowed.shape[:-2])
    if scores.dtype != xp.float32 or not per_query or scores.ndim < 2:
        if allowed is not None:
            xp.copyto(scores, -xp.inf, where=~allowed)
        return softmax_into(scores, -1, out=scores)
    allowed = attention_heads.query_key_mask(allowed, scores.shape)
    softmax = attention_heads.masked_softmax_float32
    row_blocks.in_row_blocks(lambda block: softmax(block, allowed), scores.reshape((-1,) + scores.shape[-2:]))
    return scores


def attention_forward(
    q: Array, k: Array, v: Array, allowed: Array | None, dropout_p: float, scale: float
) -> tuple[Array, Array, Array]:
    xp = xp_of(q)
    dtype = xp.result_type(q, k, v)
    sgemm = attention_heads.sgemm_for_heads(allowed, q, k, v)
    if sgemm is not None:
        return attention_heads.forward(sgemm, q, k, v, allowed, dropout_p, scale)
    scores = xp.empty(q.shape[:-1] + k.shape[-2:-1], dtype)
    _over_batch(
        lambda q_block, k_block, out: (  # scaling q: cheaper than Tq x Tk scores
            xp.matmul(q_block * scale, xp.swapaxes(k_block, -1, -2), out=out)
        ),
        q,
        k,
        scores,
    )
    probs = _masked_softmax_into(scores, allowed)
    dropped = probs
    if dropout_p > 0:
        dropped = dropout_mask(probs.shape, dropout_p, probs.dtype, backend.device_of(q))
        dropped *= probs  # the mask's buffer becomes Pd
    out = xp.empty(q.shape[:-1] + v.shape[-1:], dtype)
    _over_batch(lambda p_block, v_block, o_block: xp.matmul(p_block, v_block, out=o_block), dropped, v, out)
    return out, probs, dropped


def _scores_gradient_into(grad_scores, probs, dropped, dropout):
    """grad_scores holds dPd on entry and dS = Pd * dPd - P * rowsum(Pd * dPd) on return."""
    arrays = (grad_scores, probs, dropped)
    if same_float_dtype(*arrays) and all(a.flags.c_contiguous for a in arrays):  # one compiled pass
        rows = [a.reshape(-1, a.shape[-1]) for a in arrays]
        attention_heads.attention_scores_gradient(rows[0], rows[1], rows[2] if dropout else None)
        return
    row_dot = row_dots(grad_scores, dropped)
    if dropout:
        grad_scores *= dropped
        grad_scores -= probs * row_dot
    else:  # Pd = P: dS = P * (dP - rowsum), no temporary
        grad_scores -= row_dot
        grad_scores *= probs


def _backward_block(q, k, v, probs, dropped, grad, grad_q, grad_k, grad_v, *, dropout, scale):
    """The attention backward for one block of the batch, written into grad_q, grad_k, grad_v."""
    xp = xp_of(q)
    xp.matmul(xp.swapaxes(dropped, -1, -2), grad, out=grad_v)
    grad_scores = grad @ xp.swapaxes(v, -1, -2)
    _scores_gradient_into(grad_scores, probs, dropped, dropout)
    xp.matmul(grad_scores, k, out=grad_q)
    grad_q *= scale
    xp.matmul(xp.swapaxes(grad_scores, -1, -2), q, out=grad_k)
    grad_k *= scale


def attention_backward(
    q: Array, k: Array, v: Array, probs: Array, dropped: Array, grad: Array, scale: float
) -> tuple[Array, Array, Array]:
    xp = xp_of(q)
    dropout = dropped is not probs
    sgemm = attention_heads.sgemm_for_heads(None, q, k, v, grad)
    if sgemm is not None and probs.flags.c_contiguous and dropped.flags.c_contiguous and probs.dtype == np.float32:
        return attention_heads.backward(sgemm, q, k, v, probs, dropped if dropout else None, grad, scale)
    grad_q, grad_k, grad_v = (xp.empty(a.shape, probs.dtype) for a in (q, k, v))
    _over_batch(
        lambda *blocks: _backward_block(*blocks, dropout=dropout, scale=scale),
        q,
        k,
        v,
        probs,
        dropped,
        grad,
        grad_q,
        grad_k,
        grad_v,
    )
    return grad_q, grad_k, grad_v
