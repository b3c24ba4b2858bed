"""ElementwiseKernels compiled and run exactly as CuPy would generate them.

Faithfulness: the CUDA code compiled here is the code CuPy itself generates for the kernel
(``cupy._core._kernel._get_elementwise_kernel_code``, fed the argument descriptions CuPy builds at
launch: C-contiguous arrays reduced to one dimension, and a by-value parameter for each input the
call passes a NumPy scalar, as cuda/adamw.py does), compiled with CuPy's header
prelude and options. That beats wrapping the operation string in a hand-made kernel: the ``CArray`` /
``CIndexer`` indexing, the ``CUPY_FOR`` grid-stride loop, the ``typedef`` of ``T`` and the overloads
the CuPy headers bring into scope (``erf``, ``exp``, ``tanh``, ``sqrt`` on ``float`` vs ``double``)
are all the real ones, so a name that resolves differently under CuPy's headers is caught too.
The price is two private CuPy names (``_get_elementwise_kernel_code``, ``_ArgInfo``); if a CuPy
upgrade moves them, these tests fail loudly rather than silently checking something else.

Running: the generated PTX goes through ``interpreter.launch`` with the ``CArray`` and ``CIndexer``
structs packed as CuPy packs them (``Struct``), launched as ``ElementwiseKernel.__call__`` launches
(``BLOCK`` threads per block, enough blocks to cover the elements).
"""

import functools

import numpy as np

from .interpreter import Struct, launch
from .nvrtc import compile_to_ptx
from .sources import ElementwiseSource

BLOCK = 128  # CuPy's elementwise block size
_ARG_NDARRAY, _ARG_INDEXER, _ARG_SCALAR = 1, 2, 3  # cupy/_core/_kernel.pxd ARG_KIND_*


def generated_code(source: ElementwiseSource, dtype, scalars: tuple = ()) -> str:
    """The CUDA code CuPy generates for ``source`` launched on 1-d C-contiguous arrays of ``dtype``, with
    the input parameters named in ``scalars`` passed NumPy scalars (CuPy makes those by-value parameters)."""
    import cupy
    import cupy._core._carray as carray
    import cupy._core._kernel as kernel

    dtype = np.dtype(dtype)
    built = cupy.ElementwiseKernel(source.in_params, source.out_params, source.operation, source.name)
    in_scalar = [param.name in scalars for param in built.in_params]
    _, _, type_map = built._decide_params_type((dtype,) * len(built.in_params), (dtype,) * len(built.out_params))
    arg_infos = tuple(
        kernel._ArgInfo(_ARG_SCALAR, dtype.type, dtype, 0, True, True)
        if scalar
        else kernel._ArgInfo(_ARG_NDARRAY, cupy.ndarray, dtype, 1, True, True)
        for scalar in in_scalar + [False] * len(built.out_params)
    )
    arg_infos += (kernel._ArgInfo(_ARG_INDEXER, carray.Indexer, None, 1, True, True),)
    return kernel._get_elementwise_kernel_code(
        arg_infos, type_map, built.params, built.operation, built.name, built.preamble
    )


@functools.cache
def _ptx(source: ElementwiseSource, dtype_name: str, scalars: tuple, arch: str) -> str:
    return compile_to_ptx(generated_code(source, dtype_name, scalars), arch, prepend_cupy_headers=True)


def ptx_for(source: ElementwiseSource, dtype, scalars: tuple = (), arch: str = "90") -> str:
    """The PTX of CuPy's generated code for ``source``, ``dtype`` and ``scalars`` (compiled once per process)."""
    return _ptx(source, np.dtype(dtype).name, tuple(scalars), arch)


def parameter_names(params: str) -> list:
    """``"T x, T gate"`` -> ``["x", "gate"]``."""
    return [param.split()[-1] for param in params.split(",") if param.strip()]


def scalar_inputs(source: ElementwiseSource, args) -> tuple:
    """The input parameters a call passes scalars for (everything that is not an array)."""
    names = parameter_names(source.in_params)
    return tuple(name for name, arg in zip(names, args) if not isinstance(arg, np.ndarray))


def carray(array: np.ndarray) -> Struct:
    """CuPy's ``CArray<T, 1, true, true>`` for a contiguous array: data pointer, size, shape[1], strides[1]."""
    flat = array.reshape(-1)
    return Struct(array, np.int64(flat.size), np.int64(flat.size), np.int64(array.itemsize))


def cindexer(size: int) -> Struct:
    """CuPy's ``CIndexer<1, true>``: size, shape[1], index[1] (the index is set by each thread)."""
    return Struct(np.int64(size), np.int64(size), np.int64(0))


def run_elementwise(source: ElementwiseSource, *args, dtype=None, block: int = BLOCK, max_blocks: int = 0):
    """Call the kernel as ``cupy.ElementwiseKernel(...)(*args)`` would: outputs not given are allocated.

    ``args``: NumPy arrays (all one shape, C-contiguous) and NumPy scalars, inputs then outputs in the
    kernel's parameter order. ``max_blocks`` > 0 caps the grid so the grid-stride loop runs more than once.
    Returns the output array, or a tuple of them.
    """
    n_in, n_out = len(parameter_names(source.in_params)), len(parameter_names(source.out_params))
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    dtype = np.dtype(dtype or arrays[0].dtype)
    shape = arrays[0].shape
    outputs = list(args[n_in:]) + [np.empty(shape, dtype) for _ in range(n_in + n_out - len(args))]
    packed = [carray(a) if isinstance(a, np.ndarray) else dtype.type(a) for a in list(args[:n_in]) + outputs]
    size = int(np.prod(shape))
    blocks = max(1, -(-size // block))
    if max_blocks:
        blocks = min(blocks, max_blocks)
    ptx = ptx_for(source, dtype, scalar_inputs(source, args))
    launch(ptx, source.name, (blocks,), (block,), [*packed, cindexer(size)])
    return outputs[0] if n_out == 1 else tuple(outputs)
