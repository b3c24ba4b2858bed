"""A strict CuPy stand-in on NumPy, so the GPU path of tinygrad_tx runs (and is checked) on a CPU-only machine.

    import gpu_standin
    gpu_standin.install()            # from now on `import cupy` / `import cupyx` give the stand-in
    x = tinygrad_tx.Tensor([1.0, 2.0], device="gpu")

What it refuses, as real CuPy does: implicit host conversion (``numpy.asarray(a)``, ``a.__array__``,
``range(a)`` without ``__index__``), host NumPy arrays given to device operations, names CuPy lacks
(``cupy.vecdot``, ``Generator.normal``) and keywords outside CuPy's signatures (``cupy_api.json``,
regenerated from the installed CuPy by ``python -m gpu_standin.make_api_list``). RawModule kernels
are compiled by NVRTC and run in the PTX emulator (tests/cuda_emulation); ElementwiseKernel
operations are evaluated with NumPy (gpu_standin/kernels.py lists the limits).

Entry points: ``python -m pytest --gpu-standin`` (tests/conftest.py) and
``python -m gpu_standin.run -m train.shakespeare --device gpu ...`` (gpu_standin/run.py).
"""
import sys

REPLACED_MODULES = ("cupy", "cupyx")


def install():
    """Serve ``import cupy`` and ``import cupyx`` from the stand-in in this process; returns the stand-in cupy."""
    from .module import CUPY, CUPYX
    for name in [n for n in sys.modules if n.split(".")[0] in REPLACED_MODULES]:
        del sys.modules[name]
    sys.modules.update({"cupy": CUPY, "cupy.random": CUPY.random, "cupy.linalg": CUPY.linalg, "cupy.cuda": CUPY.cuda,
                        "cupyx": CUPYX})
    return CUPY


def installed() -> bool:
    from .module import CUPY
    return sys.modules.get("cupy") is CUPY
