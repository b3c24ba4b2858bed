"""The AdamW update, fast on the CPU (reference.adamw_update, docs/derivations/adamw.md): in place, one
compiled pass over contiguous arrays of one dtype (``adamw_flat``), on the row blocks or the team."""

from __future__ import annotations

import math

import numpy as np
from numba import carray

from ...backend import xp_of
from .. import reference
from ..reference import Array
from ..runtime import jobs, row_blocks
from ..runtime.native import float32_pointer, float64_pointer, int64_pointer
from ..runtime.slots import Slots
from .common import loop


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
    if row_blocks.team() is not None and param.dtype == np.float32 and _on_team(*arrays, *scalars):
        return
    row_blocks.in_row_blocks(
        lambda *blocks: adamw_flat(*blocks, *(param.dtype.type(s) for s in scalars)), *(a.reshape(-1) for a in arrays)
    )


@loop
def adamw_flat(param, grad, exp_avg, exp_avg_sq, decay, beta1, beta2, step_size, bias_root, eps):
    """One pass of the reference's update; every scalar has the arrays' dtype (as NumPy rounds them)."""
    one = param.dtype.type(1)
    for i in range(param.size):
        g = grad[i]
        m = beta1 * exp_avg[i] + (one - beta1) * g
        v = beta2 * exp_avg_sq[i] + (one - beta2) * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        param[i] = param[i] * decay - step_size * m / (math.sqrt(v) / bias_root + eps)


def warm_up() -> None:
    """Compile (or load from numba's cache) the loop for float32 parameters."""
    flat, one = np.ones(8, np.float32), np.float32(1)
    adamw_flat(flat.copy(), flat, flat.copy(), flat.copy(), one, one, one, one, one, one)


# ---------------------------------------------------------------- on the team: blocks of elements
SLOTS = Slots(
    "adamw", "param", "grad", "exp_avg", "exp_avg_sq", "count", "blocks",
    floats=("decay", "beta1", "beta2", "step_size", "bias_root", "eps"),
)  # fmt: skip
_S = SLOTS.at


@jobs.block_function
def _block(arguments, block):
    a = carray(int64_pointer(arguments), (_S.size,))
    scalars = carray(float64_pointer(arguments), (_S.size,))
    low, high = jobs.span(a[_S.count], block, a[_S.blocks])
    param = carray(float32_pointer(a[_S.param] + 4 * low), (high - low,))
    grad = carray(float32_pointer(a[_S.grad] + 4 * low), (high - low,))
    exp_avg = carray(float32_pointer(a[_S.exp_avg] + 4 * low), (high - low,))
    exp_avg_sq = carray(float32_pointer(a[_S.exp_avg_sq] + 4 * low), (high - low,))
    decay, beta1, beta2 = np.float32(scalars[_S.decay]), np.float32(scalars[_S.beta1]), np.float32(scalars[_S.beta2])
    step_size, bias_root = np.float32(scalars[_S.step_size]), np.float32(scalars[_S.bias_root])
    adamw_flat(param, grad, exp_avg, exp_avg_sq, decay, beta1, beta2, step_size, bias_root, np.float32(scalars[_S.eps]))


def _on_team(param, grad, exp_avg, exp_avg_sq, decay, beta1, beta2, step_size, bias_root, eps) -> bool:
    """adamw_flat over contiguous float32 arrays, in place, split over the team (the scalars rounded
    to float32 in the blocks); False (nothing done) for a job too small to share."""
    blocks = jobs.blocks_for(param.size, jobs.MIN_ELEMENTS, param.size)
    if blocks == 1:
        return False
    arguments = SLOTS.pack(
        param=param.ctypes.data, grad=grad.ctypes.data, exp_avg=exp_avg.ctypes.data, exp_avg_sq=exp_avg_sq.ctypes.data,
        count=param.size, blocks=blocks, decay=decay, beta1=beta1, beta2=beta2, step_size=step_size,
        bias_root=bias_root, eps=eps,
    )  # fmt: skip
    row_blocks.team().run(_block.address, arguments, blocks)
    return True
