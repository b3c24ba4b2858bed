"""Every CUDA source of tinygrad_tx.kernels.cuda compiles with real NVRTC and CuPy's options, no GPU needed.

Regression test for defect 1 of issue 12: ``INFINITY`` is undefined under NVRTC (no math.h), though
nvcc accepts it, so every fused GPU op raised CompileException on a real GPU.
"""

import numpy as np
import pytest
from cuda_emulation import device, elementwise, sources
from cuda_emulation.nvrtc import (
    ARCHS,
    CompileError,
    compile_cuda,
    compile_to_ptx,
    cupy_options,
)
from cuda_emulation.ptx import entry_names

from helpers.optional import requires_cuda_emulation

# NVRTC (through CuPy) compiles, the PTX emulator runs: skipped, with the extra to install, without them
pytestmark = requires_cuda_emulation

ELEMENTWISE = sources.elementwise_kernels()


@pytest.mark.parametrize("arch", ARCHS)
def test_the_row_module_compiles_to_a_cubin_for_each_gpu(arch):
    cubin = compile_cuda(sources.row_source(), arch, output="cubin")
    assert cubin[:4] == b"\x7fELF"


def test_the_row_module_ptx_has_every_kernel_cuda_py_asks_for():
    ptx = compile_to_ptx(sources.row_source(), "90")
    assert entry_names(ptx) == sources.row_kernel_names()
    assert set(sources.row_kernel_names()) == {
        "softmax_rows",
        "softmax_backward_rows",
        "layer_norm_rows",
        "layer_norm_backward_rows",
        "cross_entropy_rows",
    }


@pytest.fixture(scope="module")
def launches():
    """{(kernel name, dtype name): scalar parameters} of every ElementwiseKernel call kernels/cuda/ makes (run once,
    emulated, on tiny arrays), so the code compiled below is exactly the code CuPy would generate for it."""
    device.ELEMENTWISE_LAUNCHES.clear()
    for dtype in sources.LAUNCH_DTYPES:
        x, grad = np.linspace(-3, 3, 5).astype(dtype), np.ones(5, dtype)
        with device.emulated_gpu() as cuda:
            for approximate in ("none", "tanh"):
                gate = cuda.gelu_with_gate(x, approximate)[1]
                cuda.gelu_backward_from_gate(x, gate, grad, approximate)
            cuda.adamw_update(
                x.copy(),
                grad,
                np.zeros(5, dtype),
                np.zeros(5, dtype),
                lr=1e-3,
                beta1=0.9,
                beta2=0.95,
                eps=1e-8,
                weight_decay=0.1,
                step=1,
            )
    return {(source.name, dtype): scalars for source, dtype, scalars in device.ELEMENTWISE_LAUNCHES}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", sources.LAUNCH_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("key", sorted(ELEMENTWISE))
def test_each_elementwise_kernel_compiles_as_cupy_generates_it(key, dtype, arch, launches):
    source = ELEMENTWISE[key]
    assert (source.name, np.dtype(dtype).name) in launches, f"kernels/cuda/ never launched {key} on {np.dtype(dtype)}"
    code = elementwise.generated_code(source, dtype, launches[source.name, np.dtype(dtype).name])
    assert f"typedef {np.dtype(dtype).name.replace('float32', 'float').replace('float64', 'double')} T;" in code
    cubin = compile_cuda(code, arch, output="cubin", prepend_cupy_headers=True)
    assert cubin[:4] == b"\x7fELF"


def test_every_elementwise_kernel_of_cuda_py_is_covered(launches):
    assert set(ELEMENTWISE) == {"gelu_exact", "gelu_exact_backward", "gelu_tanh", "gelu_tanh_backward", "adamw"}
    assert launches["tinygrad_tx_adamw", "float32"] == ("decay", "beta1", "beta2", "step_size", "bias2_sqrt", "eps")
    assert launches["tinygrad_tx_gelu_exact", "float64"] == ()


def test_nvrtc_rejects_what_only_nvcc_accepts():
    """The check has teeth: INFINITY (math.h) is not defined under NVRTC, so a kernel using it fails."""
    with pytest.raises(CompileError, match="INFINITY"):
        compile_to_ptx('extern "C" __global__ void k(float* y) { y[0] = -INFINITY; }', "90")


def test_the_options_are_cupys_own_and_only_the_arch_is_pinned_for_the_call():
    from cupy.cuda import compiler

    options = cupy_options()
    assert "-ftz=true" in options and "--std=c++17" in options
    assert any(option.startswith("-I") and option.endswith("cupy/_core/include") for option in options)
    asks_the_device = compiler._get_arch_for_options_for_nvrtc
    assert ".target sm_80" in compile_to_ptx('extern "C" __global__ void k() {}', "80")
    assert compiler._get_arch_for_options_for_nvrtc is asks_the_device  # restored after the call
