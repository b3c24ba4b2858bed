"""What the tests share (tests/ is on the path, pytest.ini): import from here, never from another test file.

- this module: the repository root, the GPU switch (``requires_gpu``, ``DEVICES``), ``assert_close``, and
  the local Tiny Shakespeare copy;
- ``helpers.kernel_cases``: the hard inputs of the kernel tests and their error measure and bound;
- ``helpers.kernel_checks``: the check that a fast kernel equals its reference, per kernel family;
- ``helpers.cli``: the trainer CLI run in this process (``run_cli``, ``tiny_args``, ``read_metrics``);
- ``helpers.mpi``: ``mpiexec -n 2`` launches and a simulated second rank;
- ``helpers.gpt``: a tiny GPT to test with.

Fixtures are in the conftest.py nearest the tests that use them (tests/conftest.py, tests/train/conftest.py).
"""

import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository (tests/helpers/ is two levels below)
REPO = str(ROOT)

# gpu-marked tests run where CuPy finds a CUDA device, or anywhere with --gpu-standin; else they skip with the reason.
requires_gpu = pytest.mark.gpu
DEVICES = ["cpu", pytest.param("gpu", marks=requires_gpu)]

SHARED_TEXT = os.path.join(REPO, "..", "shared", "data", "tinyshakespeare", "input.txt")


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
