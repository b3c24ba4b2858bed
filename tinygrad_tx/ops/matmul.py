"""Matrix product with NumPy's semantics: 1-D, 2-D, batched, broadcast batch dimensions.

Derivation: docs/derivations/matmul.md. For C = A B:  dA = dC B^T,  dB = A^T dC, with 1-D operands
promoted to matrices first and broadcast batch dimensions summed back (unbroadcast).
"""

import math

from ..backend import xp_of
from ..errors import ShapeError
from ..function import Function
from .elementwise import unbroadcast


def _check_shapes(a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(
            f"matmul: operands must have at least 1 dimension, got shapes {tuple(a.shape)} and "
            f"{tuple(b.shape)} (use * to multiply by a scalar)"
        )
    inner_a = a.shape[-1]
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ShapeError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} do not align ({inner_a} != {inner_b})")


def as_rows(x):
    """(..., n) -> (N, n); the row count is spelled out because -1 is ambiguous when n is 0."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


class MatMul(Function):
    """``a @ b``. A stack of rows times one matrix runs as a single GEMM (rows flattened)."""

    @staticmethod
    def forward(ctx, a, b):
        _check_shapes(a, b)
        xp = xp_of(a)
        ctx.save_for_backward(a, b)
        if a.ndim > 2 and b.ndim == 2:
            # (..., n, k) @ (k, m) as one (N, k) @ (k, m) GEMM instead of one small GEMM per batch
            return (as_rows(a) @ b).reshape(a.shape[:-1] + (b.shape[-1],))
        try:
            return xp.matmul(a, b)
        except ValueError:
            raise ShapeError(
                f"matmul: batch dimensions of {tuple(a.shape)} and {tuple(b.shape)} cannot be broadcast together"
            ) from None

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need = ctx.needs_input_grad
        xp = xp_of(grad)
        if a.ndim > 2 and b.ndim == 2:
            rows_a, rows_g = as_rows(a), as_rows(grad)
            return ((rows_g @ b.T).reshape(a.shape) if need[0] else None, rows_a.T @ rows_g if need[1] else None)
        # promote 1-D operands to matrices so one formula covers every case
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = grad
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2 if b.ndim > 1 else -1)
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        grad_a = grad_b = None
        if need[0]:
            grad_a = unbroadcast(xp.matmul(g2, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if need[1]:
            grad_b = unbroadcast(xp.matmul(xp.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return grad_a, grad_b
