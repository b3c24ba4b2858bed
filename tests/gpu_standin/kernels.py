"""The stand-in's user kernels: ``RawModule``/``RawKernel`` run their very source, ``ElementwiseKernel`` its operation.

RawModule: the source string is compiled by real NVRTC with CuPy's options (``cuda_emulation.compile_to_ptx``)
and each launch runs the PTX in the emulator (``cuda_emulation.launch``), on the NumPy memory of the
stand-in arrays. Arguments are checked as the CUDA ABI sees them: device arrays only (a host NumPy
array is refused, as CuPy refuses it), C-contiguous (the kernel indexes raw memory), scalars passed as
the NumPy type CuPy would pass (a Python ``int`` is 8 bytes, a ``float`` a double), and the emulator
checks them against the kernel's parameters.

ElementwiseKernel: the operation is evaluated with NumPy in the parameters' dtypes, statement by
statement. Limits (documented in README.md): assignments (``=``, ``+=``, ``-=``, ``*=``, ``/=``)
separated by ``;``, C arithmetic, the casts ``(T)literal`` and ``(T)(expr)``, and the math functions
in ``MATH``; no control flow, no ``i``/``_ind`` indexing, no raw parameters, no preamble. Anything
else raises NotImplementedError instead of guessing. It is not compiled here: tests/cuda_emulation
compiles every ElementwiseKernel CuPy would generate with NVRTC for each dtype.
"""
import functools
import json
import math
import os
import re
import subprocess
import sys

import numpy as np

from . import api
from .ndarray import host_array_error, ndarray, storage

_erf = np.frompyfunc(math.erf, 1, 1)
MATH = {name: getattr(np, name) for name in ("exp", "log", "sqrt", "tanh", "sin", "cos", "fabs", "abs")}
MATH.update(fabs=np.abs, erf=lambda x: np.asarray(_erf(x), dtype=np.asarray(x).dtype), fmaxf=np.maximum,
            fminf=np.minimum, max=np.maximum, min=np.minimum, expf=np.exp, logf=np.log, sqrtf=np.sqrt, tanhf=np.tanh)


TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Compiling needs the real CuPy (its NVRTC binding and options), which the stand-in has replaced in this
# process's sys.modules: compile in a fresh interpreter, once per source.
_COMPILE_SCRIPT = """
import json, sys
from cuda_emulation import compile_to_ptx
request = json.load(sys.stdin)
sys.stdout.write(compile_to_ptx(request["code"], options=tuple(request["options"])))
"""


class CompileException(Exception):
    """NVRTC rejected the source (CuPy raises cupy.cuda.compiler.CompileException)."""


@functools.lru_cache(maxsize=None)
def compile_to_ptx(code: str, options: tuple = ()) -> str:
    """PTX of ``code`` from real NVRTC with CuPy's RawModule options (tests/cuda_emulation, in a clean process)."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], input=json.dumps({"code": code, "options": options}),
                          capture_output=True, text=True, env=environment)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
        raise CompileException("\n".join(errors[-10:]) or f"the compiler exited with status {done.returncode}")
    return done.stdout


def _emulator():
    try:
        import cuda_emulation
    except ImportError as exc:  # the emulator ships in tests/cuda_emulation (branch wip-emulator)
        raise NotImplementedError(f"RawModule launches need tests/cuda_emulation on the path ({exc})") from None
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
            raise ValueError(f"{where}: a non-C-contiguous array (the kernel indexes raw memory: pass "
                             f"cupy.ascontiguousarray(x))")
        return memory
    if isinstance(value, np.ndarray):
        raise host_array_error(value, where)
    if isinstance(value, np.generic):
        return value
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        return np.int64(value)     # CuPy passes a Python int as a 64-bit integer
    if isinstance(value, float):
        return np.float64(value)   # ... and a Python float as a double
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
            raise ValueError(f"{self._name}: grid {grid} and block {block} must be positive "
                             f"(CUDA_ERROR_INVALID_VALUE on a device)")
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
            self._ptx = compile_to_ptx(self.code, self.options)
        return self._ptx

    def get_function(self, name):
        if not re.search(r"\.entry\s+" + re.escape(name) + r"\s*\(", self.ptx):
            raise RuntimeError(f"CUDA_ERROR_NOT_FOUND: named symbol not found: {name}")
        return RawKernel._from_module(self, name)


# ---------------------------------------------------------------- ElementwiseKernel
_STATEMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*([-+*/]?)=(?!=)\s*(.+?)\s*$", re.S)
_LITERAL = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _parse_params(text, where):
    params = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        words = part.split()
        if len(words) != 2 or words[0] == "raw":
            raise NotImplementedError(f"{where}: parameter {part!r} (only 'TYPE name' is evaluated)")
        params.append((words[0], words[1]))
    return params


def _python_expression(c_expression, type_names, where):
    """C arithmetic -> a Python expression over NumPy values; casts become calls, ``f`` suffixes vanish."""
    expression = re.sub(rf"(?<![\w.])({_LITERAL})[fF]\b", r"\1", c_expression)
    for type_name in type_names:
        expression = re.sub(rf"\(\s*{type_name}\s*\)\s*(-?{_LITERAL})", rf"{type_name}(\1)", expression)
        expression = re.sub(rf"\(\s*{type_name}\s*\)\s*\(", rf"{type_name}(", expression)
    if re.search(r"[?:{}\[\]]|&&|\|\||\+\+|--|\b(if|for|while|return)\b|\(\s*\w+\s*\)\s*[A-Za-z_]", expression):
        raise NotImplementedError(f"{where}: cannot evaluate {c_expression!r} faithfully with NumPy")
    return expression


class ElementwiseKernel:
    """``cupy.ElementwiseKernel(in_params, out_params, operation, name)`` evaluated with NumPy (module docstring)."""

    def __init__(self, *args, **kwargs):
        bound = _bind("ElementwiseKernel", "init", args, kwargs)
        self.name = bound.get("name", "kernel")
        if bound.get("preamble"):
            raise NotImplementedError(f"{self.name}: a preamble is not evaluated by the stand-in")
        self.in_params = _parse_params(bound["in_params"], self.name)
        self.out_params = _parse_params(bound["out_params"], self.name)
        type_names = {t for t, _ in self.in_params + self.out_params}
        self.statements = []
        for statement in (s for s in bound["operation"].split(";") if s.strip()):
            match = _STATEMENT.match(statement)
            if match is None:
                raise NotImplementedError(f"{self.name}: statement {statement.strip()!r} is not an assignment")
            target, operator, expression = match.groups()
            if target not in {name for _, name in self.out_params}:
                raise NotImplementedError(f"{self.name}: assignment to {target!r}, which is not an output parameter")
            code = _python_expression(expression, type_names, self.name)
            self.statements.append((target, operator, compile(code, f"<{self.name}>", "eval")))

    def _types(self, args):
        """Bind every parameter type name to a dtype: fixed names are NumPy's, T comes from the arrays."""
        types = {}
        for (type_name, name), value in zip(self.in_params + self.out_params, args):
            if isinstance(value, np.ndarray):
                raise host_array_error(value, f"{self.name} argument {name}")
            if hasattr(np, type_name):
                types[type_name] = np.dtype(type_name)
            elif isinstance(value, ndarray):
                dtype = storage(value).dtype
                if types.setdefault(type_name, dtype) != dtype:
                    raise TypeError(f"Type is mismatched. {name} {dtype} {types[type_name]}")
        missing = {t for t, _ in self.in_params + self.out_params} - set(types)
        if missing:
            raise TypeError(f"{self.name}: cannot infer the type(s) {sorted(missing)} from the arguments")
        return types

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise NotImplementedError(f"{self.name}: keyword arguments {sorted(kwargs)} are not evaluated")
        if len(args) not in (len(self.in_params), len(self.in_params) + len(self.out_params)):
            raise TypeError(f"Wrong number of arguments for {self.name!r}: got {len(args)}, expected "
                            f"{len(self.in_params)} or {len(self.in_params) + len(self.out_params)}")
        types = self._types(args)
        scope = {**MATH, **{t: dtype.type for t, dtype in types.items()}}
        for (type_name, name), value in zip(self.in_params, args):
            scope[name] = storage(value) if isinstance(value, ndarray) else types[type_name].type(value)
        arrays = [storage(a) for a in args if isinstance(a, ndarray)]
        shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()
        outputs = list(args[len(self.in_params):]) or [ndarray(shape, types[t]) for t, _ in self.out_params]
        for (type_name, name), out in zip(self.out_params, outputs):
            scope[name] = np.array(np.broadcast_to(storage(out), shape), dtype=types[type_name])
        for target, operator, code in self.statements:
            value = eval(code, {"__builtins__": {}}, scope)
            if operator:
                value = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}[operator](scope[target], value)
            scope[target] = np.asarray(value, dtype=scope[target].dtype if target in scope else None)
        for (_, name), out in zip(self.out_params, outputs):
            storage(out)[...] = scope[name]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)
