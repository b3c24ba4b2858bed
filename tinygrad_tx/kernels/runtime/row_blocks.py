"""Row blocks on every core: how the fast CPU kernels use more than one core, and stay fast on a busy one.

NumPy's loops and the compiled loops (cpu/<op>.py) release the GIL, so blocks of rows can run in
threads side by side. ``in_row_blocks(function, *arrays)`` cuts the leading axis into a few blocks
per core and lets the caller and the helper threads *pull* blocks until none are left:

- On a quiet machine every core takes its share, as a fixed split would.
- On a busy one (a browser beside the training) a helper that the scheduler has not run yet simply
  takes fewer blocks, or none: the caller never waits for a thread that has not started, only for
  blocks already being worked on. A fixed split with a barrier would wait for the slowest thread.
- Nothing spins: idle helpers sleep on a queue.

While blocks run, OpenBLAS is held to one thread, so a matmul inside a block does not start threads
of its own that would fight the blocks for the cores.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ... import backend
from . import openblas

# Below this many elements the hand-off costs more than it saves: waking a sleeping helper takes
# ~0.1 ms on the 2-core box, and a compiled loop does 1M float32 elements of GELU in ~0.5 ms
# (measured: one thread 0.53 ms, two 0.33 ms at 1M; at 400K two threads were slower than one).
# NumPy chains, several times slower per element, pass a lower ``min_elements``.
PARALLEL_MIN_ELEMENTS = 1 << 20
BLOCKS_PER_CORE = 4  # a few per core, so a core the scheduler takes away costs one small block
WORKERS = max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8))

_in_block = threading.local()  # set while a thread runs a block: nested calls then run in place
_helpers: queue.SimpleQueue | None = None  # jobs for the helper threads, started on first use
_helpers_lock = threading.Lock()


class _Job:
    """The blocks of one call; any thread may take the next block, and the last one to finish says so."""

    def __init__(self, function: Callable[..., Any], blocks: list[list[Any]]) -> None:
        self.function, self.blocks = function, blocks
        self.results: list[Any] = [None] * len(blocks)
        self.claims = itertools.count()  # next() is atomic under the GIL
        self.unfinished = len(blocks)
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.error: BaseException | None = None

    def work(self) -> None:
        """Take blocks until none are left (returns at once when a late helper finds them all taken)."""
        _in_block.busy = True
        try:
            for index in self.claims:
                if index >= len(self.blocks):
                    return
                try:
                    self.results[index] = self.function(*self.blocks[index])
                except BaseException as exc:  # re-raised in the calling thread
                    self.error = exc
                with self.lock:
                    self.unfinished -= 1
                    if self.unfinished == 0:
                        self.finished.set()
        finally:
            _in_block.busy = False


def _helper_loop(jobs: queue.SimpleQueue) -> None:
    while True:
        jobs.get().work()


def _start_helpers() -> queue.SimpleQueue:
    global _helpers
    with _helpers_lock:
        if _helpers is None:
            jobs: queue.SimpleQueue = queue.SimpleQueue()
            for number in range(WORKERS - 1):
                threading.Thread(target=_helper_loop, args=(jobs,), name=f"tinygrad_tx-{number}", daemon=True).start()
            _helpers = jobs
    return _helpers


def _after_fork() -> None:
    """In a forked child the helper threads are gone (and a lock may be held): start over on first use."""
    global _helpers, _helpers_lock
    _helpers, _helpers_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def in_row_blocks(function: Callable[..., Any], *arrays: Any, min_elements: int | None = None) -> list[Any]:
    """``[function(*blocks) for each block]``, blocks cut from the leading axis of every array, on every core.

    ``function`` writes its results into the blocks it is given (``out=`` arguments: the blocks are
    views) and may also return a value per block (partial sums), listed in block order. Arrays with
    fewer than ``min_elements`` elements (the first one counts; default PARALLEL_MIN_ELEMENTS), a
    leading axis of length 1, GPU arrays, one-core machines and calls from inside a block make one
    plain call. ``function`` must
    not draw random numbers (the draw order would depend on the threads).
    """
    first = arrays[0]
    rows = first.shape[0] if first.ndim else 1
    count = min(rows, WORKERS * BLOCKS_PER_CORE)
    small = first.size < (PARALLEL_MIN_ELEMENTS if min_elements is None else min_elements)
    if WORKERS < 2 or count < 2 or small or backend.is_gpu_array(first) or getattr(_in_block, "busy", False):
        return [function(*arrays)]
    bounds = [rows * i // count for i in range(count + 1)]
    job = _Job(function, [[a[bounds[i] : bounds[i + 1]] for a in arrays] for i in range(count)])
    helpers = _start_helpers()
    with one_blas_thread():
        for _ in range(WORKERS - 1):
            helpers.put(job)
        job.work()
        job.finished.wait()
    if job.error is not None:
        raise job.error
    return job.results


# ---------------------------------------------------------------- OpenBLAS's thread count
_blas_functions: tuple[Any, Any] | tuple[()] | None = None  # found on first use: importing loads no library
_blas_depth = 0  # nested or concurrent one_blas_thread() blocks; the count is restored when the last ends
_blas_saved = 0
_blas_lock = threading.Lock()


def _blas() -> tuple[Any, Any] | tuple[()]:
    """OpenBLAS's (set, get), looked up on first use (call with _blas_lock held)."""
    global _blas_functions
    if _blas_functions is None:
        _blas_functions = openblas.thread_functions()
    return _blas_functions


class one_blas_thread:
    """Hold OpenBLAS to one thread inside the block (a process-wide setting, counted across threads)."""

    def __enter__(self) -> None:
        global _blas_depth, _blas_saved
        with _blas_lock:
            blas = _blas()
            if blas and _blas_depth == 0:
                _blas_saved = blas[1]()
                blas[0](1)
            _blas_depth += 1

    def __exit__(self, *exc_info: Any) -> None:
        global _blas_depth
        with _blas_lock:
            _blas_depth -= 1
            if _blas_functions and _blas_depth == 0 and _blas_saved:
                _blas_functions[0](_blas_saved)


# ---------------------------------------------------------------- OpenBLAS's threads follow the free cores
# Two BLAS threads on a machine where another program keeps a core busy wait for each other at every
# GEMM's barrier and spin while they wait. ``follow_free_cores()`` (switched on by tune_for_training)
# makes the matmuls look, at most every WATCH_SECONDS, at how much CPU time the whole machine used
# (/proc/stat) against this process's own (os.times): what is left is other programs' load, and
# OpenBLAS gets the cores it leaves free (at least one, at most the count it started with). Only time
# spent computing counts: after a pause (the program waited, or another process had its turn) the
# window starts again, so what others do while this process is idle never takes a thread away.
WATCH_SECONDS = 0.1
IDLE_GAP_SECONDS = 0.05
_watch: dict[str, Any] = {}  # empty until follow_free_cores(); then the last reading and the thread ceiling


def _machine_busy_seconds() -> float | None:
    """CPU seconds all cores have spent busy since boot (/proc/stat), or None where there is no /proc."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def follow_free_cores() -> bool:
    """Let OpenBLAS's thread count follow the cores other programs leave free; False where it cannot."""
    with _blas_lock:
        blas, busy = _blas(), _machine_busy_seconds()
        if not blas or busy is None or WORKERS < 2:
            return False
        now = time.monotonic()
        _watch.update(ceiling=blas[1](), time=now, last_call=now, busy=busy, own=_own_seconds())
    return True


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system


def fit_blas_threads() -> None:
    """Called before each large matmul: cheap (one clock read) except every WATCH_SECONDS of work, when
    it re-reads the load and sets OpenBLAS's thread count. Does nothing unless follow_free_cores() ran."""
    if not _watch:
        return
    now = time.monotonic()
    paused, _watch["last_call"] = now - _watch["last_call"] > IDLE_GAP_SECONDS, now
    if not paused and now - _watch["time"] < WATCH_SECONDS:
        return
    with _blas_lock:
        busy, own = _machine_busy_seconds(), _own_seconds()
        elapsed = now - _watch["time"]
        if busy is None:
            return
        if paused:  # start the window again: the time since the last call says nothing about free cores
            _watch.update(time=now, busy=busy, own=own)
            return
        others = max(0.0, (busy - _watch["busy"]) - (own - _watch["own"])) / elapsed  # cores busy elsewhere
        _watch.update(time=now, busy=busy, own=own)
        threads = max(1, min(_watch["ceiling"], int(WORKERS - others + 0.3)))
        if _team is not None:  # the team splits the GEMMs; OpenBLAS stays at one thread
            _team.pause(threads < 2)
        elif _blas_depth == 0 and _blas_functions and _blas_functions[1]() != threads:
            _blas_functions[0](threads)


# ---------------------------------------------------------------- the compiled kernels' team
_team: Any = None  # team.Team once tune_for_training() started it (team.start); None until then


def team() -> Any:
    """The team of spinning threads for the compiled kernels (runtime/team.py) when tune_for_training()
    started it, else None. Kept here, not in team.py, so asking does not import numba."""
    return _team


def use_team(new_team: Any) -> None:
    """Route the compiled kernels through ``new_team`` (None: back to in_row_blocks and OpenBLAS's threads)."""
    global _team
    _team = new_team
