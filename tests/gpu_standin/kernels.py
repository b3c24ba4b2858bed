"""The stand-in's user kernels, run from their very source by tests/cuda_emulation (branch wip-emulator).

RawModule: the source string is compiled by real NVRTC with CuPy's options
(``cuda_emulation.compile_to_ptx``) and each launch runs the PTX in the emulator
(``cuda_emulation.launch``) on the NumPy memory of the stand-in arrays. Arguments are checked as the
CUDA ABI sees them: device arrays only (a host NumPy array is refused, as CuPy refuses it),
C-contiguous (the kernel indexes raw memory), scalars passed as the NumPy type CuPy would pass (a
Python ``int`` is 8 bytes, a ``float`` a double); the emulator checks each against the kernel's parameter.

ElementwiseKernel: the code CuPy itself generates for the kernel is compiled by NVRTC and run in the
emulator (``cuda_emulation.elementwise.run_elementwise``), on contiguous copies of the inputs broadcast
to one shape; an input given as a scalar becomes a by-value parameter, as CuPy makes it. Its limits are
the emulator's: one dtype ``T`` for every array, no preamble, no keyword arguments. Anything else
raises instead of running something else.
"""

import re

import numpy as np

from . import api
from .ndarray import host_array_error, ndarray, storage


def _emulator():
    try:
        import cuda_emulation
    except ImportError as exc:  # the emulator ships in tests/cuda_emulation (branch wip-emulator)
        raise NotImplementedError(f"the stand-in's kernels need tests/cuda_emulation on the path ({exc})") from None
    return cuda_emulation


def _bind(kind, method, args, kwargs):
    signature = api.signature(api.load()["kernels"][kind][method], drop_self=True)
    try:
        return signature.bind(*args, **kwargs).arguments
    except TypeError as exc:
        raise TypeError(f"cupy.{kind}: {exc} (CuPy's signature is {signature})") from None


def _kernel_argument(value, where):
    """A launch argument as the kernel receives it (array memory or a typed scalar)."""
    if isinstance(value, ndarray):
        memory = storage(value)
        if not memory.flags.c_contiguous:
            raise ValueError(
                f"{where}: a non-C-contiguous array (the kernel indexes raw memory: pass cupy.ascontiguousarray(x))"
            )
        return memory
    if isinstance(value, np.ndarray):
        raise host_array_error(value, where)
    if isinstance(value, np.generic):
        return value
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        return np.int64(value)  # CuPy passes a Python int as a 64-bit integer
    if isinstance(value, float):
        return np.float64(value)  # ... and a Python float as a double
    raise TypeError(f"{where}: unsupported kernel argument type {type(value)}")


class RawKernel:
    """One ``__global__`` function of a compiled module: ``kernel(grid, block, args, shared_mem=0)``."""

    def __init__(self, *args, **kwargs):
        bound = _bind("RawKernel", "init", args, kwargs)
        self._module = RawModule(code=bound["code"], options=tuple(bound.get("options", ())))
        self._name = bound["name"]

    @classmethod
    def _from_module(cls, module, name):
        kernel = cls.__new__(cls)
        kernel._module, kernel._name = module, name
        return kernel

    def __call__(self, grid, block, args, *, shared_mem=0, enable_cooperative_groups=False):
        grid = tuple(grid) if isinstance(grid, (tuple, list)) else (grid,)
        block = tuple(block) if isinstance(block, (tuple, list)) else (block,)
        if not isinstance(args, tuple):
            raise TypeError(f"{self._name}: args must be a tuple, got {type(args).__name__}")
        if any(int(g) < 1 for g in grid) or any(int(b) < 1 for b in block):
            raise ValueError(
                f"{self._name}: grid {grid} and block {block} must be positive (CUDA_ERROR_INVALID_VALUE on a device)"
            )
        arguments = [_kernel_argument(a, f"{self._name} argument {i}") for i, a in enumerate(args)]
        _emulator().launch(self._module.ptx, self._name, grid, block, arguments, shared_bytes=int(shared_mem))


class RawModule:
    """``cupy.RawModule(code=...)``: compiled by NVRTC with CuPy's options the first time a function is asked for."""

    def __init__(self, *args, **kwargs):
        bound = _bind("RawModule", "init", args, kwargs)
        if bound.get("code") is None:
            raise NotImplementedError("the stand-in's RawModule compiles source code only (code=...), not path=")
        self.code, self.options, self._ptx = bound["code"], tuple(bound.get("options", ())), None

    @property
    def ptx(self):
        if self._ptx is None:
            self._ptx = _emulator().compile_to_ptx(self.code, options=self.options)
        return self._ptx

    def get_function(self, name):
        if not re.search(r"\.entry\s+" + re.escape(name) + r"\s*\(", self.ptx):
            raise RuntimeError(f"CUDA_ERROR_NOT_FOUND: named symbol not found: {name}")
        return RawKernel._from_module(self, name)


# ---------------------------------------------------------------- ElementwiseKernel
def _param_names(text):
    return [part.split()[-1] for part in text.split(",") if part.strip()]


class ElementwiseKernel:
    """``cupy.ElementwiseKernel(in_params, out_params, operation, name)``: CuPy's generated code, emulated."""

    def __init__(self, *args, **kwargs):
        bound = _bind("ElementwiseKernel", "init", args, kwargs)
        self.name = bound.get("name", "kernel")
        if bound.get("preamble") or bound.get("kwargs"):
            raise NotImplementedError(f"{self.name}: the stand-in runs kernels without preamble or options")
        from cuda_emulation.sources import ElementwiseSource

        self.source = ElementwiseSource(
            self.name, bound["in_params"], bound["out_params"], bound["operation"], self.name
        )
        self.in_names, self.out_names = _param_names(bound["in_params"]), _param_names(bound["out_params"])

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise NotImplementedError(f"{self.name}: keyword arguments {sorted(kwargs)} are not emulated")
        n_in, n_all = len(self.in_names), len(self.in_names) + len(self.out_names)
        if len(args) not in (n_in, n_all):
            raise TypeError(f"Wrong number of arguments for {self.name!r}: got {len(args)}, expected {n_in} or {n_all}")
        for name, value in zip(self.in_names + self.out_names, args):
            if isinstance(value, np.ndarray):
                raise host_array_error(value, f"{self.name} argument {name}")
        arrays = [storage(a) for a in args if isinstance(a, ndarray)]
        dtypes = {a.dtype for a in arrays}
        if len(dtypes) != 1:
            raise TypeError(f"Type is mismatched. {self.name}: T bound to {sorted(str(d) for d in dtypes)}")
        dtype, shape = dtypes.pop(), np.broadcast_shapes(*(a.shape for a in arrays))
        inputs = [
            np.ascontiguousarray(np.broadcast_to(storage(a), shape)) if isinstance(a, ndarray) else a
            for a in args[:n_in]
        ]
        outputs = list(args[n_in:]) or [ndarray(shape, dtype) for _ in self.out_names]
        for name, out in zip(self.out_names, outputs):
            if storage(out).shape != shape or not storage(out).flags.c_contiguous:
                raise NotImplementedError(f"{self.name}: output {name} must be C-contiguous of shape {shape}")
        from cuda_emulation.elementwise import run_elementwise

        run_elementwise(self.source, *inputs, *(storage(o) for o in outputs), dtype=dtype)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)
