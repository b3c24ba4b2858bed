"""The stand-in ``cupy`` module: CuPy's names (``cupy_api.json``), NumPy's arithmetic.

Every name is looked up in the recorded CuPy API first. A name CuPy lacks raises AttributeError as
the real module would (``cupy.vecdot``); a name CuPy has but the stand-in cannot serve from NumPy
raises NotImplementedError naming it, so a gap here never passes for a bug in the engine. Calls are
bound to CuPy's signature (NumPy-only keywords raise TypeError) and refuse host NumPy arrays except
in the converters (``cupy.array``, ``cupy.asarray``, ...), as CuPy does.
"""

import types

import numpy as np

from . import api, kernels
from .ndarray import checked_call, device_operand, ndarray

# the only functions that take host data (lists, NumPy arrays) and copy it to the device
CONVERTERS = ("array", "asarray", "asanyarray")
FUNCTION_KINDS = (
    "function",
    "builtin_function_or_method",
    "cython_function_or_method",
    "fused_cython_function",
    "_ArrayFunctionDispatcher",
    "_GUFunc",
)


class Ufunc:
    """``cupy.<ufunc>``: operands must be device arrays or scalars; only CuPy's ufunc methods exist."""

    def __init__(self, name, numpy_ufunc, params, methods):
        self.__name__, self._numpy_ufunc, self._methods = name, numpy_ufunc, methods
        self._call = checked_call(numpy_ufunc, f"cupy.{name}", params)

    def __call__(self, *operands, **kwargs):
        for operand in operands:  # CuPy's elementwise kernels take arrays and scalars, never lists
            device_operand(operand, f"cupy.{self.__name__}", strict=True)
        return self._call(*operands, **kwargs)

    def __getattr__(self, method):
        if method not in self._methods:
            raise AttributeError(f"'cupy.ufunc' object has no attribute '{method}'")
        return checked_call(getattr(self._numpy_ufunc, method), f"cupy.{self.__name__}.{method}", None)

    def __repr__(self):
        return f"<ufunc 'cupy_{self.__name__}'>"


class Generator:
    """``cupy.random.Generator``: only the methods CuPy's has, with its signatures (no normal/choice/permutation)."""

    def __init__(self, bit_generator_seed=None):
        self._numpy_generator = np.random.default_rng(bit_generator_seed)

    def __getattr__(self, name):
        try:
            params = api.generator_params(name)
        except KeyError:
            raise AttributeError(f"'cupy.random._generator_api.Generator' object has no attribute '{name}'") from None
        return checked_call(
            getattr(self._numpy_generator, name), f"cupy.random.Generator.{name}", params, drop_self=True
        )


def _not_emulated(qualified_name):
    def refuse(*args, **kwargs):
        raise NotImplementedError(f"{qualified_name} exists in CuPy but the stand-in does not emulate it")

    refuse.__name__ = qualified_name
    return refuse


def _module(name, section, served):
    """A module whose attributes are ``served``; other names of ``section`` are not emulated, the rest absent."""
    module = types.ModuleType(name)
    module.__dict__.update(served)

    def missing(attribute):
        if api.entry(section, attribute) is not None:
            return _not_emulated(f"{name}.{attribute}")
        raise AttributeError(f"module '{name}' has no attribute '{attribute}'")

    module.__getattr__ = missing
    return module


def _served_from_numpy(section, numpy_namespace):
    """Every name of a CuPy API section that NumPy can serve: ufuncs, functions, types and constants."""
    served = {}
    for name, entry in api.load()[section].items():
        value = getattr(numpy_namespace, name, None)
        if value is None:
            continue
        if entry["kind"] == "ufunc" and isinstance(value, np.ufunc):
            served[name] = Ufunc(name, value, entry["params"], entry["ufunc_methods"])
        elif entry["kind"] in FUNCTION_KINDS and callable(value) and not isinstance(value, type):
            served[name] = checked_call(value, f"cupy.{name}", entry["params"], host_ok=name in CONVERTERS)
        elif isinstance(value, type) or not callable(value):
            served[name] = value  # dtypes (float32, finfo, ...) and constants (inf, pi, newaxis) are NumPy's in CuPy
    return served


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """The one sanctioned device -> host copy besides ``ndarray.get``."""
    return a.get(order=order, out=out) if isinstance(a, ndarray) else np.asarray(a, order=order)


def get_array_module(*args):
    return CUPY if any(isinstance(a, ndarray) for a in args) else np


class _Stream:
    def synchronize(self):
        """Work on the stand-in is done when the call returns."""


def _cuda_module():
    cuda = types.ModuleType("cupy.cuda")
    cuda.runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1,
        getDevice=lambda: 0,
        getDeviceProperties=lambda device: {"name": b"gpu_standin (NumPy on the CPU)"},
    )
    cuda.get_current_stream = _Stream
    return cuda


def lookup(numpy_module_name, name):
    """The stand-in function for ``numpy.<...>.<name>`` as CuPy's ``__array_function__`` finds it, or None."""
    section = {"numpy": CUPY, "numpy.linalg": CUPY.linalg}.get(numpy_module_name)
    value = None if section is None else section.__dict__.get(name)
    return value if callable(value) else None


def build():
    served = _served_from_numpy("cupy", np)
    served.update(
        ndarray=ndarray,
        asnumpy=asnumpy,
        get_array_module=get_array_module,
        RawModule=kernels.RawModule,
        RawKernel=kernels.RawKernel,
        ElementwiseKernel=kernels.ElementwiseKernel,
        random=_module(
            "cupy.random", "cupy.random", {"default_rng": lambda seed=None: Generator(seed), "Generator": Generator}
        ),
        linalg=_module("cupy.linalg", "cupy.linalg", _served_from_numpy("cupy.linalg", np.linalg)),
        cuda=_cuda_module(),
    )
    unknown = set(served) - set(api.load()["cupy"])
    assert not unknown, f"the stand-in serves names CuPy lacks: {sorted(unknown)}"
    return _module("cupy", "cupy", served)


CUPY = build()
