"""Process-wide settings for programs that train: the allocator, OpenBLAS's threads, the team.

``import tinygrad_tx`` changes nothing global; a program that trains (the trainer's CLI, the
benchmarks) calls ``tune_for_training()`` once at start-up. This module sits above kernels/ (it
starts the kernels' threads and warms their compiled loops); backend.py, below everything, knows
none of it.
"""

import ctypes
import os

# ---------------------------------------------------------------- host memory reuse
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers (malloc.h)
KEEP_FREED_MEMORY_ENV = "TINYGRAD_TX_KEEP_FREED_MEMORY"
FOLLOW_FREE_CORES_ENV = "TINYGRAD_TX_FOLLOW_FREE_CORES"
TEAM_ENV = "TINYGRAD_TX_TEAM"


def keep_freed_memory():
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the OS; False if not glibc.

    glibc serves every allocation above 32 MiB (a batch's attention scores, MLP activations) with a
    fresh mmap and unmaps it on free, so each training step faults all its activations in again: the
    kernel zeroes every page and, with transparent huge pages, may compact memory first. Measured on
    the baby recipe (batch 32, 1 thread): 5.7 s of system time per step -> 0.14 s, step 23.7 s ->
    12.3 s, same peak RSS (docs/performance.md). Trimming is switched off altogether (threshold -1):
    with the largest threshold mallopt takes (2 GiB) the 6 GB that a batch-64 baby step frees at its
    end still went back to the OS, and the next step faulted 25K pages in again (2-5 s of system time
    per step). Process-wide: freed memory stays with the process, so importing the engine never calls
    it; ``tune_for_training()`` does.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, -1))
    except (OSError, AttributeError):  # not Linux/glibc: the platform's allocator stays as it is
        return False


def tune_for_training():
    """Apply the process-wide settings that make training steps fast; returns what was applied.

    A library should not change its host process behind its back, so ``import tinygrad_tx`` changes
    nothing global; programs that train (the trainer, the benchmarks) call this once at start-up.
    Today it makes glibc keep freed memory (``keep_freed_memory``), unless the environment sets
    TINYGRAD_TX_KEEP_FREED_MEMORY=0, and loads the fast CPU kernels' compiled loops (numba, from its
    on-disk cache after the first run: ~0.4 s and ~130 MiB, paid here instead of in the first step).
    It also lets OpenBLAS's thread count follow the cores other programs leave free
    (``kernels.runtime.row_blocks.follow_free_cores``: two BLAS threads on a machine with one core busy
    elsewhere wait for each other at every GEMM), unless TINYGRAD_TX_FOLLOW_FREE_CORES=0. Last, it
    starts the team (``kernels.runtime.team``): the engine's own threads, which split the Linear GEMMs,
    attention, GELU and layer norm between the cores and hand work over in microseconds, with
    OpenBLAS held to one thread; TINYGRAD_TX_TEAM=0 leaves OpenBLAS's threads and the row blocks.
    Returns {"keep_freed_memory": ..., "compiled_kernels": True, "follow_free_cores": ..., "team": ...},
    each True when applied.
    """
    from .kernels import cpu  # imports numba, which ``import tinygrad_tx`` never does
    from .kernels.runtime import row_blocks, team

    keep = os.environ.get(KEEP_FREED_MEMORY_ENV, "1") != "0" and keep_freed_memory()
    cpu.warm_up()
    follow = os.environ.get(FOLLOW_FREE_CORES_ENV, "1") != "0" and row_blocks.follow_free_cores()
    threads = os.environ.get(TEAM_ENV, "1") != "0" and team.start(row_blocks.WORKERS) is not None
    if threads:
        team.warm_up()
    return {"keep_freed_memory": keep, "compiled_kernels": True, "follow_free_cores": follow, "team": threads}
