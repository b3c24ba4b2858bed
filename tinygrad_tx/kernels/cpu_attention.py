"""Attention's fast CPU path: every head's products and its softmax in one compiled loop (numba).

Attention at training sizes is many small products (a GPT with 4 heads, batch 12, T 64 makes 48
products of 64 x 32 by 32 x 64 per matmul). Through NumPy each step (q k^T, the softmax, P v) is
one call over all heads, each a separate pass and, on every core, a separate hand-off between
threads that wait on the interpreter lock. Here one loop walks the heads of a block of the batch and,
for each head, calls OpenBLAS's sgemm directly (the same library NumPy's matmul calls, reached
through openblas.py), runs the masked softmax of cpu_loops.py on the scores while they are still
in cache, and goes on, without returning to Python. ``row_blocks.in_row_blocks`` gives each core a
block of the batch: one hand-off per call, not one per step.

The formulas are the reference's (reference.attention_forward / attention_backward, derivation
docs/derivations/attention.md); the scale rides on sgemm's alpha (alpha (q k^T) instead of
(alpha q) k^T: the same up to float32 rounding, which tests/test_kernels.py bounds).

Arrays are (B, H, T, D) float32 with unit stride along the last axis and a row stride sgemm can
take (q, k and v may be views into one (B, T, 3C) projection): cpu.sgemm_for_heads checks that, and
cpu.py keeps the NumPy path for everything else. ``forward`` and ``backward`` at the end are what
cpu.py calls: they allocate the outputs and hand blocks of the batch to the team (team_blocks.py)
or the row blocks.
"""

from __future__ import annotations

import numba
import numpy as np

from . import cpu, row_blocks
from .cpu_elementwise import dropout_mask, team_kernels
from .cpu_loops import attention_scores_gradient, masked_softmax_float32
from .native import PLAIN as _PLAIN
from .native import TRANSPOSED as _TRANSPOSED
from .native import sgemm as _sgemm
from .reference import Array

_loop = numba.njit(nogil=True, cache=True, error_model="numpy")


@numba.njit(inline="always", cache=True)
def _rows_apart(matrix):
    """sgemm's leading dimension of a 2-D float32 view: its row stride in elements (at least a row)."""
    return max(matrix.strides[0] // 4, matrix.shape[1])


@numba.njit(inline="always", cache=True)
def _product(sgemm, trans_a, trans_b, alpha, a, b, c):
    """c = alpha op(a) op(b) for 2-D views; op transposes when trans_* is _TRANSPOSED."""
    m = c.shape[0]
    n = c.shape[1]
    k = a.shape[0] if trans_a == _TRANSPOSED else a.shape[1]
    a_at, b_at, c_at = np.int64(a.ctypes.data), np.int64(b.ctypes.data), np.int64(c.ctypes.data)
    zero = np.float32(0.0)
    _sgemm(
        sgemm, trans_a, trans_b, m, n, k, alpha, a_at, _rows_apart(a), b_at, _rows_apart(b), zero, c_at, _rows_apart(c)
    )


@_loop
def attention_forward_heads(sgemm, q, k_t, v, allowed, scale, probs, dropped, out):
    """For every head: probs = softmax(scale q k^T where allowed); dropped (holding the dropout mask
    on entry, or None) *= probs; out = (dropped or probs) v. k_t holds k^T (B, H, D, Tk): sgemm's
    plain product of small matrices runs ~1.7x faster than its transposed one, more than the copy costs.
    allowed: (Tq, Tk) boolean or None."""
    one = np.float32(1.0)
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            _product(sgemm, _PLAIN, _PLAIN, scale, q[b, h], k_t[b, h], probs[b, h])
        masked_softmax_float32(probs[b], allowed)
        for h in range(q.shape[1]):
            if dropped is None:
                _product(sgemm, _PLAIN, _PLAIN, one, probs[b, h], v[b, h], out[b, h])
            else:
                dropped[b, h] *= probs[b, h]
                _product(sgemm, _PLAIN, _PLAIN, one, dropped[b, h], v[b, h], out[b, h])


@_loop
def attention_backward_heads(sgemm, q, k, v_t, probs, dropped, grad, scale, grad_q, grad_k, grad_v):
    """For every head: dv = Pd^T g; dPd = g v^T; dS = Pd dPd - P rowsum(Pd dPd); dq = scale dS k;
    dk = scale dS^T q (Pd = P when dropped is None). v_t holds v^T (B, H, Dv, Tk), as k_t above."""
    one = np.float32(1.0)
    grad_scores = np.empty(probs.shape[2:], np.float32)
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            _product(sgemm, _PLAIN, _PLAIN, one, grad[b, h], v_t[b, h], grad_scores)
            if dropped is None:
                _product(sgemm, _TRANSPOSED, _PLAIN, one, probs[b, h], grad[b, h], grad_v[b, h])
                attention_scores_gradient(grad_scores, probs[b, h], None)
            else:
                _product(sgemm, _TRANSPOSED, _PLAIN, one, dropped[b, h], grad[b, h], grad_v[b, h])
                attention_scores_gradient(grad_scores, probs[b, h], dropped[b, h])
            _product(sgemm, _PLAIN, _PLAIN, scale, grad_scores, k[b, h], grad_q[b, h])
            _product(sgemm, _TRANSPOSED, _PLAIN, scale, grad_scores, q[b, h], grad_k[b, h])


# ---------------------------------------------------------------- the launchers cpu.py calls
def _heads(array: Array) -> Array:
    """A (B, H, T, D) view of a (..., T, D) array of 2-4 axes."""
    return array.reshape((1,) * (4 - array.ndim) + array.shape)


def _like(array: Array) -> Array:
    """An empty array laid out as ``array`` is (a view into a (B, T, 3C) projection gets a (B, T, C)
    buffer), so the gradient reshapes back without a copy; C order where that layout would not suit sgemm."""
    out = np.empty_like(array)
    return out if cpu.sgemm_for_heads(None, out) is not None else np.empty(array.shape, array.dtype)


def _gradients_like(*arrays: Array) -> list[Array]:
    """Empty gradients for ``arrays``. When they are views of one base array (q, k and v cut from one
    (B, T, 3C) projection), the gradients are the same views of one new array shaped like that base:
    the Split that cut them then joins their gradients without a copy (ops/movement.py)."""
    base = arrays[0].base
    if base is None or not base.flags.c_contiguous or any(a.base is not base for a in arrays):
        return [_like(a) for a in arrays]
    buffer = np.empty_like(base)
    start = base.__array_interface__["data"][0]
    return [
        np.ndarray(a.shape, a.dtype, buffer=buffer, offset=a.__array_interface__["data"][0] - start, strides=a.strides)
        for a in arrays
    ]


def forward(sgemm, q, k, v, allowed, dropout_p, scale):
    """cpu.attention_forward for arrays sgemm_for_heads accepted: (out, P, Pd), on the team or the row blocks."""
    probs = np.empty(q.shape[:-1] + k.shape[-2:-1], np.float32)
    out = _like(q) if v.shape[-1] == q.shape[-1] else np.empty(q.shape[:-1] + v.shape[-1:], np.float32)
    mask = cpu.query_key_mask(allowed, probs.shape)
    dropped = dropout_mask(probs.shape, dropout_p, probs.dtype, "cpu") if dropout_p > 0 else None
    k_t = np.ascontiguousarray(np.swapaxes(_heads(k), -1, -2))
    heads = [_heads(a) for a in (q, v, out, probs)] + [None if dropped is None else _heads(dropped)]
    team = team_kernels()
    if team is None or not team.attention_forward(heads[0], k_t, heads[1], mask, scale, heads[3], heads[4], heads[2]):
        loop = attention_forward_heads
        row_blocks.in_row_blocks(
            lambda probs, q, k_t, v, out, dropped=None: loop(
                sgemm, q, k_t, v, mask, np.float32(scale), probs, dropped, out
            ),
            *[a for a in [heads[3], heads[0], k_t, heads[1], heads[2], heads[4]] if a is not None],
            min_elements=cpu.ATTENTION_MIN_SCORES,
        )
    return out, probs, probs if dropped is None else dropped


def backward(sgemm, q, k, v, probs, dropped, grad, scale):
    """cpu.attention_backward for arrays sgemm_for_heads accepted: (dq, dk, dv); ``dropped`` None without dropout."""
    grads = _gradients_like(q, k, v)
    v_t = np.ascontiguousarray(np.swapaxes(_heads(v), -1, -2))
    q, k, probs, grad, grad_q, grad_k, grad_v = (_heads(a) for a in (q, k, probs, grad, *grads))
    dropped = None if dropped is None else _heads(dropped)
    team = team_kernels()
    if team is None or not team.attention_backward(q, k, v_t, probs, dropped, grad, scale, grad_q, grad_k, grad_v):
        loop = attention_backward_heads
        row_blocks.in_row_blocks(
            lambda probs, q, k, v_t, grad, grad_q, grad_k, grad_v, dropped=None: loop(
                sgemm, q, k, v_t, probs, dropped, grad, np.float32(scale), grad_q, grad_k, grad_v
            ),
            *[a for a in [probs, q, k, v_t, grad, grad_q, grad_k, grad_v, dropped] if a is not None],
            min_elements=cpu.ATTENTION_MIN_SCORES,
        )
    return tuple(grads)
