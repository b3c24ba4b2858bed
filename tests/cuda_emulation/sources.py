"""The CUDA sources of ``tinygrad_tx.kernels.cuda``, taken from the package itself (never a copy).

``row_source()`` is the ``RawModule`` code string (``cuda/common.py``'s helpers, then each op's row
kernels). ``elementwise_kernels()`` runs the module's own
kernel factory against a recorder standing in for the ``cupy`` module, so each ``ElementwiseKernel``
is captured with exactly the parameter, operation and name strings the GPU path passes CuPy.
``LAUNCH_DTYPES`` says which dtypes each elementwise kernel is launched with (GELU and AdamW follow
the parameters' dtype: float32 by default, float64 in gradchecks).
"""

import dataclasses
import unittest.mock

import numpy as np

from tinygrad_tx.kernels.cuda import common

LAUNCH_DTYPES = (np.float32, np.float64)


@dataclasses.dataclass(frozen=True)
class ElementwiseSource:
    """The four strings of one ``cupy.ElementwiseKernel(in_params, out_params, operation, name)`` call."""

    key: str
    in_params: str
    out_params: str
    operation: str
    name: str


def row_source() -> str:
    return common.row_source()


class _RecordingCupy:
    """Just the two constructors ``cuda.common.kernels`` calls; records the ElementwiseKernel arguments."""

    class RawModule:
        def __init__(self, code: str, **options):
            self.code = code

        def get_function(self, name: str) -> str:
            return name

    class ElementwiseKernel:
        def __init__(self, in_params: str, out_params: str, operation: str, name: str, **options):
            self.strings = (in_params, out_params, operation, name)


def elementwise_kernels() -> dict:
    """{key in ``cuda.common.kernels()``: ElementwiseSource} for every ElementwiseKernel the GPU path builds."""
    factory = getattr(common.kernels, "__wrapped__", common.kernels)  # skip the cache
    with unittest.mock.patch.object(common.backend, "array_module", lambda device: _RecordingCupy):
        built = factory()
    return {
        key: ElementwiseSource(key, *kernel.strings)
        for key, kernel in built.items()
        if isinstance(kernel, _RecordingCupy.ElementwiseKernel)
    }


def row_kernel_names() -> list:
    """The ``extern "C" __global__`` entry points of the RawModule source, in source order."""
    import re

    return re.findall(r'extern "C" __global__ void (\w+)\(', row_source())
