"""Dropout, fast on the CPU (reference.dropout_forward / dropout_backward, docs/derivations/dropout.md):
the mask made in place from the draws (same draws, same mask as the reference), over row blocks."""

from __future__ import annotations

from typing import Any

from ... import backend
from ...backend import xp_of
from ..reference import Array
from ..runtime import row_blocks


def dropout_mask(shape: tuple[int, ...], p: float, dtype: Any, device: str) -> Array:
    """Keep each element with probability 1 - p, scaled by 1/(1 - p): 0 or 1/(1-p), from backend.rng."""
    draws = backend.rng(device).random(shape, dtype="float32")  # one generator: drawn in order, on one core
    mask = draws if draws.dtype == dtype else xp_of(draws).empty(shape, dtype)
    row_blocks.in_row_blocks(lambda block, out: _keep_scaled_into(block, out, p), draws, mask)
    return mask


def _keep_scaled_into(draws, out, p):
    """out = (draws >= p) / (1 - p); ``out`` may be ``draws`` itself."""
    xp_of(draws).greater_equal(draws, p, out=out)
    out *= 1.0 / (1.0 - p)


def dropout_forward(x: Array, p: float) -> tuple[Array, Array]:
    mask = dropout_mask(x.shape, p, x.dtype, backend.device_of(x))
    return x * mask, mask


def dropout_backward(mask: Array, grad: Array) -> Array:
    return grad * mask
