"""Linear, fast on the CPU: one GEMM over the rows (reference.linear_forward / linear_backward,
docs/derivations/matmul.md), NumPy's matmul, or split over the team's threads.

After tune_for_training() started the team, ``matmuls`` runs each product as a team job: OpenBLAS's
sgemm called from a block function on one band of C's rows per core, or several independent
products (a layer's dx and dW) side by side, one per core.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import carray

from .. import reference
from ..reference import Array
from ..runtime import jobs, row_blocks
from ..runtime.native import PLAIN, TRANSPOSED, int64_pointer, sgemm
from ..runtime.slots import Slots

MIN_GEMM_PRODUCTS = 1 << 20  # m * n * k below which a GEMM runs as one block
# GEMMs: one band per worker. sgemm is most efficient on whole matrices, and a spinning helper joins
# within a microsecond, so smaller bands would only cost efficiency (measured: 2 bands of a 768 x 128
# x 384 GEMM match OpenBLAS's own two threads; 4 bands are 5-10% slower).
GEMM_BANDS_PER_WORKER = 1


def linear_forward(rows: Array, weight: Array, bias: Array | None) -> Array:
    """NumPy's matmul, or split over the team of threads once tune_for_training() started it."""
    row_blocks.fit_blas_threads()  # after tune_for_training(): use the cores other programs leave free
    out = rows @ weight.T if row_blocks.team() is None else matmul(rows, weight.T)
    if bias is not None:
        out += bias
    return out


def linear_backward(
    grad_rows: Array, rows: Array, weight: Array, needs: tuple[bool, bool, bool]
) -> tuple[Array | None, Array | None, Array | None]:
    if row_blocks.team() is None:
        return reference.linear_backward(grad_rows, rows, weight, needs)
    need_x, need_weight, need_bias = needs
    products = [(grad_rows, weight)] * need_x + [(grad_rows.T, rows)] * need_weight
    grads = iter(matmuls(*products))
    return (
        next(grads) if need_x else None,
        next(grads) if need_weight else None,
        grad_rows.sum(axis=0) if need_bias else None,
    )


# ---------------------------------------------------------------- GEMMs on the team
GEMM_JOB = Slots("gemm job", "products", "pieces")  # then GEMM.size slots per product
GEMM = Slots("gemm", "sgemm", "trans_a", "trans_b", "m", "n", "k", "a", "lda", "b", "ldb", "c", "ldc")
_J, _G = GEMM_JOB.at, GEMM.at


@jobs.block_function
def _gemm_block(arguments, block):
    """A share of one of several products C = op(A) op(B): products[block // pieces] cut into
    ``pieces`` bands of C's rows (of its columns when C is wider than tall)."""
    pieces = carray(int64_pointer(arguments), (_J.size,))[_J.pieces]
    g = carray(int64_pointer(arguments + 8 * (_J.size + _G.size * (block // pieces))), (_G.size,))
    address, trans_a, trans_b, m, n, k = g[_G.sgemm], g[_G.trans_a], g[_G.trans_b], g[_G.m], g[_G.n], g[_G.k]
    a_at, lda, b_at, ldb, c_at, ldc = g[_G.a], g[_G.lda], g[_G.b], g[_G.ldb], g[_G.c], g[_G.ldc]
    one, zero = np.float32(1.0), np.float32(0.0)
    piece = block % pieces
    if m >= n:
        low, high = jobs.span(m, piece, pieces)
        a_at += 4 * low * (lda if trans_a == PLAIN else 1)
        sgemm(address, trans_a, trans_b, high - low, n, k, one, a_at, lda, b_at, ldb, zero, c_at + 4 * low * ldc, ldc)
    else:
        low, high = jobs.span(n, piece, pieces)
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
    packed = []
    for index, (a, b) in enumerate(products):
        left, right = (_gemm_operand(a), _gemm_operand(b)) if a.dtype == b.dtype == np.float32 else (None, None)
        if left is None or right is None or 0 in a.shape + b.shape:
            results[index] = a @ b
            continue
        (trans_a, lda), (trans_b, ldb) = left, right
        (m, k), n = a.shape, b.shape[1]
        out = results[index] = np.empty((m, n), np.float32)
        packed.append(
            GEMM.pack(
                sgemm=jobs.sgemm(),
                trans_a=trans_a,
                trans_b=trans_b,
                m=m,
                n=n,
                k=k,
                a=a.ctypes.data,
                lda=lda,
                b=b.ctypes.data,
                ldb=ldb,
                c=out.ctypes.data,
                ldc=n,
            )  # fmt: skip
        )
    if packed:
        workers = row_blocks.team().helpers + 1
        smallest = min(min(product[_G.m], product[_G.n]) for product in packed)
        bands = -(-workers * GEMM_BANDS_PER_WORKER // len(packed))  # per product, rounded up
        pieces = max(1, min(smallest, bands))
        arguments = np.concatenate([GEMM_JOB.pack(products=len(packed), pieces=pieces), *packed])
        row_blocks.team().run(_gemm_block.address, arguments, len(packed) * pieces)
    return results


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b on the team (see matmuls)."""
    return matmuls((a, b))[0]
