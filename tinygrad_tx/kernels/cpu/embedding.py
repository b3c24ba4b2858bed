"""Embedding's backward, fast on the CPU (reference.embedding_backward, docs/derivations/embedding.md):
the same scatter-add by whichever method is fastest for the table size."""

from __future__ import annotations

from ...backend import xp_of
from ..reference import Array

# Below this many table rows a one-hot matmul is the fastest CPU scatter-add; above it, sorting the
# indices and summing runs (np.add.reduceat). Measured on the 2-core box, rows (16384, 384) float32:
# 65 rows: add.at 53 ms, one-hot 8 ms, sort 15 ms; 2048 rows: add.at 54 ms, one-hot 154 ms, sort 25 ms.
ONE_HOT_MAX_ROWS = 256


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
