"""The strict CuPy stand-in (tests/gpu_standin) refuses what real CuPy refuses, and runs what it runs.

These tests use the stand-in module directly (``gpu_standin.module.CUPY``), without installing it,
so they run in every pass; ``--gpu-standin`` is what serves device 'gpu' with it.
"""

import json
import operator
import os
import subprocess
import sys

import numpy as np
import pytest
from gpu_standin import api, kernels, run
from gpu_standin.module import CUPY as cp
from gpu_standin.ndarray import IMPLICIT_CONVERSION_MESSAGE

from helpers import REPO, optional
from helpers.optional import CUDA_EMULATION, requires_cuda_emulation

TESTS = os.path.join(REPO, "tests")


# kernels compiled by NVRTC (through CuPy) and run in the PTX emulator: the cuda-emulation extra
needs_emulator = requires_cuda_emulation


def device(values, dtype=np.float32):
    return cp.asarray(np.asarray(values, dtype=dtype))


def subprocess_env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, TESTS, os.environ.get("PYTHONPATH", "")])}


# ---------------------------------------------------------------- the API list
def test_the_committed_api_list_is_what_the_installed_cupy_generates(tmp_path):
    pytest.importorskip("cupy", reason=f"regenerating the list needs CuPy ({CUDA_EMULATION})")
    # a fresh process: under --gpu-standin this one's `import cupy` is the stand-in
    done = subprocess.run(
        [sys.executable, "-m", "gpu_standin.make_api_list", "--output", str(tmp_path / "api.json")],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    generated = json.loads((tmp_path / "api.json").read_text())
    if generated["version"] != api.load()["version"]:
        pytest.skip(f"installed CuPy {generated['version']} != the list's {api.load()['version']}: regenerate it")
    assert generated == api.load(), "cupy_api.json is stale: run python -m gpu_standin.make_api_list"


# ---------------------------------------------------------------- implicit host conversion
@pytest.mark.parametrize(
    "convert", [np.asarray, np.array, lambda a: a.__array__(), lambda a: np.float32(a) + np.ones(2)]
)
def test_implicit_conversion_to_numpy_raises_cupys_type_error(convert):
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        convert(device([1.0, 2.0]))
    assert IMPLICIT_CONVERSION_MESSAGE.endswith("Please use `.get()` to construct a NumPy array explicitly.")


def test_explicit_transfers_work():
    a = device([[1.0, 2.0], [3.0, 4.0]])
    assert isinstance(a.get(), np.ndarray) and a.get().tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert cp.asnumpy(a).dtype == np.float32 and a.sum().item() == 10.0 and a.tolist()[1] == [3.0, 4.0]
    assert float(a.sum()) == 10.0 and int(a[0, 1]) == 2 and bool(a[1, 1] > 3)  # CuPy allows one element


def test_a_device_array_is_no_index():
    """cupy.ndarray has no __index__: a device integer cannot index a list or size a range."""
    n = cp.asarray(np.array(3))
    for use in (operator.index, range, lambda k: [0, 1, 2, 3][k]):
        with pytest.raises(TypeError):
            use(n)


# ---------------------------------------------------------------- names CuPy lacks
def test_module_names_are_cupys():
    with pytest.raises(AttributeError, match="module 'cupy' has no attribute 'vecdot'"):
        _ = cp.vecdot
    assert not hasattr(cp, "vecdot")  # feature tests (hasattr) take the fallback, as on real CuPy
    with pytest.raises(NotImplementedError, match="cupy.fuse exists in CuPy but the stand-in does not emulate it"):
        cp.fuse(lambda x: x)
    assert cp.float32 is np.float32 and cp.inf == np.inf


def test_array_attributes_are_cupys():
    a = device([1.0, 2.0])
    for numpy_only in ("resize", "to_device", "__array_namespace__", "setflags"):
        assert hasattr(a.get(), numpy_only)
        with pytest.raises(AttributeError, match=f"'cupy.ndarray' object has no attribute '{numpy_only}'"):
            getattr(a, numpy_only)


@pytest.mark.parametrize("method", ["normal", "choice", "permutation", "shuffle", "bytes"])
def test_generator_has_only_cupys_methods(method):
    generator = cp.random.default_rng(0)
    assert hasattr(np.random.default_rng(0), method)
    with pytest.raises(AttributeError, match=f"has no attribute '{method}'"):
        getattr(generator, method)


def test_generator_draws_on_the_device_with_cupys_signature():
    generator = cp.random.default_rng(0)
    draws = generator.random((3, 4), dtype=np.float32)
    assert isinstance(draws, cp.ndarray) and draws.dtype == np.float32 and draws.shape == (3, 4)
    assert generator.standard_normal((2,), dtype=np.float32).dtype == np.float32
    with pytest.raises(TypeError, match="unexpected keyword argument 'method'"):  # NumPy's standard_normal has none
        generator.integers(0, 5, size=3, method="x")


# ---------------------------------------------------------------- CuPy's signatures
@pytest.mark.parametrize(
    "call, keyword",
    [
        (lambda a: cp.sum(a, where=a > 0), "where"),
        (lambda a: cp.zeros(3, like=a), "like"),
        (lambda a: a.max(initial=0.0), "initial"),
        (lambda a: cp.exp(a, where=a > 0), "where"),
        (lambda a: cp.concatenate([a, a], axis=0, casting="unsafe", order="C"), "order"),
    ],
)
def test_numpy_only_keywords_are_refused(call, keyword):
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{keyword}'.*CuPy's signature"):
        call(device([1.0, -2.0]))


def test_calls_within_cupys_signatures_compute_as_numpy():
    a = device([[1.0, -2.0], [3.0, 4.0]])
    assert cp.sum(a, axis=1, keepdims=True).get().tolist() == [[-1.0], [7.0]]
    assert cp.maximum(a, 0).get().tolist() == [[1.0, 0.0], [3.0, 4.0]]
    assert (a @ a).get().tolist() == (a.get() @ a.get()).tolist()
    assert isinstance(np.exp(a), cp.ndarray) and isinstance(np.sum(a), cp.ndarray)  # CuPy's NumPy dispatch


def test_numpy_functions_cupy_lacks_do_not_dispatch():
    with pytest.raises(TypeError):
        np.vecdot(device([1.0]), device([2.0]))


# ---------------------------------------------------------------- host/device mixing
@pytest.mark.parametrize(
    "mix",
    [
        lambda a, h: a + h,
        lambda a, h: h + a,
        lambda a, h: a * h,
        lambda a, h: cp.exp(h),
        lambda a, h: cp.add(a, h),
        lambda a, h: cp.where(a > 0, a, h),
        lambda a, h: cp.concatenate([a, h]),
        lambda a, h: a.__setitem__(Ellipsis, h),
        lambda a, h: cp.add(a, [1.0, 2.0]),
        lambda a, h: cp.add.at(a, (cp.asarray(np.array([0, 0])),), h[:2]),
    ],
)
def test_host_arrays_in_device_operations_are_refused(mix):
    with pytest.raises(TypeError, match="Unsupported type"):
        mix(device([1.0, 2.0]), np.ones(2, dtype=np.float32))


def test_scalars_and_converters_cross_the_line():
    a = device([1.0, 2.0])
    assert (a * np.float32(2) + 1).get().tolist() == [3.0, 5.0]
    assert cp.asarray([1, 2]).get().tolist() == [1, 2] and isinstance(cp.array(np.ones(2)), cp.ndarray)
    index = cp.asarray(np.array([0, 0, 1]))
    cp.add.at(a, (index,), cp.asarray(np.ones(3, dtype=np.float32)))
    assert a.get().tolist() == [3.0, 3.0]  # repeated indices all add up


# ---------------------------------------------------------------- ElementwiseKernel
@needs_emulator
def test_elementwise_kernel_runs_cupys_generated_code_in_the_emulator():
    kernel = cp.ElementwiseKernel("T x, T g", "T y, T twice", "y = (T)0.5 * x * g + (T)1; twice = y * (T)2", "scaled")
    x, g = device(np.linspace(-1, 1, 6).reshape(2, 3)), device([1.0, 2.0, 4.0])  # g broadcasts, as in CuPy
    y, twice = kernel(x, g)
    expected = np.float32(0.5) * x.get() * g.get() + np.float32(1)
    assert y.dtype == np.float32 and np.array_equal(y.get(), expected) and np.array_equal(twice.get(), expected * 2)
    out, out_twice = cp.zeros((2, 3), dtype=np.float32), cp.zeros((2, 3), dtype=np.float32)
    assert kernel(x, g, out, out_twice)[0] is out and np.array_equal(out.get(), expected)
    y_scalar, _ = kernel(x, np.float32(4))  # a scalar input is a by-value parameter, as in CuPy
    assert np.array_equal(y_scalar.get(), np.float32(0.5) * x.get() * np.float32(4) + np.float32(1))


@needs_emulator
def test_elementwise_kernel_refusals():
    kernel = cp.ElementwiseKernel("T x", "T y", "y = x", "copy")
    with pytest.raises(TypeError, match="Unsupported type"):
        kernel(np.ones(2, dtype=np.float32))
    with pytest.raises(TypeError, match="Type is mismatched"):
        cp.ElementwiseKernel("T x, T z", "T y", "y = x + z", "add")(device([1.0]), device([1.0], np.float64))
    with pytest.raises(TypeError, match="Wrong number of arguments"):
        kernel(device([1.0]), device([1.0]), device([1.0]))
    with pytest.raises(NotImplementedError, match="preamble"):
        cp.ElementwiseKernel("T x", "T y", "y = f(x)", "copy", preamble="__device__ float f(float v) { return v; }")
    with pytest.raises(TypeError, match="missing a required argument: 'operation'"):
        cp.ElementwiseKernel(in_params="T x", out_params="T y", code="y = x")


# ---------------------------------------------------------------- RawModule
class RecordingEmulator:
    def __init__(self):
        self.launches = []

    def compile_to_ptx(self, code, options=()):
        return ".visible .entry twice(\n"

    def launch(self, ptx, kernel_name, grid, block, args, shared_bytes=0):
        self.launches.append((kernel_name, grid, block, args, shared_bytes))


def recorded_module(monkeypatch):
    emulator = RecordingEmulator()
    monkeypatch.setattr(kernels, "_emulator", lambda: emulator)
    return cp.RawModule(code='extern "C" __global__ void twice(float* y, int n) {}'), emulator


def test_raw_kernel_arguments_are_checked_as_the_cuda_abi_sees_them(monkeypatch):
    module, emulator = recorded_module(monkeypatch)
    kernel = module.get_function("twice")
    y = cp.zeros((4, 3), dtype=np.float32)
    kernel((2,), (32,), (y, np.int32(3), 7, 0.5), shared_mem=16)
    name, grid, block, (memory, count, python_int, python_float), shared = emulator.launches[0]
    assert (name, grid, block, shared) == ("twice", (2,), (32,), 16)
    assert memory.ctypes.data == y.get().ctypes.data or np.shares_memory(memory, kernels.storage(y))
    assert count.dtype == np.int32 and python_int.dtype == np.int64 and python_float.dtype == np.float64
    with pytest.raises(TypeError, match="Unsupported type"):
        kernel((1,), (32,), (np.zeros(3, dtype=np.float32), np.int32(3)))
    with pytest.raises(ValueError, match="non-C-contiguous"):
        kernel((1,), (32,), (y.T, np.int32(3)))
    with pytest.raises(ValueError, match="must be positive"):
        kernel((0,), (32,), (y, np.int32(3)))
    with pytest.raises(RuntimeError, match="named symbol not found: thrice"):
        module.get_function("thrice")
    with pytest.raises(TypeError, match="unexpected keyword argument 'arch'"):
        cp.RawModule(code="", arch="sm_90")


@needs_emulator
def test_raw_module_source_is_compiled_by_nvrtc_and_executed():
    source = r"""extern "C" __global__ void axpy(const float* x, float* y, float a, int n) {
        int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = a * x[i] + y[i];
    }"""
    x, y = device(np.arange(40)), device(np.ones(40))
    cp.RawModule(code=source).get_function("axpy")((2,), (32,), (x, y, np.float32(2), np.int32(40)))
    assert y.get().tolist() == (2 * np.arange(40) + 1).tolist()
    import cuda_emulation

    with pytest.raises(cuda_emulation.CompileError, match="undefined"):
        cp.RawModule(code='extern "C" __global__ void k(float* y) { y[0] = NOT_DEFINED; }').get_function("k")


# ---------------------------------------------------------------- the runner
def test_install_serves_the_engine_only():
    """After install(), device 'gpu' arrays are the stand-in's while `import cupy` stays the real package
    (or stays missing where CuPy is not installed: the stand-in itself needs no CuPy)."""
    script = (
        "import sys, numpy as np, gpu_standin\n"
        "from tinygrad_tx import Tensor, backend\n"
        "standin = gpu_standin.install()\n"
        "x = Tensor(np.ones(3, dtype=np.float32), device='gpu')\n"
        "assert isinstance(x.data, standin.ndarray) and gpu_standin.installed()\n"
        "assert (x * 2).sum().item() == 6.0\n"
        "assert backend.gpu_name() == 'gpu_standin (NumPy on the CPU)'\n"
        "try:\n"
        "    import cupy\n"
        "except ModuleNotFoundError:\n"
        "    import importlib.util\n"
        "    assert importlib.util.find_spec('cupy') is None\n"
        "else:\n"
        "    assert cupy is not standin and hasattr(cupy, 'cuda') and 'compiler' not in dir(standin.cuda)\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=subprocess_env(), cwd=REPO, check=False
    )
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr[-2000:]


def test_runner_usage():
    assert run.main(["train.shakespeare"]) == 2


def test_the_runner_names_the_extra_when_cuda_emulation_is_missing(monkeypatch, capsys):
    reason = f"CuPy is not installed ({optional.CUDA_EMULATION})"
    monkeypatch.setattr(run, "cuda_emulation_missing", lambda: reason)
    assert run.main(["-m", "train.shakespeare"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: gpu_standin.run needs CuPy") and "[cuda-emulation]" in err


def test_the_cuda_emulation_check_is_the_real_requirement(monkeypatch):
    """Regression (issue 24): `import cuda_emulation` succeeds without CuPy, so it cannot be the guard."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    hidden = lambda name, *rest: None if name == "cupy" else real_find_spec(name, *rest)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", hidden)
    optional.cuda_emulation_missing.cache_clear()
    try:
        reason = optional.cuda_emulation_missing()
    finally:
        optional.cuda_emulation_missing.cache_clear()
    assert reason.startswith("CuPy is not installed") and '".[cuda-emulation]"' in reason


@pytest.mark.skipif(not optional.cuda_emulation_missing(), reason="CuPy and NVRTC are installed: no refusal to see")
def test_gpu_standin_option_refuses_in_one_line_without_the_extra():
    """Where the cuda-emulation extra is missing (the README's plain `.[test]` install), --gpu-standin stops
    at once with one line naming the extra, not with ModuleNotFoundError from inside a test."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--gpu-standin", "--co", "tests/gpu"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--gpu-standin needs CuPy" in lines[0] and "[cuda-emulation]" in lines[0], done.stderr


@needs_emulator
def test_a_tiny_gpt_trains_on_device_gpu_through_the_stand_in(tmp_path):
    """python -m train.shakespeare --device gpu, every array and kernel on the stand-in: a few rows per launch."""
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question.\n" * 40)
    command = [
        sys.executable,
        "-m",
        "gpu_standin.run",
        "-m",
        "train.shakespeare",
        "--device",
        "gpu",
        "--data",
        str(text),
        "--out_dir",
        str(tmp_path / "run"),
        "--max_iters",
        "3",
        "--n_layer",
        "1",
        "--n_head",
        "2",
        "--n_embd",
        "16",
        "--block_size",
        "4",
        "--batch_size",
        "1",
        "--eval_interval",
        "3",
        "--eval_iters",
        "1",
        "--log_interval",
        "1",
        "--warmup_iters",
        "1",
        "--lr_decay_iters",
        "3",
        "--sample_tokens",
        "2",
        "--peak_flops",
        "1e9",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(r.get("iter", 0) for r in records) == 3
    assert all(np.isfinite(v) for r in records for k, v in r.items() if "loss" in k and isinstance(v, float))
