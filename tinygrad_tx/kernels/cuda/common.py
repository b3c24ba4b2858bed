"""What the CUDA kernels share: the device helpers every row kernel uses, compiling (once) and
launching, and the check that the row kernels apply.

Each op module (cuda/<op>.py) holds its kernel's source and registers it here: the row kernels'
sources go into one ``RawModule`` after ``DEVICE_HELPERS`` (``row_source()``), the elementwise
kernels come from the factories the op modules register. ``kernels()`` compiles everything on first
use. CuPy comes from ``tinygrad_tx.backend`` (never imported here).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from ... import backend

THREADS = 256  # threads per row block; a power of two for the shared-memory tree reduction

DEVICE_HELPERS = r"""
// NVRTC (CuPy's compiler) has no math.h, so INFINITY is undefined there (nvcc would accept it): -inf by its bits.
#define NEGATIVE_INFINITY __int_as_float(0xff800000)

__device__ float block_reduce(float value, float* buffer, bool take_max) {
    buffer[threadIdx.x] = value;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) {
            float other = buffer[threadIdx.x + half];
            buffer[threadIdx.x] = take_max ? fmaxf(buffer[threadIdx.x], other) : buffer[threadIdx.x] + other;
        }
        __syncthreads();
    }
    float result = buffer[0];
    __syncthreads();  // every thread has read buffer[0] before it is reused
    return result;
}

"""

_row_sources: list[tuple[str, tuple[str, ...]]] = []  # (source, entry points), in registration order
_elementwise_factories: list[Callable[[Any], dict[str, Any]]] = []


def row_kernels(source: str, *names: str) -> str:
    """Register an op's row-kernel source and its ``extern "C"`` entry points; returns the source."""
    _row_sources.append((source, names))
    return source


def elementwise_kernels(factory: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """Register a factory ``cupy -> {name: ElementwiseKernel}``."""
    _elementwise_factories.append(factory)
    return factory


def row_source() -> str:
    """The one RawModule source: the device helpers, then every registered op's row kernels."""
    return DEVICE_HELPERS + "".join(source for source, _ in _row_sources)


@functools.cache
def kernels() -> dict[str, Any]:
    """Compile (once) and return every kernel, keyed by name."""
    cupy = backend.array_module("gpu")
    rows = cupy.RawModule(code=row_source())
    compiled = {name: rows.get_function(name) for _, names in _row_sources for name in names}
    for factory in _elementwise_factories:
        compiled.update(factory(cupy))
    return compiled


def fits_row_kernel(*arrays) -> bool:
    """True when every array is a float32 CuPy array (the row kernels' case); None entries are skipped."""
    present = [a for a in arrays if a is not None]
    return bool(present) and all(backend.is_gpu_array(a) and a.dtype == np.float32 for a in present)


def rows(array):
    """A C-contiguous (rows, cols) view (or copy) of ``array`` over its last axis."""
    cupy = backend.array_module("gpu")
    return cupy.ascontiguousarray(array).reshape(-1, array.shape[-1])


def launch(name: str, count: int, *args) -> None:
    """Run row kernel ``name`` with one THREADS-thread block per row, ``count`` rows."""
    if count:  # CUDA rejects an empty grid; zero rows need no work
        kernels()[name]((count,), (THREADS,), args)
