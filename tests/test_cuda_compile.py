"""Every CUDA source of tinygrad_tx.kernels.cuda compiles with real NVRTC and CuPy's options, no GPU needed.

Regression test for defect 1 of issue 12: ``INFINITY`` is undefined under NVRTC (no math.h), though
nvcc accepts it, so every fused GPU op raised CompileException on a real GPU.
"""
import numpy as np
import pytest

pytest.importorskip("cupy", reason="needs cupy-cuda12x and nvidia-cuda-nvrtc-cu12 (no GPU required)")
from cuda_emulation import elementwise, sources
from cuda_emulation.nvrtc import ARCHS, CompileError, compile_cuda, compile_to_ptx
from cuda_emulation.ptx import entry_names

ELEMENTWISE = sources.elementwise_kernels()


@pytest.mark.parametrize("arch", ARCHS)
def test_the_row_module_compiles_to_a_cubin_for_each_gpu(arch):
    cubin = compile_cuda(sources.row_source(), arch, output="cubin")
    assert cubin[:4] == b"\x7fELF"


def test_the_row_module_ptx_has_every_kernel_cuda_py_asks_for():
    ptx = compile_to_ptx(sources.row_source(), "90")
    assert entry_names(ptx) == sources.row_kernel_names()
    assert set(sources.row_kernel_names()) == {"softmax_rows", "softmax_backward_rows", "layer_norm_rows",
                                               "layer_norm_backward_rows", "cross_entropy_rows"}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", sources.LAUNCH_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("key", sorted(ELEMENTWISE))
def test_each_elementwise_kernel_compiles_as_cupy_generates_it(key, dtype, arch):
    code = elementwise.generated_code(ELEMENTWISE[key], dtype)
    assert f"typedef {np.dtype(dtype).name.replace('float32', 'float').replace('float64', 'double')} T;" in code
    cubin = compile_cuda(code, arch, output="cubin", prepend_cupy_headers=True)
    assert cubin[:4] == b"\x7fELF"


def test_every_elementwise_kernel_of_cuda_py_is_covered():
    assert set(ELEMENTWISE) == {"gelu_exact", "gelu_exact_backward", "gelu_tanh", "gelu_tanh_backward", "adamw"}


def test_nvrtc_rejects_what_only_nvcc_accepts():
    """The check has teeth: INFINITY (math.h) is not defined under NVRTC, so a kernel using it fails."""
    with pytest.raises(CompileError, match="INFINITY"):
        compile_to_ptx('extern "C" __global__ void k(float* y) { y[0] = -INFINITY; }', "90")
