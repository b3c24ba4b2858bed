"""NCCL and CUDA-stream helpers for ``NCCLCommunicator`` (comm.py): the only GPU calls data-parallel makes.

CuPy itself comes from ``backend.cupy_module()`` (backend.py stays the one file that imports it), so
these helpers raise the usual one-line DeviceError where no GPU is usable.
"""

import importlib

import numpy as np

from .. import backend
from ..errors import DeviceError

_NCCL_TYPES = {
    np.dtype(np.float32): "NCCL_FLOAT32",
    np.dtype(np.float64): "NCCL_FLOAT64",
    np.dtype(np.float16): "NCCL_FLOAT16",
}


def nccl_module():
    """``cupy.cuda.nccl`` when this CuPy was built with NCCL, else None (the caller falls back to MPI)."""
    cuda = backend.cupy_module().cuda
    if not hasattr(cuda, "__path__"):  # not CuPy's cuda package (the tests' CuPy stand-in): no NCCL there
        return None
    try:  # a submodule CuPy builds only with NCCL; imported by name so type checkers need no CuPy stubs
        nccl = importlib.import_module(f"{cuda.__name__}.nccl")
    except ImportError:
        return None
    return nccl if getattr(nccl, "available", True) and hasattr(nccl, "NcclCommunicator") else None


def nccl_dtype(dtype):
    """NCCL's constant for a NumPy dtype (float32, float64, float16); DeviceError for any other."""
    if np.dtype(dtype) not in _NCCL_TYPES:
        raise DeviceError(f"nccl: no NCCL type for dtype {np.dtype(dtype)}")
    return getattr(nccl_module(), _NCCL_TYPES[np.dtype(dtype)])


def gpu_current_stream():
    return backend.cupy_module().cuda.get_current_stream()


def gpu_side_stream():
    """A new non-blocking CUDA stream (communication overlapping the compute stream)."""
    return backend.cupy_module().cuda.Stream(non_blocking=True)


def gpu_record_event(stream=None):
    """An event recorded now on ``stream`` (default: the current stream)."""
    return (stream or gpu_current_stream()).record()


def gpu_stream_wait(event, stream=None):
    """Make ``stream`` (default: the current one) wait for ``event`` without blocking the host."""
    (stream or gpu_current_stream()).wait_event(event)
