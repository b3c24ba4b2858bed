"""Compile CUDA C++ exactly as CuPy does on a GPU machine, with no GPU: real NVRTC, CuPy's own options.

``compile_cuda(source, arch, output)`` goes through ``cupy.cuda.compiler.compile_using_nvrtc``, the very
function ``cupy.RawModule`` and ``cupy.ElementwiseKernel`` reach, so the options are CuPy's own:
``assemble_cupy_compiler_options`` (include paths, ``--std=c++17``), the ``-ftz=true`` that
``_compile_with_cache_cuda`` appends, and the ``-arch`` plus ``--device-as-default-execution-space``
that ``compile_using_nvrtc`` adds itself. Only the architecture is pinned: CuPy asks the CUDA device for
it (``_get_arch_for_options_for_nvrtc``, memoised per device), which fails without one, so that single
function is replaced for the duration of the call (under a lock) by one returning the pinned answer.
``output="cubin"`` is what CuPy produces on a device (``-arch=sm_XX``, NVRTC + ptxas); ``"ptx"`` gives the
``-arch=compute_XX`` PTX text the interpreter runs (the same code ptxas would turn into the cubin).

NVRTC is stricter than nvcc: it has no ``math.h`` or host headers, so ``INFINITY`` is undefined there
while nvcc accepts it. Compile checks must therefore use NVRTC, never nvcc.
"""

import contextlib
import threading

ARCHS = ("80", "90")  # A100, H100/H200: the GPUs the compile tests cover
_PIN_LOCK = threading.Lock()


class CompileError(Exception):
    """NVRTC rejected the source; the message carries NVRTC's own log (``error: ...`` lines)."""


@contextlib.contextmanager
def _arch_pinned(arch: str, output: str):
    from cupy.cuda import compiler

    option = (f"-arch=sm_{arch}", "cubin") if output == "cubin" else (f"-arch=compute_{arch}", "ptx")
    with _PIN_LOCK:
        asked_device = compiler._get_arch_for_options_for_nvrtc
        compiler._get_arch_for_options_for_nvrtc = lambda arch=None: option
        try:
            yield compiler
        finally:
            compiler._get_arch_for_options_for_nvrtc = asked_device


def cupy_options(options: tuple = ()) -> tuple:
    """The option tuple CuPy hands NVRTC for a kernel built with user ``options`` (before -arch)."""
    from cupy._core import core

    return tuple(core.assemble_cupy_compiler_options(tuple(options))) + ("-ftz=true",)


def cupy_header_prelude() -> str:
    """The ``#include`` lines ``cupy._core.core.compile_with_cache`` prepends for ElementwiseKernel code."""
    from cupy._core import core

    return "".join(f"#include <{header}>\n" for header in core._cupy_header_list)


def compile_cuda(
    source: str, arch: str = "90", output: str = "ptx", options: tuple = (), prepend_cupy_headers: bool = False
) -> bytes:
    """NVRTC-compile ``source`` for ``arch`` ("80", "90", ...) as CuPy would; PTX text or cubin bytes.

    ``prepend_cupy_headers`` is False for ``RawModule`` (CuPy's default there) and True for the code
    CuPy generates for an ``ElementwiseKernel``. Raises ``CompileError`` with NVRTC's log on failure.
    """
    if output not in ("ptx", "cubin"):
        raise ValueError(f"compile_cuda: output must be 'ptx' or 'cubin', not {output!r}")
    code = (cupy_header_prelude() + source) if prepend_cupy_headers else source
    with _arch_pinned(str(arch), output) as compiler:
        try:
            compiled = compiler.compile_using_nvrtc(code, cupy_options(options), arch=str(arch))
        except compiler.CompileException as exc:
            errors = [line for line in str(exc).splitlines() if "error" in line]
            raise CompileError(f"NVRTC (sm_{arch}) rejected the source:\n" + "\n".join(errors or [str(exc)])) from None
    binary = compiled[0] if isinstance(compiled, tuple) else compiled
    return binary


def compile_to_ptx(source: str, arch: str = "90", options: tuple = (), prepend_cupy_headers: bool = False) -> str:
    """The PTX text NVRTC makes of ``source`` for ``compute_<arch>`` with CuPy's options (see ``compile_cuda``)."""
    ptx = compile_cuda(source, arch, "ptx", options, prepend_cupy_headers)
    return ptx.decode() if isinstance(ptx, bytes) else ptx
