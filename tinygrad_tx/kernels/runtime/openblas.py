"""NumPy's own OpenBLAS, reached through ctypes: its thread count, and its sgemm for compiled loops.

NumPy's wheels bundle an OpenBLAS (``numpy.libs/libscipy_openblas64_*.so``). Two of its functions
are useful beyond what NumPy exposes:

- ``openblas_set_num_threads`` / ``openblas_get_num_threads``: row_blocks holds OpenBLAS to one
  thread while blocks run side by side, and lets its thread count follow the free cores.
- ``cblas_sgemm`` (the ILP64 build: 64-bit integer arguments): compiled loops call it without going
  back to Python, once per attention head (cpu/attention_heads.py) and once per band of a Linear GEMM
  that the team splits between the cores (cpu/linear.py).

Both are looked up on first use (``import tinygrad_tx`` loads no library); where NumPy uses another
BLAS they are missing, and the callers keep their NumPy paths.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from typing import Any

import numpy as np

_lock = threading.Lock()
_libraries: list[ctypes.CDLL] | None = None


def _bundled_libraries() -> list[ctypes.CDLL]:
    """The OpenBLAS libraries in NumPy's wheel folder that load, loaded once."""
    global _libraries
    with _lock:
        if _libraries is None:
            folder = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
            names = ("libscipy_openblas*", "libopenblas*")
            _libraries = []
            for path in [path for name in names for path in glob.glob(os.path.join(folder, name))]:
                try:
                    _libraries.append(ctypes.CDLL(path))
                except OSError:
                    continue
    return _libraries


def thread_functions() -> tuple[Any, Any] | tuple[()]:
    """(set, get) of the bundled OpenBLAS's thread count, or () for another BLAS."""
    for library in _bundled_libraries():
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    return setter, getter
    return ()


_SGEMM_NAMES = ("scipy_cblas_sgemm64_", "cblas_sgemm64_")
_sgemm: list[int | None] = []  # the address, once looked up


def sgemm_address() -> int | None:
    """The address of the bundled ILP64 ``cblas_sgemm`` (row-major calls, 64-bit sizes), or None."""
    if not _sgemm:
        found = (getattr(library, name, None) for library in _bundled_libraries() for name in _SGEMM_NAMES)
        function = next((function for function in found if function is not None), None)
        _sgemm.append(None if function is None else ctypes.cast(function, ctypes.c_void_p).value)
    return _sgemm[0]
