"""Shared test helpers: hypothesis profiles, the PyTorch oracle, the GPU switch, the data path."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from tinygrad_tx import backend

# "ci" keeps the suite fast on 2 cores; HYPOTHESIS_PROFILE=thorough draws many more shapes locally.
settings.register_profile("ci", max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# gpu-marked tests run where CuPy finds a CUDA device, or anywhere with --gpu-standin; else they skip with the reason.
requires_gpu = pytest.mark.gpu
DEVICES = ["cpu", pytest.param("gpu", marks=requires_gpu)]

SHARED_TEXT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tinyshakespeare", "input.txt")


def shakespeare_path():
    """The local Tiny Shakespeare copy (env var or the shared folder), or None."""
    path = os.environ.get("TINYSHAKESPEARE_PATH") or SHARED_TEXT
    return path if os.path.isfile(path) else None


def assert_close(actual, expected, rtol, atol=0.0, what=""):
    """Relative comparison that reports the worst element; ``atol`` guards values near zero."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = np.maximum(np.abs(expected).max(initial=0.0), 1e-12)
    error = np.abs(actual - expected).max(initial=0.0) / scale
    assert error <= rtol or np.allclose(actual, expected, rtol=rtol, atol=atol), (
        f"{what}: max relative error {error:.3g} > {rtol}"
    )


def pytest_addoption(parser):
    parser.addoption(
        "--gpu-standin",
        action="store_true",
        default=False,
        help="serve device 'gpu' with the strict CuPy stand-in (tests/gpu_standin) so gpu-marked tests "
        "run on the CPU: kernels compiled by NVRTC and run in the PTX emulator",
    )


def pytest_configure(config):
    if config.getoption("gpu_standin"):
        import gpu_standin  # tests/ is on sys.path (rootdir conftest)

        gpu_standin.install()


def pytest_collection_modifyitems(config, items):
    gpu_ok, reason = backend.gpu_available()
    if not gpu_ok:
        skip = pytest.mark.skip(reason=f"GPU tests need CuPy and a CUDA device (or --gpu-standin): {reason}")
        for item in items:
            if item.get_closest_marker("gpu") is not None:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_engine():
    backend.manual_seed(1234)
    yield
