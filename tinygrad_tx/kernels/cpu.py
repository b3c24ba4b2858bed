"""Fast CPU row ops: softmax, log-softmax, cross-entropy, layer norm, attention, embedding backward.

The same functions as reference.py, with the same signatures and results up to float32 rounding
(tests/test_kernels.py proves it), written for speed on NumPy: in place on buffers they allocate
themselves (``out=`` chains), over blocks of rows on every core (``backend.in_row_blocks``, which
releases work to threads only for large arrays), and with no temporary they can avoid. Each
function's derivation is the reference's page in docs/derivations/. Elementwise ops (GELU and its
erf, dropout, AdamW) are in cpu_elementwise.py.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..backend import xp_of
from . import openblas, reference, row_blocks
from .cpu_elementwise import compiled_loops, dropout_mask, team_kernels
from .reference import Array

# Below this many table rows a one-hot matmul is the fastest CPU scatter-add; above it, sorting the
# indices and summing runs (np.add.reduceat). Measured on the 2-core box, rows (16384, 384) float32:
# 65 rows: add.at 53 ms, one-hot 8 ms, sort 15 ms; 2048 rows: add.at 54 ms, one-hot 154 ms, sort 25 ms.
ONE_HOT_MAX_ROWS = 256
# NumPy chains (softmax, the attention blocks) do several passes per element: threads pay off from
# ~256K elements, sooner than for the compiled loops (row_blocks.PARALLEL_MIN_ELEMENTS).
NUMPY_MIN_ELEMENTS = 1 << 18
# Without the team, attention's per-head loops hand blocks of the batch to sleeping threads only from
# this many scores (B x H x Tq x Tk), as the compiled loops do from PARALLEL_MIN_ELEMENTS: on small's
# 196K scores two threads were no faster than one (the team's hand-off needs no such margin).
ATTENTION_MIN_SCORES = 1 << 20


def row_dots(a: Array, b: Array) -> Array:
    """sum(a * b, axis=-1, keepdims=True) without an a-sized temporary (NumPy >= 2's vecdot)."""
    xp = xp_of(a)
    if hasattr(xp, "vecdot"):
        return xp.vecdot(a, b)[..., None]
    return (a * b).sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------- linear: one GEMM over rows
def linear_forward(rows: Array, weight: Array, bias: Array | None) -> Array:
    """NumPy's matmul, or split over the team of threads once tune_for_training() started it."""
    row_blocks.fit_blas_threads()  # after tune_for_training(): use the cores other programs leave free
    team = team_kernels()
    out = rows @ weight.T if team is None else team.matmul(rows, weight.T)
    if bias is not None:
        out += bias
    return out


def linear_backward(
    grad_rows: Array, rows: Array, weight: Array, needs: tuple[bool, bool, bool]
) -> tuple[Array | None, Array | None, Array | None]:
    team = team_kernels()
    if team is None:
        return reference.linear_backward(grad_rows, rows, weight, needs)
    need_x, need_weight, need_bias = needs
    products = [(grad_rows, weight)] * need_x + [(grad_rows.T, rows)] * need_weight
    grads = iter(team.matmuls(*products))
    return (
        next(grads) if need_x else None,
        next(grads) if need_weight else None,
        grad_rows.sum(axis=0) if need_bias else None,
    )


# ---------------------------------------------------------------- softmax and log-softmax
def softmax_into(x: Array, axis: int, out: Array | None = None) -> Array:
    """softmax(x) along ``axis`` written into ``out`` (which may be ``x`` itself when the caller owns it)."""
    out = xp_of(x).empty_like(x) if out is None else out
    if axis % x.ndim == 0:
        _softmax_block(x, axis, out)
    else:  # rows are independent: the leading axis splits across cores
        row_blocks.in_row_blocks(
            lambda x_block, out_block: _softmax_block(x_block, axis, out_block), x, out, min_elements=NUMPY_MIN_ELEMENTS
        )
    return out


def _softmax_block(x, axis, out):
    xp = xp_of(x)
    row_max = x.max(axis=axis, keepdims=True)
    xp.maximum(row_max, xp.finfo(x.dtype).min, out=row_max)  # all -inf row: avoid -inf - -inf = nan
    xp.subtract(x, row_max, out=out)
    xp.exp(out, out=out)
    total = out.sum(axis=axis, keepdims=True)
    xp.maximum(total, 1.0, out=total)  # a row with any finite entry sums to >= 1; an all -inf row to 0
    out /= total


def softmax_forward(x: Array, axis: int) -> Array:
    return softmax_into(x, axis)


def softmax_backward(y: Array, grad: Array, axis: int) -> Array:
    grad_x = grad * y
    weighted = grad_x.sum(axis=axis, keepdims=True)
    xp_of(grad).subtract(grad, weighted, out=grad_x)
    grad_x *= y
    return grad_x


def log_softmax_forward(x: Array, axis: int) -> Array:
    xp = xp_of(x)
    y = x - x.max(axis=axis, keepdims=True)
    y -= xp.log(xp.exp(y).sum(axis=axis, keepdims=True))
    return y


def log_softmax_backward(y: Array, grad: Array, axis: int) -> Array:
    grad_x = xp_of(y).exp(y)
    grad_x *= -grad.sum(axis=axis, keepdims=True)
    grad_x += grad
    return grad_x


# ---------------------------------------------------------------- cross-entropy over (N, C) logits
def cross_entropy_forward(logits: Array, targets: Array, counted: Array) -> tuple[Array, Array]:
    xp = xp_of(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    picked = xp.take_along_axis(shifted, targets[:, None], axis=1)[:, 0]
    probs = xp.exp(shifted, out=shifted)
    total = probs.sum(axis=1)
    row_loss = xp.log(total)
    row_loss -= picked
    row_loss *= counted
    probs /= total[:, None]
    return probs, row_loss


def cross_entropy_backward(probs: Array, targets: Array, row_weight: Array) -> Array:
    grad_logits = probs * row_weight[:, None]
    grad_logits[xp_of(probs).arange(probs.shape[0]), targets] -= row_weight
    return grad_logits


# ---------------------------------------------------------------- layer norm over the last axis
def _same_float_dtype(*arrays: Array | None) -> bool:
    """Whether the compiled loops take these arrays: float32 or float64, all one dtype (None skipped)."""
    dtypes = {a.dtype for a in arrays if a is not None}
    return len(dtypes) == 1 and dtypes <= {np.dtype(np.float32), np.dtype(np.float64)}


def _contiguous(*arrays: Array | None) -> bool:
    return all(a is None or a.flags.c_contiguous for a in arrays)


def layer_norm_forward(x: Array, weight: Array | None, bias: Array | None, eps: float) -> tuple[Array, Array, Array]:
    """One compiled pass per row (cpu_loops.layer_norm_rows), over blocks of rows on every core."""
    if not _same_float_dtype(x, weight, bias):
        return reference.layer_norm_forward(x, weight, bias, eps)
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    xhat, out = np.empty_like(rows), np.empty_like(rows)
    rstd = np.empty((rows.shape[0], 1), x.dtype)
    normalize, eps = compiled_loops().layer_norm_rows, x.dtype.type(eps)
    team = team_kernels() if x.dtype == np.float32 and _contiguous(weight, bias) else None
    if team is None or not team.layer_norm(rows, weight, bias, eps, xhat, rstd, out):
        row_blocks.in_row_blocks(
            lambda *blocks: normalize(blocks[0], weight, bias, eps, *blocks[1:]), rows, xhat, rstd, out
        )
    return out.reshape(x.shape), xhat.reshape(x.shape), rstd.reshape(x.shape[:-1] + (1,))


def layer_norm_backward(
    grad: Array, xhat: Array, rstd: Array, weight: Array | None
) -> tuple[Array, Array | None, Array]:
    """One compiled pass per row for dx; each block also returns its column sums for dweight and dbias."""
    if not _same_float_dtype(grad, xhat, rstd, weight):
        return reference.layer_norm_backward(grad, xhat, rstd, weight)
    features = xhat.shape[-1]
    rows = [np.ascontiguousarray(a).reshape(-1, a.shape[-1]) for a in (grad, xhat, rstd)]
    grad_x = np.empty(rows[1].shape, xhat.dtype)
    backward = compiled_loops().layer_norm_backward_rows

    def block(grad_rows, xhat_rows, rstd_rows, grad_x_rows):
        column_sums = np.zeros((2, features), xhat.dtype)  # this block's share of dweight, dbias
        backward(grad_rows, xhat_rows, rstd_rows, weight, grad_x_rows, column_sums[0], column_sums[1])
        return column_sums

    team = team_kernels() if xhat.dtype == np.float32 and _contiguous(weight) else None
    sums = None if team is None else team.layer_norm_backward(rows[0], rows[1], rows[2], weight, grad_x)
    grad_weight, grad_bias = sums if sums is not None else sum(row_blocks.in_row_blocks(block, *rows, grad_x))
    return grad_x.reshape(xhat.shape), None if weight is None else grad_weight, grad_bias


# ---------------------------------------------------------------- scaled dot-product attention
def _over_batch(function, *arrays):
    """function(*blocks) over blocks of the leading (batch) axis on every core; whole when there is none."""
    if arrays[0].ndim > 2:
        row_blocks.in_row_blocks(function, *arrays, min_elements=NUMPY_MIN_ELEMENTS)
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
    allowed = query_key_mask(allowed, scores.shape)
    softmax = compiled_loops().masked_softmax_float32
    row_blocks.in_row_blocks(lambda block: softmax(block, allowed), scores.reshape((-1,) + scores.shape[-2:]))
    return scores


def query_key_mask(allowed: Array | None, scores_shape: tuple[int, ...]) -> Array | None:
    """A mask that is the same for every batch entry as one contiguous (Tq, Tk) array (None stays None)."""
    if allowed is None:
        return None
    xp = xp_of(allowed)
    return xp.ascontiguousarray(xp.broadcast_to(allowed, allowed.shape[:-2] + scores_shape[-2:])).reshape(
        scores_shape[-2:]
    )


def attention_forward(
    q: Array, k: Array, v: Array, allowed: Array | None, dropout_p: float, scale: float
) -> tuple[Array, Array, Array]:
    xp = xp_of(q)
    dtype = xp.result_type(q, k, v)
    sgemm = sgemm_for_heads(allowed, q, k, v)
    if sgemm is not None:
        from . import cpu_attention

        return cpu_attention.forward(sgemm, q, k, v, allowed, dropout_p, scale)
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
    if _same_float_dtype(*arrays) and all(a.flags.c_contiguous for a in arrays):  # one compiled pass
        rows = [a.reshape(-1, a.shape[-1]) for a in arrays]
        compiled_loops().attention_scores_gradient(rows[0], rows[1], rows[2] if dropout else None)
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
    sgemm = sgemm_for_heads(None, q, k, v, grad)
    if sgemm is not None and probs.flags.c_contiguous and dropped.flags.c_contiguous and probs.dtype == np.float32:
        from . import cpu_attention

        return cpu_attention.backward(sgemm, q, k, v, probs, dropped if dropout else None, grad, scale)
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


# ---------------------------------------------------------------- attention, one compiled loop per block of heads
def sgemm_for_heads(allowed: Array | None, *arrays: Array) -> int | None:
    """The sgemm address for cpu_attention's loops when they can take these arrays, else None: NumPy
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


# ---------------------------------------------------------------- embedding backward
def embedding_backward(indices: Array, grad_rows: Array, num_rows: int) -> Array:
    """The same sum as the reference's scatter-add, by whichever method is fastest for the table size."""
    xp = xp_of(grad_rows)
    if indices.size == 0:
        return xp.zeros((num_rows, grad_rows.shape[1]), grad_rows.dtype)
    if num_rows <= ONE_HOT_MAX_ROWS:
        one_hot = (xp.arange(num_rows)[:, None] == indices[None, :]).astype(grad_rows.dtype)
        return one_hot @ grad_rows
    order = xp.argsort(indices, kind="stable")
    sorted_indices = indices[order]
    run_starts = xp.flatnonzero(xp.concatenate(([True], sorted_indices[1:] != sorted_indices[:-1])))
    out = xp.zeros((num_rows, grad_rows.shape[1]), grad_rows.dtype)
    out[sorted_indices[run_starts]] = xp.add.reduceat(grad_rows[order], run_starts, axis=0)
    return out
