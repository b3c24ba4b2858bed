"""A strict CuPy stand-in on NumPy, so the GPU path of tinygrad_tx runs (and is checked) on a CPU-only machine.

    import gpu_standin
    gpu_standin.install()            # from now on device "gpu" is the stand-in
    x = tinygrad_tx.Tensor([1.0, 2.0], device="gpu")

Only the engine sees it (``tinygrad_tx.backend``, the one module that imports CuPy); ``import cupy``
elsewhere stays the real package. What it refuses, as real CuPy does: implicit host conversion
(``numpy.asarray(a)``, ``a.__array__``, ``range(a)`` without ``__index__``), host NumPy arrays given
to device operations, names CuPy lacks
(``cupy.vecdot``, ``Generator.normal``) and keywords outside CuPy's signatures (``cupy_api.json``,
regenerated from the installed CuPy by ``python -m gpu_standin.make_api_list``). RawModule kernels
are compiled by NVRTC and run in the PTX emulator (tests/cuda_emulation); ElementwiseKernel
operations are evaluated with NumPy (gpu_standin/kernels.py lists the limits).

Entry points: ``python -m pytest --gpu-standin`` (tests/conftest.py) and
``python -m gpu_standin.run -m train.shakespeare --device gpu ...`` (gpu_standin/run.py).
"""

import sys

from tinygrad_tx import backend

_CUPY_MODULES = ("cupy", "cupyx")


def install():
    """Serve device 'gpu' of tinygrad_tx with the stand-in, in this process; returns the stand-in cupy.

    Only the engine gets it: ``tinygrad_tx.backend`` (the one module that imports CuPy) loads ``cupy``
    while the stand-in briefly takes its place in ``sys.modules``, and keeps it. Afterwards ``import
    cupy`` gives the real CuPy again, which tests/cuda_emulation needs for NVRTC.
    """
    from .module import CUPY

    saved = {name: module for name, module in sys.modules.items() if name.split(".")[0] in _CUPY_MODULES}
    for name in saved:
        del sys.modules[name]
    sys.modules["cupy"] = CUPY
    try:
        gpu_ok, reason = backend.gpu_available()
    finally:
        del sys.modules["cupy"]
        sys.modules.update(saved)
    if not gpu_ok or backend.array_module("gpu") is not CUPY:  # e.g. it had loaded the real CuPy (a GPU) before
        raise RuntimeError(f"gpu_standin.install(): the engine did not take the stand-in ({reason or 'real CuPy'})")
    return CUPY


def installed() -> bool:
    """True when device 'gpu' of this process is the stand-in."""
    from .module import CUPY

    return backend.gpu_available()[0] and backend.array_module("gpu") is CUPY
