"""Attention's per-head CPU path: every head's products and its softmax in one compiled loop (numba).

Attention at training sizes is many small products (a GPT with 4 heads, batch 12, T 64 makes 48
products of 64 x 32 by 32 x 64 per matmul). Through NumPy each step (q k^T, the softmax, P v) is
one call over all heads, each a separate pass and, on every core, a separate hand-off between
threads that wait on the interpreter lock. Here one loop walks the heads of a block of the batch and,
for each head, calls OpenBLAS's sgemm directly (runtime/native.py, runtime/openblas.py), runs the
masked softmax on the scores while they are still in cache, and goes on, without returning to
Python. The row blocks or the team (block functions at the end) give each core a block of the batch.

The formulas are the reference's (reference.attention_forward / attention_backward, derivation
docs/derivations/attention.md); the scale rides on sgemm's alpha (alpha (q k^T) instead of
(alpha q) k^T: the same up to float32 rounding, which tests/kernels/test_kernels.py bounds).

Arrays are (B, H, T, D) float32 with unit stride along the last axis and a row stride sgemm can
take (q, k and v may be views into one (B, T, 3C) projection): ``sgemm_for_heads`` checks that, and
attention.py keeps the NumPy path for everything else; it calls ``forward`` and ``backward`` here.
The two row loops (``masked_softmax_float32``, ``attention_scores_gradient``) serve both paths.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import carray

from ...backend import xp_of
from ..reference import Array
from ..runtime import jobs, openblas, row_blocks
from ..runtime.native import PLAIN as _PLAIN
from ..runtime.native import TRANSPOSED as _TRANSPOSED
from ..runtime.native import boolean_pointer, float32_pointer, float32_view, float64_pointer, int64_pointer
from ..runtime.native import sgemm as _sgemm
from ..runtime.slots import Slots
from .common import exp_nonpositive, loop, row_dot, row_sum
from .dropout import dropout_mask

# Without the team, the per-head loops hand blocks of the batch to sleeping threads only from this
# many scores (B x H x Tq x Tk), as the compiled loops do from PARALLEL_MIN_ELEMENTS: on small's
# 196K scores two threads were no faster than one (the team's hand-off needs no such margin).
ATTENTION_MIN_SCORES = 1 << 20


def sgemm_for_heads(allowed: Array | None, *arrays: Array) -> int | None:
    """The sgemm address for the per-head loops below when they can take these arrays, else None: NumPy
    float32 (..., T, D) arrays of 2-4 axes, none empty, unit stride along D and a row stride sgemm can
    take, and a mask that is the same for every head."""
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != np.float32 or not 2 <= a.ndim <= 4 or a.size == 0:
            return None
        if a.strides[-1] != a.itemsize or (a.shape[-2] > 1 and a.strides[-2] < a.itemsize * a.shape[-1]):
            return None
        if a.strides[-2] % a.itemsize:
            return None
    if allowed is not None and any(n != 1 for n in allowed.shape[:-2]):
        return None
    return openblas.sgemm_address()


def query_key_mask(allowed: Array | None, scores_shape: tuple[int, ...]) -> Array | None:
    """A mask that is the same for every batch entry as one contiguous (Tq, Tk) array (None stays None)."""
    if allowed is None:
        return None
    xp = xp_of(allowed)
    return xp.ascontiguousarray(xp.broadcast_to(allowed, allowed.shape[:-2] + scores_shape[-2:])).reshape(
        scores_shape[-2:]
    )


# ---------------------------------------------------------------- row loops (both paths)
_LOWEST_32 = np.float32(np.finfo(np.float32).min)
_ZERO_32 = np.float32(0.0)


@loop
def masked_softmax_float32(scores, allowed):
    """In place over (batch, Tq, Tk) scores: softmax along the last axis of the scores ``allowed`` (a
    (Tq, Tk) boolean array, or None for all) keeps, 0 elsewhere: the reference's where(allowed, S, -inf)
    then softmax, in one pass. A row with nothing allowed gives zeros, as the reference; a NaN score
    makes its row NaN through the sum (the maximum skips it, which only shifts the row)."""
    batch, queries, keys = scores.shape
    rows = scores.reshape(batch * queries, keys)
    for r in range(batch * queries):
        i = r % queries
        row_max = _LOWEST_32  # also the shift of a row with nothing allowed: no -inf - -inf
        for j in range(keys):
            s = rows[r, j] if allowed is None or allowed[i, j] else _LOWEST_32
            row_max = s if s > row_max else row_max
        for j in range(keys):
            e = exp_nonpositive(rows[r, j] - row_max)
            rows[r, j] = e if allowed is None or allowed[i, j] else _ZERO_32
        total = max(np.float32(row_sum(rows, r)), np.float32(1.0))
        for j in range(keys):
            rows[r, j] /= total


@loop
def attention_scores_gradient(grad_scores, probs, dropped):
    """In place over (rows, Tk): grad_scores holds dPd on entry and dS = Pd dPd - P sum(Pd dPd) on
    return; ``dropped`` (Pd) is None without dropout, where Pd = P and dS = P (dP - sum(P dP))."""
    rows, keys = grad_scores.shape
    for r in range(rows):
        kept = probs if dropped is None else dropped
        weighted = grad_scores.dtype.type(row_dot(grad_scores, kept, r))
        for j in range(keys):
            if dropped is None:
                grad_scores[r, j] = probs[r, j] * (grad_scores[r, j] - weighted)
            else:
                grad_scores[r, j] = dropped[r, j] * grad_scores[r, j] - probs[r, j] * weighted


def warm_up() -> None:
    """Compile (or load from numba's cache) the row loops for float32."""
    x = np.ones((2, 4), np.float32)
    masked_softmax_float32(np.ones((1, 2, 2), np.float32), np.ones((2, 2), bool))
    attention_scores_gradient(x.copy(), x, None)
    attention_scores_gradient(x.copy(), x, x)


# ---------------------------------------------------------------- per head
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


@loop
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


@loop
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


# ---------------------------------------------------------------- the launchers attention.py calls
def _heads(array: Array) -> Array:
    """A (B, H, T, D) view of a (..., T, D) array of 2-4 axes."""
    return array.reshape((1,) * (4 - array.ndim) + array.shape)


def _like(array: Array) -> Array:
    """An empty array laid out as ``array`` is (a view into a (B, T, 3C) projection gets a (B, T, C)
    buffer), so the gradient reshapes back without a copy; C order where that layout would not suit sgemm."""
    out = np.empty_like(array)
    return out if sgemm_for_heads(None, out) is not None else np.empty(array.shape, array.dtype)


_TOO_HARD = getattr(np, "exceptions", np).TooHardError  # np.TooHardError before NumPy 1.25


def _overlap(arrays: tuple[Array, ...]) -> bool:
    """Whether any two of ``arrays`` share an element (or the check would cost too much to tell)."""
    for i, a in enumerate(arrays):
        for b in arrays[i + 1 :]:
            try:
                if np.shares_memory(a, b, max_work=10_000):  # type: ignore[arg-type]  # exact, bounded
                    return True
            except _TOO_HARD:
                return True
    return False


def _gradients_like(*arrays: Array) -> list[Array]:
    """Empty gradients for ``arrays``. When they are disjoint views of one base array (q, k and v cut
    from one (B, T, 3C) projection), the gradients are the same views of one new array shaped like
    that base: the Split that cut them then joins their gradients without a copy (ops/movement.py).
    Views that overlap (q = k = v, or overlapping slices) get separate arrays: one shared buffer would
    make the three gradients overwrite each other."""
    base = arrays[0].base
    if base is None or not base.flags.c_contiguous or any(a.base is not base for a in arrays) or _overlap(arrays):
        return [_like(a) for a in arrays]
    buffer = np.empty_like(base)
    start = base.__array_interface__["data"][0]
    return [
        np.ndarray(a.shape, a.dtype, buffer=buffer, offset=a.__array_interface__["data"][0] - start, strides=a.strides)
        for a in arrays
    ]


def forward(sgemm, q, k, v, allowed, dropout_p, scale):
    """attention.attention_forward for arrays sgemm_for_heads accepted: (out, P, Pd), on the team or the row blocks."""
    probs = np.empty(q.shape[:-1] + k.shape[-2:-1], np.float32)
    out = _like(q) if v.shape[-1] == q.shape[-1] else np.empty(q.shape[:-1] + v.shape[-1:], np.float32)
    mask = query_key_mask(allowed, probs.shape)
    dropped = dropout_mask(probs.shape, dropout_p, probs.dtype, "cpu") if dropout_p > 0 else None
    k_t = np.ascontiguousarray(np.swapaxes(_heads(k), -1, -2))
    heads = [_heads(a) for a in (q, v, out, probs)] + [None if dropped is None else _heads(dropped)]
    on_team = row_blocks.team() is not None
    if not on_team or not _forward_on_team(heads[0], k_t, heads[1], mask, scale, heads[3], heads[4], heads[2]):
        loop = attention_forward_heads
        row_blocks.in_row_blocks(
            lambda probs, q, k_t, v, out, dropped=None: loop(
                sgemm, q, k_t, v, mask, np.float32(scale), probs, dropped, out
            ),
            *[a for a in [heads[3], heads[0], k_t, heads[1], heads[2], heads[4]] if a is not None],
            min_elements=ATTENTION_MIN_SCORES,
        )
    return out, probs, probs if dropped is None else dropped


def backward(sgemm, q, k, v, probs, dropped, grad, scale):
    """attention.attention_backward for arrays sgemm_for_heads accepted: (dq, dk, dv); ``dropped`` is
    None without dropout."""
    grads = _gradients_like(q, k, v)
    v_t = np.ascontiguousarray(np.swapaxes(_heads(v), -1, -2))
    q, k, probs, grad, grad_q, grad_k, grad_v = (_heads(a) for a in (q, k, probs, grad, *grads))
    dropped = None if dropped is None else _heads(dropped)
    on_team = row_blocks.team() is not None
    if not on_team or not _backward_on_team(q, k, v_t, probs, dropped, grad, scale, grad_q, grad_k, grad_v):
        loop = attention_backward_heads
        row_blocks.in_row_blocks(
            lambda probs, q, k, v_t, grad, grad_q, grad_k, grad_v, dropped=None: loop(
                sgemm, q, k, v_t, probs, dropped, grad, np.float32(scale), grad_q, grad_k, grad_v
            ),
            *[a for a in [probs, q, k, v_t, grad, grad_q, grad_k, grad_v, dropped] if a is not None],
            min_elements=ATTENTION_MIN_SCORES,
        )
    return tuple(grads)


# ---------------------------------------------------------------- on the team: blocks of the batch
_SIZES = ("sgemm", "batch", "heads", "queries", "keys", "dim", "value_dim", "dropped", "blocks")
FORWARD = Slots("attention", *_SIZES, "mask", ("q", 5), ("v", 5), ("out", 5), "k_t", "probs", floats=("scale",))
BACKWARD = Slots(
    "attention_backward", *_SIZES, ("q", 5), ("k", 5), ("grad", 5), ("grad_q", 5), ("grad_k", 5), ("grad_v", 5),
    "v_t", "probs", floats=("scale",),
)  # fmt: skip
_F, _B = FORWARD.at, BACKWARD.at


@numba.njit(inline="always", cache=True)
def _heads_view(a, at, batch_low, batch_high, rows, columns):
    """The (batch_high - batch_low, H, rows, columns) view packed at a[at:at + 5] (address, H, three
    byte strides; the last axis is contiguous)."""
    start = a[at] + batch_low * a[at + 2]
    return float32_view(start, (batch_high - batch_low, a[at + 1], rows, columns), (a[at + 2], a[at + 3], a[at + 4], 4))


@numba.njit(inline="always", cache=True)
def _contiguous_heads(address, batch_low, batch_high, heads, rows, columns):
    return carray(
        float32_pointer(address + 4 * batch_low * heads * rows * columns),
        (batch_high - batch_low, heads, rows, columns),
    )


def _packed_heads(array: np.ndarray) -> tuple[int, ...]:
    """A heads view's 5 slots: address, H, and the byte strides of its first three axes."""
    return (array.ctypes.data, array.shape[1], *array.strides[:3])


@jobs.block_function
def _forward_block(arguments, block):
    a = carray(int64_pointer(arguments), (_F.size,))
    scale = np.float32(carray(float64_pointer(arguments), (_F.size,))[_F.scale])
    heads, queries, keys, dim, value_dim = a[_F.heads], a[_F.queries], a[_F.keys], a[_F.dim], a[_F.value_dim]
    low, high = jobs.span(a[_F.batch], block, a[_F.blocks])
    q = _heads_view(a, _F.q, low, high, queries, dim)
    v = _heads_view(a, _F.v, low, high, keys, value_dim)
    out = _heads_view(a, _F.out, low, high, queries, value_dim)
    k_t = _contiguous_heads(a[_F.k_t], low, high, heads, dim, keys)
    probs = _contiguous_heads(a[_F.probs], low, high, heads, queries, keys)
    mask = carray(boolean_pointer(a[_F.mask]), (queries, keys))
    dropped = _contiguous_heads(a[_F.dropped], low, high, heads, queries, keys)
    sgemm_at = a[_F.sgemm]
    if a[_F.mask] and a[_F.dropped]:
        attention_forward_heads(sgemm_at, q, k_t, v, mask, scale, probs, dropped, out)
    elif a[_F.mask]:
        attention_forward_heads(sgemm_at, q, k_t, v, mask, scale, probs, None, out)
    elif a[_F.dropped]:
        attention_forward_heads(sgemm_at, q, k_t, v, None, scale, probs, dropped, out)
    else:
        attention_forward_heads(sgemm_at, q, k_t, v, None, scale, probs, None, out)


def _forward_on_team(q, k_t, v, mask, scale, probs, dropped, out) -> bool:
    """attention_forward_heads over blocks of the batch: q, v, out (B, H, T, D) with contiguous rows;
    k_t, probs, dropped (or None) C-contiguous; mask (Tq, Tk) or None. False for a job too small."""
    batch, heads, queries, dim = q.shape
    blocks = jobs.blocks_for(probs.size, jobs.MIN_ELEMENTS, batch)
    if blocks == 1:
        return False
    arguments = FORWARD.pack(
        sgemm=jobs.sgemm(), batch=batch, heads=heads, queries=queries, keys=v.shape[2], dim=dim,
        value_dim=v.shape[3], dropped=jobs.address_of(dropped), blocks=blocks, mask=jobs.address_of(mask),
        q=_packed_heads(q), v=_packed_heads(v), out=_packed_heads(out), k_t=k_t.ctypes.data,
        probs=probs.ctypes.data, scale=scale,
    )  # fmt: skip
    row_blocks.team().run(_forward_block.address, arguments, blocks)
    return True


@jobs.block_function
def _backward_block(arguments, block):
    a = carray(int64_pointer(arguments), (_B.size,))
    scale = np.float32(carray(float64_pointer(arguments), (_B.size,))[_B.scale])
    heads, queries, keys, dim, value_dim = a[_B.heads], a[_B.queries], a[_B.keys], a[_B.dim], a[_B.value_dim]
    low, high = jobs.span(a[_B.batch], block, a[_B.blocks])
    q, k = _heads_view(a, _B.q, low, high, queries, dim), _heads_view(a, _B.k, low, high, keys, dim)
    grad = _heads_view(a, _B.grad, low, high, queries, value_dim)
    grad_q = _heads_view(a, _B.grad_q, low, high, queries, dim)
    grad_k = _heads_view(a, _B.grad_k, low, high, keys, dim)
    grad_v = _heads_view(a, _B.grad_v, low, high, keys, value_dim)
    v_t = _contiguous_heads(a[_B.v_t], low, high, heads, value_dim, keys)
    probs = _contiguous_heads(a[_B.probs], low, high, heads, queries, keys)
    dropped = _contiguous_heads(a[_B.dropped], low, high, heads, queries, keys)
    if a[_B.dropped]:
        attention_backward_heads(a[_B.sgemm], q, k, v_t, probs, dropped, grad, scale, grad_q, grad_k, grad_v)
    else:
        attention_backward_heads(a[_B.sgemm], q, k, v_t, probs, None, grad, scale, grad_q, grad_k, grad_v)


def _backward_on_team(q, k, v_t, probs, dropped, grad, scale, grad_q, grad_k, grad_v) -> bool:
    """attention_backward_heads over blocks of the batch (layouts as _forward_on_team)."""
    batch, heads, queries, dim = q.shape
    blocks = jobs.blocks_for(probs.size, jobs.MIN_ELEMENTS, batch)
    if blocks == 1:
        return False
    arguments = BACKWARD.pack(
        sgemm=jobs.sgemm(), batch=batch, heads=heads, queries=queries, keys=k.shape[2], dim=dim,
        value_dim=v_t.shape[2], dropped=jobs.address_of(dropped), blocks=blocks, q=_packed_heads(q),
        k=_packed_heads(k), grad=_packed_heads(grad), grad_q=_packed_heads(grad_q), grad_k=_packed_heads(grad_k),
        grad_v=_packed_heads(grad_v), v_t=v_t.ctypes.data, probs=probs.ctypes.data, scale=scale,
    )  # fmt: skip
    row_blocks.team().run(_backward_block.address, arguments, blocks)
    return True
