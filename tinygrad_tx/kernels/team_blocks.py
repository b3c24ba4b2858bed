"""The fast CPU kernels as team jobs (team.py): a block function per kernel, and its launcher.

Each block function is a numba ``cfunc`` taking ``(arguments, block)``: ``arguments`` is the address
of an int64 array that the launcher packs (array addresses, sizes, strides; floats as their float64
bits), and ``block`` says which share of the rows (or batch entries) to do. It rebuilds the arrays
over that share and calls the same compiled loop the single-threaded path calls (cpu_loops.py,
cpu_attention.py), or OpenBLAS's sgemm on a share of a GEMM's rows. The launchers are called by
cpu.py, cpu_elementwise.py and the Linear op when ``row_blocks.team()`` is on; they take float32 NumPy
arrays in the layouts they check for, and the callers keep their other paths for everything else.
"""

from __future__ import annotations

import struct
from typing import Any

import numba
import numpy as np
from numba import carray, types

from . import cpu_attention, cpu_loops, openblas, row_blocks
from .native import (
    PLAIN,
    TRANSPOSED,
    boolean_pointer,
    float32_pointer,
    float32_view,
    float64_pointer,
    int64_pointer,
    sgemm,
)

_block = numba.cfunc(types.void(types.int64, types.int64), nogil=True, cache=True, error_model="numpy")
BLOCKS_PER_WORKER = 2  # a worker the scheduler holds up costs one small block, not half the job
MIN_ELEMENTS = 1 << 15  # below this a kernel runs as one block on the caller: no hand-off pays
MIN_GEMM_PRODUCTS = 1 << 20  # m * n * k below which a GEMM runs as one block
# GEMMs: one band per worker. sgemm is most efficient on whole matrices, and a spinning helper joins
# within a microsecond, so smaller bands would only cost efficiency (measured: 2 bands of a 768 x 128
# x 384 GEMM match OpenBLAS's own two threads; 4 bands are 5-10% slower).
GEMM_BANDS_PER_WORKER = 1


def _pack(*values: int | float) -> np.ndarray:
    """int64 slots for a block function: ints as they are, floats as their float64 bits."""
    return np.array([_INT64.unpack(_FLOAT64.pack(v))[0] if type(v) is float else v for v in values], np.int64)


_FLOAT64, _INT64 = struct.Struct("d"), struct.Struct("q")


def _sgemm() -> int:
    """The bundled OpenBLAS's sgemm (the team only starts where there is one: team.start)."""
    address = openblas.sgemm_address()
    if address is None:
        raise RuntimeError("the team's kernels need NumPy's bundled OpenBLAS (kernels/openblas.py)")
    return address


def _blocks(work: int, minimum: int, most: int) -> int:
    """How many blocks a job of ``work`` units gets on the current team (1: run it on the caller)."""
    workers = row_blocks.team().helpers + 1
    return 1 if work < minimum else max(1, min(most, BLOCKS_PER_WORKER * workers))


@numba.njit(inline="always", cache=True)
def _span(count, block, blocks):
    return count * block // blocks, count * (block + 1) // blocks


# ---------------------------------------------------------------- GEMMs
_GEMM_FIELDS = 12  # per product: sgemm, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc


@_block
def _gemm_block(arguments, block):
    """A share of one of several products C = op(A) op(B): products[block // pieces] cut into
    ``pieces`` bands of C's rows (of its columns when C is wider than tall)."""
    pieces = carray(int64_pointer(arguments), (2,))[1]
    a = carray(int64_pointer(arguments + 8 * (2 + _GEMM_FIELDS * (block // pieces))), (_GEMM_FIELDS,))
    address, trans_a, trans_b, m, n, k = a[0], a[1], a[2], a[3], a[4], a[5]
    a_at, lda, b_at, ldb, c_at, ldc = a[6], a[7], a[8], a[9], a[10], a[11]
    one, zero = np.float32(1.0), np.float32(0.0)
    piece = block % pieces
    if m >= n:
        low, high = _span(m, piece, pieces)
        a_at += 4 * low * (lda if trans_a == PLAIN else 1)
        sgemm(address, trans_a, trans_b, high - low, n, k, one, a_at, lda, b_at, ldb, zero, c_at + 4 * low * ldc, ldc)
    else:
        low, high = _span(n, piece, pieces)
        b_at += 4 * low * (ldb if trans_b == TRANSPOSED else 1)
        sgemm(address, trans_a, trans_b, m, high - low, k, one, a_at, lda, b_at, ldb, zero, c_at + 4 * low, ldc)


def _gemm_operand(matrix: np.ndarray) -> tuple[int, int] | None:
    """(PLAIN or TRANSPOSED, leading dimension) of a 2-D float32 matrix that sgemm can read in place."""
    rows, columns = matrix.shape
    row_step, column_step = (stride // 4 if stride % 4 == 0 else -1 for stride in matrix.strides)
    if column_step == 1 and (rows == 1 or row_step >= columns):
        return PLAIN, max(row_step, columns, 1)
    if row_step == 1 and (columns == 1 or column_step >= rows):
        return TRANSPOSED, max(column_step, rows, 1)
    return None


def matmuls(*products: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """[a @ b for each (a, b)] as one team job: 2-D float32 NumPy matrices with rows or columns
    contiguous (a transposed view is fine); NumPy's matmul for any product that is not.

    Independent products (a Linear's dx and dW) run side by side, each on one core, when there are
    as many as workers: one whole GEMM per core beats every GEMM cut in halves one after the other
    (measured 0.73 ms against 0.78 for dx and dW of a 768 x 128 x 384 layer). A single product is
    cut into one band per worker.
    """
    if sum(a.shape[0] * a.shape[1] * b.shape[1] for a, b in products) < MIN_GEMM_PRODUCTS:
        return [a @ b for a, b in products]  # one block each: NumPy's call is the same sgemm, sooner
    results: list[Any] = [None] * len(products)
    fields = []
    for index, (a, b) in enumerate(products):
        left, right = (_gemm_operand(a), _gemm_operand(b)) if a.dtype == b.dtype == np.float32 else (None, None)
        if left is None or right is None or 0 in a.shape + b.shape:
            results[index] = a @ b
            continue
        (trans_a, lda), (trans_b, ldb) = left, right
        (m, k), n = a.shape, b.shape[1]
        out = results[index] = np.empty((m, n), np.float32)
        fields.append((_sgemm(), trans_a, trans_b, m, n, k, a.ctypes.data, lda, b.ctypes.data, ldb, out.ctypes.data, n))
    if fields:
        workers = row_blocks.team().helpers + 1
        smallest = min(min(product[3], product[4]) for product in fields)
        bands = -(-workers * GEMM_BANDS_PER_WORKER // len(fields))  # per product, rounded up
        pieces = max(1, min(smallest, bands))
        packed = _pack(len(fields), pieces, *(value for product in fields for value in product))
        row_blocks.team().run(_gemm_block.address, packed, len(fields) * pieces)
    return results


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b on the team (see matmuls)."""
    return matmuls((a, b))[0]


# ---------------------------------------------------------------- GELU (exact form)
@_block
def _gelu_forward_block(arguments, block):
    a = carray(int64_pointer(arguments), (4,))
    low, high = _span(a[2], block, a[3])
    cpu_loops.gelu_exact_forward(
        carray(float32_pointer(a[0] + 4 * low), (high - low,)), carray(float32_pointer(a[1] + 4 * low), (high - low,))
    )


@_block
def _gelu_backward_block(arguments, block):
    a = carray(int64_pointer(arguments), (5,))
    low, high = _span(a[3], block, a[4])
    x = carray(float32_pointer(a[0] + 4 * low), (high - low,))
    grad = carray(float32_pointer(a[1] + 4 * low), (high - low,))
    out = carray(float32_pointer(a[2] + 4 * low), (high - low,))
    cpu_loops.gelu_exact_backward(x, grad, out)


def gelu(x: np.ndarray, out: np.ndarray, grad: np.ndarray | None = None) -> bool:
    """out = gelu(x), or its input gradient when ``grad`` is given; flat contiguous float32 arrays.
    False (nothing done) for a job too small to share; the launchers below say the same."""
    blocks = _blocks(x.size, MIN_ELEMENTS, x.size)
    if blocks == 1:
        return False
    if grad is None:
        packed = _pack(x.ctypes.data, out.ctypes.data, x.size, blocks)
        row_blocks.team().run(_gelu_forward_block.address, packed, blocks)
    else:
        packed = _pack(x.ctypes.data, grad.ctypes.data, out.ctypes.data, x.size, blocks)
        row_blocks.team().run(_gelu_backward_block.address, packed, blocks)
    return True


# ---------------------------------------------------------------- AdamW (flat, in place)
@_block
def _adamw_block(arguments, block):
    a = carray(int64_pointer(arguments), (12,))
    scalars = carray(float64_pointer(arguments), (12,))
    low, high = _span(a[4], block, a[5])
    param = carray(float32_pointer(a[0] + 4 * low), (high - low,))
    grad = carray(float32_pointer(a[1] + 4 * low), (high - low,))
    exp_avg = carray(float32_pointer(a[2] + 4 * low), (high - low,))
    exp_avg_sq = carray(float32_pointer(a[3] + 4 * low), (high - low,))
    decay, beta1, beta2 = np.float32(scalars[6]), np.float32(scalars[7]), np.float32(scalars[8])
    step_size, bias_root, eps = np.float32(scalars[9]), np.float32(scalars[10]), np.float32(scalars[11])
    cpu_loops.adamw_flat(param, grad, exp_avg, exp_avg_sq, decay, beta1, beta2, step_size, bias_root, eps)


def adamw(param, grad, exp_avg, exp_avg_sq, *scalars: float) -> bool:
    """cpu_loops.adamw_flat over contiguous float32 arrays, in place, split over the team; ``scalars``
    are (decay, beta1, beta2, step size, bias root, eps), rounded to float32 in the blocks."""
    blocks = _blocks(param.size, MIN_ELEMENTS, param.size)
    if blocks == 1:
        return False
    addresses = [a.ctypes.data for a in (param, grad, exp_avg, exp_avg_sq)]
    packed = _pack(*addresses, param.size, blocks, *(float(value) for value in scalars))
    row_blocks.team().run(_adamw_block.address, packed, blocks)
    return True


# ---------------------------------------------------------------- layer norm (rows)
@_block
def _layer_norm_block(arguments, block):
    a = carray(int64_pointer(arguments), (10,))
    rows, features = a[6], a[7]
    low, high = _span(rows, block, a[8])
    x = carray(float32_pointer(a[0] + 4 * low * features), (high - low, features))
    xhat = carray(float32_pointer(a[3] + 4 * low * features), (high - low, features))
    out = carray(float32_pointer(a[5] + 4 * low * features), (high - low, features))
    rstd = carray(float32_pointer(a[4] + 4 * low), (high - low, 1))
    eps = np.float32(carray(float64_pointer(arguments), (10,))[9])
    weight, bias = carray(float32_pointer(a[1]), (features,)), carray(float32_pointer(a[2]), (features,))
    if a[1] and a[2]:
        cpu_loops.layer_norm_rows(x, weight, bias, eps, xhat, rstd, out)
    elif a[1]:
        cpu_loops.layer_norm_rows(x, weight, None, eps, xhat, rstd, out)
    elif a[2]:
        cpu_loops.layer_norm_rows(x, None, bias, eps, xhat, rstd, out)
    else:
        cpu_loops.layer_norm_rows(x, None, None, eps, xhat, rstd, out)


@_block
def _layer_norm_backward_block(arguments, block):
    a = carray(int64_pointer(arguments), (9,))
    rows, features, blocks = a[6], a[7], a[8]
    low, high = _span(rows, block, blocks)
    grad = carray(float32_pointer(a[0] + 4 * low * features), (high - low, features))
    xhat = carray(float32_pointer(a[1] + 4 * low * features), (high - low, features))
    grad_x = carray(float32_pointer(a[4] + 4 * low * features), (high - low, features))
    rstd = carray(float32_pointer(a[2] + 4 * low), (high - low, 1))
    sums = carray(float32_pointer(a[5]), (blocks, 2, features))
    if a[3]:
        weight = carray(float32_pointer(a[3]), (features,))
        cpu_loops.layer_norm_backward_rows(grad, xhat, rstd, weight, grad_x, sums[block, 0], sums[block, 1])
    else:
        cpu_loops.layer_norm_backward_rows(grad, xhat, rstd, None, grad_x, sums[block, 0], sums[block, 1])


def _address(array: np.ndarray | None) -> int:
    return 0 if array is None else array.ctypes.data


def layer_norm(rows, weight, bias, eps, xhat, rstd, out) -> bool:
    """cpu_loops.layer_norm_rows over (N, C) contiguous float32 rows, split over the team."""
    blocks = _blocks(rows.size, MIN_ELEMENTS, rows.shape[0])
    if blocks == 1:
        return False
    addresses = [_address(a) for a in (rows, weight, bias, xhat, rstd, out)]
    packed = _pack(*addresses, rows.shape[0], rows.shape[1], blocks, float(eps))
    row_blocks.team().run(_layer_norm_block.address, packed, blocks)
    return True


def layer_norm_backward(grad, xhat, rstd, weight, grad_x) -> np.ndarray | None:
    """grad_x in place; returns the column sums (2, C): dweight's and dbias's, block by block summed
    (None, and nothing done, for a job too small to share)."""
    rows, features = xhat.shape
    blocks = _blocks(xhat.size, MIN_ELEMENTS, rows)
    if blocks == 1:
        return None
    sums = np.zeros((blocks, 2, features), np.float32)
    packed = _pack(*(_address(a) for a in (grad, xhat, rstd, weight, grad_x, sums)), rows, features, blocks)
    row_blocks.team().run(_layer_norm_backward_block.address, packed, blocks)
    return sums.sum(axis=0)


# ---------------------------------------------------------------- attention (blocks of the batch)
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
    return (array.ctypes.data, array.shape[1], *array.strides[:3])


@numba.njit(inline="always", cache=True)
def _attention_fields(arguments, count):
    """The fields both attention launchers pack first: (slots, sgemm, batch, heads, queries, keys,
    dim, value dim, mask address, dropped address, blocks, scale)."""
    a = carray(int64_pointer(arguments), (count,))
    scale = np.float32(carray(float64_pointer(arguments), (count,))[10])
    return a, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], scale


@_block
def _attention_forward_block(arguments, block):
    a, sgemm_at, batch, heads, queries, keys, dim, value_dim, mask_at, dropped_at, blocks, scale = _attention_fields(
        arguments, 30
    )
    low, high = _span(batch, block, blocks)
    q = _heads_view(a, 11, low, high, queries, dim)
    v = _heads_view(a, 16, low, high, keys, value_dim)
    out = _heads_view(a, 21, low, high, queries, value_dim)
    k_t = _contiguous_heads(a[26], low, high, heads, dim, keys)
    probs = _contiguous_heads(a[27], low, high, heads, queries, keys)
    mask = carray(boolean_pointer(mask_at), (queries, keys))
    dropped = _contiguous_heads(dropped_at, low, high, heads, queries, keys)
    forward = cpu_attention.attention_forward_heads
    if mask_at and dropped_at:
        forward(sgemm_at, q, k_t, v, mask, scale, probs, dropped, out)
    elif mask_at:
        forward(sgemm_at, q, k_t, v, mask, scale, probs, None, out)
    elif dropped_at:
        forward(sgemm_at, q, k_t, v, None, scale, probs, dropped, out)
    else:
        forward(sgemm_at, q, k_t, v, None, scale, probs, None, out)


def attention_forward(q, k_t, v, mask, scale, probs, dropped, out) -> bool:
    """cpu_attention.attention_forward_heads over blocks of the batch: q, v, out (B, H, T, D) with
    contiguous rows; k_t, probs, dropped (or None) C-contiguous; mask (Tq, Tk) or None."""
    batch, heads, queries, dim = q.shape
    keys, value_dim = v.shape[2], v.shape[3]
    blocks = _blocks(probs.size, MIN_ELEMENTS, batch)
    if blocks == 1:
        return False
    sizes = (batch, heads, queries, keys, dim, value_dim, _address(mask), _address(dropped), blocks, float(scale))
    packed = _pack(_sgemm(), *sizes, *_packed_heads(q), *_packed_heads(v), *_packed_heads(out))
    packed = np.concatenate([packed, _pack(k_t.ctypes.data, probs.ctypes.data, 0, 0)])
    row_blocks.team().run(_attention_forward_block.address, packed, blocks)
    return True


@_block
def _attention_backward_block(arguments, block):
    a, sgemm_at, batch, heads, queries, keys, dim, value_dim, _, dropped_at, blocks, scale = _attention_fields(
        arguments, 43
    )
    low, high = _span(batch, block, blocks)
    q, k = _heads_view(a, 11, low, high, queries, dim), _heads_view(a, 16, low, high, keys, dim)
    grad = _heads_view(a, 21, low, high, queries, value_dim)
    grad_q, grad_k = _heads_view(a, 26, low, high, queries, dim), _heads_view(a, 31, low, high, keys, dim)
    grad_v = _heads_view(a, 36, low, high, keys, value_dim)
    v_t = _contiguous_heads(a[41], low, high, heads, value_dim, keys)
    probs = _contiguous_heads(a[42], low, high, heads, queries, keys)
    dropped = _contiguous_heads(dropped_at, low, high, heads, queries, keys)
    backward = cpu_attention.attention_backward_heads
    if dropped_at:
        backward(sgemm_at, q, k, v_t, probs, dropped, grad, scale, grad_q, grad_k, grad_v)
    else:
        backward(sgemm_at, q, k, v_t, probs, None, grad, scale, grad_q, grad_k, grad_v)


def attention_backward(q, k, v_t, probs, dropped, grad, scale, grad_q, grad_k, grad_v) -> bool:
    """cpu_attention.attention_backward_heads over blocks of the batch (layouts as attention_forward)."""
    batch, heads, queries, dim = q.shape
    keys, value_dim = k.shape[2], v_t.shape[2]
    blocks = _blocks(probs.size, MIN_ELEMENTS, batch)
    if blocks == 1:
        return False
    sizes = (batch, heads, queries, keys, dim, value_dim, 0, _address(dropped), blocks, float(scale))
    views = [value for array in (q, k, grad, grad_q, grad_k, grad_v) for value in _packed_heads(array)]
    packed = _pack(_sgemm(), *sizes, *views, v_t.ctypes.data, probs.ctypes.data)
    row_blocks.team().run(_attention_backward_block.address, packed, blocks)
    return True
