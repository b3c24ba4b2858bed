"""What every team job shares: the block-function decorator, how many blocks a job gets, and a
block's share of the rows. The op modules (kernels/cpu/<op>.py) write their block functions with
these; the team (team.py) runs them.

A block function is declared with ``@block_function`` and compiled (numba ``cfunc``, cached on disk)
the first time its ``address`` is asked for, or by ``compile_blocks()``, which ``team.warm_up()``
calls: declaring one registers it, so the runtime needs to import no op module to warm them up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numba import types

from . import openblas, row_blocks

BLOCKS_PER_WORKER = 2  # a worker the scheduler holds up costs one small block, not half the job
MIN_ELEMENTS = 1 << 15  # below this a kernel runs as one block on the caller: no hand-off pays

_cfunc = numba.cfunc(types.void(types.int64, types.int64), nogil=True, cache=True, error_model="numpy")
_declared: list[BlockFunction] = []


class BlockFunction:
    """A ``void(int64 arguments, int64 block)`` function for the team, compiled on first use."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self._compiled: Any = None
        _declared.append(self)

    @property
    def address(self) -> int:
        if self._compiled is None:
            self._compiled = _cfunc(self.function)
        return self._compiled.address


def block_function(function: Callable[..., Any]) -> BlockFunction:
    return BlockFunction(function)


def compile_blocks() -> None:
    """Compile (or load from numba's cache) every block function declared so far."""
    for declared in _declared:
        declared.address  # noqa: B018  (compiles it)


def sgemm() -> int:
    """The bundled OpenBLAS's sgemm (the team only starts where there is one: team.start)."""
    address = openblas.sgemm_address()
    if address is None:
        raise RuntimeError("the team's kernels need NumPy's bundled OpenBLAS (kernels/runtime/openblas.py)")
    return address


def blocks_for(work: int, minimum: int, most: int) -> int:
    """How many blocks a job of ``work`` units gets on the current team (1: run it on the caller)."""
    workers = row_blocks.team().helpers + 1
    return 1 if work < minimum else max(1, min(most, BLOCKS_PER_WORKER * workers))


def address_of(array: np.ndarray | None) -> int:
    """An array's data address for a slot; 0 for None (the block function then passes None on)."""
    return 0 if array is None else array.ctypes.data


@numba.njit(inline="always", cache=True)
def span(count, block, blocks):
    """[low, high) of ``count`` rows for block ``block`` of ``blocks``."""
    return count * block // blocks, count * (block + 1) // blocks
