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

GPU_OK, GPU_REASON = backend.gpu_available()
requires_gpu = pytest.mark.skipif(not GPU_OK, reason=f"GPU tests need CuPy and a CUDA device: {GPU_REASON}")
DEVICES = ["cpu", pytest.param("gpu", marks=[requires_gpu, pytest.mark.gpu])]

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
    assert error <= rtol or np.allclose(actual, expected, rtol=rtol, atol=atol), \
        f"{what}: max relative error {error:.3g} > {rtol}"


@pytest.fixture(autouse=True)
def _seed_engine():
    backend.manual_seed(1234)
    yield
