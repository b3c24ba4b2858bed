"""Run ``tinygrad_tx.kernels.cuda``'s own launch functions with every kernel emulated.

``emulated_gpu()`` hands ``kernels/cuda/`` a minimal ``cupy`` namespace whose arrays are NumPy arrays and
whose ``RawModule``/``ElementwiseKernel`` compile with real NVRTC (``nvrtc.py``) and execute in the PTX
interpreter. The launch code of ``kernels/cuda/`` (grid, block, argument order and types) is therefore the
code under test too, not a copy of it. Fresh outputs are filled with NaN, so an element a kernel forgets
to write shows up in the comparison. This is only the kernels' harness: the strict CuPy stand-in that
runs whole models is a separate piece (branch wip-standin).
"""

from __future__ import annotations

import contextlib
import functools
import unittest.mock

import numpy as np

from tinygrad_tx.kernels import cuda
from tinygrad_tx.kernels.cuda import common

from .elementwise import run_elementwise, scalar_inputs
from .interpreter import launch
from .nvrtc import compile_to_ptx
from .ptx import entry_names
from .sources import ElementwiseSource

ARCH = "90"


@functools.lru_cache(maxsize=32)
def _module_ptx(code: str, options: tuple) -> str:
    return compile_to_ptx(code, ARCH, options)


class RawKernel:
    def __init__(self, ptx: str, name: str):
        self.ptx, self.name = ptx, name

    def __call__(self, grid, block, args, shared_mem: int = 0) -> None:
        launch(self.ptx, self.name, grid, block, list(args), shared_mem)


class RawModule:
    def __init__(self, code: str, options: tuple = (), **unused):
        self.ptx = _module_ptx(code, tuple(options))

    def get_function(self, name: str) -> RawKernel:
        if name not in entry_names(self.ptx):
            raise RuntimeError(f"CUDA_ERROR_NOT_FOUND: named symbol not found: {name}")
        return RawKernel(self.ptx, name)


# (source, dtype name, scalar parameter names) of every ElementwiseKernel call made under emulated_gpu():
# the compile tests compile exactly these, as kernels/cuda/ launches them
ELEMENTWISE_LAUNCHES = set()


class ElementwiseKernel:
    def __init__(self, in_params: str, out_params: str, operation: str, name: str = "kernel", **unused):
        self.source = ElementwiseSource(name, in_params, out_params, operation, name)

    def __call__(self, *args):
        dtype = next(a.dtype for a in args if isinstance(a, np.ndarray))
        ELEMENTWISE_LAUNCHES.add((self.source, dtype.name, scalar_inputs(self.source, args)))
        return run_elementwise(self.source, *args)


def _nan_like(array, dtype=None):
    return np.full_like(array, np.nan, dtype=dtype)


def _nan_array(shape, dtype=np.float64):  # CuPy's default dtype, as NumPy's
    return np.full(shape, np.nan, dtype=dtype)


class EmulatedCupy:
    """The few ``cupy`` names ``kernels/cuda/`` uses, on NumPy arrays."""

    RawModule = RawModule
    ElementwiseKernel = ElementwiseKernel
    ascontiguousarray = staticmethod(np.ascontiguousarray)
    empty_like = staticmethod(_nan_like)
    empty = staticmethod(_nan_array)
    float32, float64 = np.float32, np.float64


@contextlib.contextmanager
def emulated_gpu(row_source: str | None = None):
    """Within the block, ``cuda.<op>(numpy arrays)`` runs the CUDA kernels emulated; ``row_source``
    replaces the RawModule code (mutation tests)."""
    patches = [unittest.mock.patch.object(common.backend, "array_module", lambda device: EmulatedCupy)]
    if row_source is not None:
        patches.append(unittest.mock.patch.object(common, "row_source", lambda: row_source))
    common.kernels.cache_clear()
    try:
        with contextlib.ExitStack() as stack:
            for patch in patches:
                stack.enter_context(patch)
            yield cuda
    finally:
        common.kernels.cache_clear()
