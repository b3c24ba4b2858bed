"""Suite-wide settings: hypothesis profiles, the --gpu-standin switch, skipping gpu tests without a GPU, and the
engine seeded before each test. Shared helpers are in tests/helpers; fixtures in the conftest.py nearest their tests."""

import os

import pytest
from hypothesis import HealthCheck, settings

from tinygrad_tx import backend

from helpers.optional import cuda_emulation_missing

# "ci" keeps the suite fast on 2 cores; HYPOTHESIS_PROFILE=thorough draws many more shapes locally.
settings.register_profile("ci", max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
        missing = cuda_emulation_missing()  # the stand-in's kernels are compiled by NVRTC and run in the emulator
        if missing:
            raise pytest.UsageError(f"--gpu-standin needs CuPy and NVRTC, no GPU: {missing}")
        import gpu_standin  # tests/ is on sys.path (pytest.ini's pythonpath)

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
