"""Fast CPU elementwise ops: GELU (with a fast float32 erf), dropout and the AdamW update.

The same functions as reference.py, with the same signatures and results up to float32 rounding
(tests/test_kernels*.py prove it), written for speed: GELU's exact form in float32 and AdamW run as
one compiled loop each (cpu_loops.py), everything else as NumPy ``out=`` chains, on every core
(``row_blocks.in_row_blocks``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..backend import xp_of
from . import reference, row_blocks
from .reference import INV_SQRT_2PI, SQRT_2_OVER_PI, SQRT_HALF, TANH_CUBIC, Array


def compiled_loops():
    """cpu_loops, imported on first use (numba takes ~0.3 s to import; ``import tinygrad_tx`` stays light)."""
    from . import cpu_loops

    return cpu_loops


def team_kernels():
    """team_blocks (imported on first use) when tune_for_training() started the team, else None. Its
    launchers return False for a job too small to share: the caller then runs its own path."""
    if row_blocks.team() is None:
        return None
    from . import team_blocks

    return team_blocks


def _flat(array: Array) -> Array:
    return xp_of(array).ascontiguousarray(array).reshape(-1)


# ---------------------------------------------------------------- erf and GELU
def erf(x: Array) -> Array:
    """The error function of a float array, elementwise (NumPy has none; scipy is not a dependency).

    float64: the reference's everywhere-positive series (error ~2e-15), slow but exact enough for
    gradchecks. float32: cpu_loops' fitted rational x P(x^2)/Q(x^2), within 4e-7 of erf, one compiled
    pass on every core. Other dtypes go through float32.
    """
    if x.dtype == np.float64:
        return reference.erf(x)
    flat = _flat(x.astype(np.float32, copy=False))
    out = np.empty_like(flat)
    row_blocks.in_row_blocks(compiled_loops().erf_float32, flat, out)
    return out.reshape(x.shape).astype(x.dtype, copy=False)


def _gate(x: Array, approximate: str) -> Array:
    """reference.gelu_gate in place: Phi(x) through the fast erf, or the tanh form."""
    xp = xp_of(x)
    if approximate == "none":
        gate = erf(x * SQRT_HALF)  # becomes Phi(x)
        gate += 1.0
        gate *= 0.5
        return gate
    gate = x * x
    gate *= TANH_CUBIC
    gate += 1.0
    gate *= x
    gate *= SQRT_2_OVER_PI
    return xp.tanh(gate, out=gate)  # t = tanh(sqrt(2/pi) (x + 0.044715 x^3))


def gelu_forward(x: Array, approximate: str) -> Array:
    if approximate == "none" and x.dtype == np.float32:  # one compiled pass on every core
        out = np.empty(x.size, x.dtype)
        team = team_kernels()
        if team is None or not team.gelu(_flat(x), out):
            row_blocks.in_row_blocks(compiled_loops().gelu_exact_forward, _flat(x), out)
        return out.reshape(x.shape)
    gate = _gate(x, approximate)
    if approximate == "none":
        gate *= x
        return gate
    gate += 1.0
    gate *= 0.5
    gate *= x
    return gate


def gelu_backward(x: Array, grad: Array, approximate: str) -> Array:
    if approximate == "none" and x.dtype == grad.dtype == np.float32:  # Phi recomputed inside the loop
        slope = np.empty(x.size, x.dtype)
        team = team_kernels()
        if team is None or not team.gelu(_flat(x), slope, _flat(grad)):
            row_blocks.in_row_blocks(compiled_loops().gelu_exact_backward, _flat(x), _flat(grad), slope)
        return slope.reshape(x.shape)
    gate = _gate(x, approximate)
    if approximate == "none":
        slope = x * x
        slope *= -0.5
        np.exp(slope, out=slope)
        slope *= INV_SQRT_2PI  # phi(x), the standard normal density
        slope *= x
        slope += gate
    else:
        slope = x * x
        slope *= 3.0 * TANH_CUBIC
        slope += 1.0
        slope *= SQRT_2_OVER_PI
        slope *= 1.0 - gate * gate
        slope *= x
        slope += 1.0 + gate
        slope *= 0.5
    slope *= grad
    return slope


# ---------------------------------------------------------------- dropout
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


# ---------------------------------------------------------------- AdamW
def adamw_update(
    param: Array,
    grad: Array,
    exp_avg: Array,
    exp_avg_sq: Array,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: int,
) -> None:
    """In place, in one compiled pass over contiguous arrays of one dtype (the optimizer's own); the
    reference otherwise. The scalars are rounded to the arrays' dtype first, as NumPy rounds them."""
    arrays = (param, grad, exp_avg, exp_avg_sq)
    if xp_of(param) is not np or any(a.dtype != param.dtype or not a.flags.c_contiguous for a in arrays):
        reference.adamw_update(*arrays, lr, beta1, beta2, eps, weight_decay, step)
        return
    scalars = (1 - lr * weight_decay, beta1, beta2, lr / (1 - beta1**step), math.sqrt(1 - beta2**step), eps)
    team = team_kernels()
    if team is not None and param.dtype == np.float32 and team.adamw(*arrays, *scalars):
        return
    update = compiled_loops().adamw_flat
    row_blocks.in_row_blocks(
        lambda *blocks: update(*blocks, *(param.dtype.type(s) for s in scalars)), *(a.reshape(-1) for a in arrays)
    )
