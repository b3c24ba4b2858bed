"""tinygrad_tx.backend's process-wide settings: importing the engine changes none (no library loaded
through ctypes, so glibc's mallopt cannot have been called; the OpenBLAS thread count and the
environment unchanged), and ``tune_for_training()`` is the one explicit call that does."""

import ast
import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT

pytest.importorskip("threadpoolctl")

PROBE = r"""
import ctypes, json, os
loaded = []
_load = ctypes.CDLL.__init__
def recording_load(self, name, *args, **kwargs):
    loaded.append(str(name))
    _load(self, name, *args, **kwargs)
ctypes.CDLL.__init__ = recording_load

import numpy as np
from threadpoolctl import threadpool_info

def blas_threads():
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

def numpy_blas_threads():
    pools = threadpool_info()
    return [pool["num_threads"] for pool in pools if pool["user_api"] == "blas" and "numpy" in pool["filepath"]]

threads_before, numpy_threads_before, environment_before = blas_threads(), numpy_blas_threads(), dict(os.environ)
loaded.clear()
import sys
import tinygrad_tx, models, train.trainer, train.visualize   # the engine and everything built on it
from tinygrad_tx import Tensor
import tinygrad_tx.nn.functional as F
on_import = list(loaded)
numba_on_import = "numba" in sys.modules
threads_after_import = blas_threads()
# a big batched op takes the row-block path, which lends each block one BLAS thread: it must give them back
F.softmax(Tensor(np.random.default_rng(0).standard_normal((4, 256, 512))), axis=-1)
threads_after_op = blas_threads()
tuned = tinygrad_tx.tune_for_training()
from tinygrad_tx.kernels.runtime import openblas, row_blocks
team_possible = row_blocks.WORKERS >= 2 and openblas.sgemm_address() is not None
print(json.dumps({"on_import": on_import, "on_tune": loaded[len(on_import):], "tuned": tuned,
                  "team_possible": team_possible, "blas_threads_tuned": numpy_blas_threads(),
                  "numba_on_import": numba_on_import, "numba_on_tune": "numba" in sys.modules,
                  "threads": [threads_before, threads_after_import, threads_after_op],
                  "numpy_threads_before": numpy_threads_before,
                  "environment_changed": dict(os.environ) != environment_before}))
"""


def probe(environment=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(environment or {}))
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_import_changes_no_process_wide_state():
    report = probe()
    assert report["on_import"] == [], f"importing loaded libraries through ctypes: {report['on_import']}"
    assert not report["numba_on_import"], "importing the engine imported numba (~0.3 s): the kernels import it"
    before, after_import, after_op = report["threads"]
    assert before and after_import == before, "importing changed the OpenBLAS thread count"
    assert after_op == before, "a row-blocked op did not restore the OpenBLAS thread count"
    assert not report["environment_changed"]


def test_tune_for_training_is_the_explicit_call():
    """The probe can see the call it says import does not make (glibc via ctypes), so the check above can fail."""
    report = probe()
    assert any("libc" in name for name in report["on_tune"]), report["on_tune"]
    linux, team = sys.platform.startswith("linux"), report["team_possible"]
    expected = {"keep_freed_memory": linux, "compiled_kernels": True, "follow_free_cores": linux, "team": team}
    assert report["tuned"] == expected
    assert report["numba_on_tune"], "tune_for_training() should load the compiled CPU kernels"
    if team:  # the team splits the GEMMs: OpenBLAS's own threads would fight it for the cores
        assert report["blas_threads_tuned"] == [1]
    off = {"TINYGRAD_TX_KEEP_FREED_MEMORY": "0", "TINYGRAD_TX_FOLLOW_FREE_CORES": "0", "TINYGRAD_TX_TEAM": "0"}
    report = probe(off)
    assert report["tuned"] == {
        "keep_freed_memory": False,
        "compiled_kernels": True,
        "follow_free_cores": False,
        "team": False,
    }
    assert report["blas_threads_tuned"] == report["numpy_threads_before"], (
        "TINYGRAD_TX_TEAM=0 changed OpenBLAS's threads"
    )
    one_thread = probe({"OPENBLAS_NUM_THREADS": "1"})  # a data-parallel rank given one core: no team
    assert one_thread["tuned"]["team"] is False and one_thread["blas_threads_tuned"] == [1]


@pytest.mark.parametrize(
    "program", ["train/shakespeare.py", "bench/scaling.py", "bench/sides.py", "bench/ops.py", "bench/nanogpt_parity.py"]
)
def test_the_training_cli_and_the_benchmarks_make_the_call(program):
    tree = ast.parse((ROOT / program).read_text(encoding="utf-8"))
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", None)) == "tune_for_training"
    ]
    assert calls, f"{program} never calls tinygrad_tx.tune_for_training()"
