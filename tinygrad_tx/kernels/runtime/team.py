"""The team: the engine's own threads for compiled kernels, handing work over in microseconds.

row_blocks.py hands blocks of Python work to sleeping threads. On the 2-core VM this project is
measured on, waking a sleeping thread takes 50-100 us, and each block's NumPy calls pass the
interpreter lock back and forth, so a 0.3 ms kernel gains little from a second core. OpenBLAS avoids
both: its threads spin (busy-wait) for a while after each GEMM and never touch Python. The team does
the same for the engine's compiled kernels, GEMMs included:

- A job is a compiled *block function* (a numba ``cfunc`` taking ``(arguments, block)``: the address
  of an int64 array describing the job, and a block number), and a block count.
- The caller publishes the job in a shared int64 ``state`` array (atomic stores), then takes blocks
  itself; helper threads, spinning in compiled code without the interpreter lock, see the job within
  a microsecond and take blocks too. Blocks are claimed with compare-and-swap, so each runs once,
  and the caller returns when all are done.
- A helper that finds no job for SPIN_SECONDS goes to sleep; the next job wakes it the slow way.
- ``pause()`` (another program is using a core: row_blocks.follow_free_cores) sends the helpers to
  sleep and makes the caller run every block itself, as a single thread would.

The team runs only after ``tune_for_training()`` switched it on (``start``), which also holds
OpenBLAS to one thread: the team splits GEMMs itself, and two sets of spinning threads would fight
over the cores. One job runs at a time; a caller that finds the team busy (a second Python thread)
runs its blocks alone.

After ``os.fork()`` the child has none of the parent's threads but a copy of their state (a started
team whose helpers do not exist, the job lock held if the fork came mid-job). ``_after_fork`` resets
every team in the child (os.register_at_fork), so the child's first multi-block job starts helpers
of its own.
"""

from __future__ import annotations

import os
import threading
import time
import weakref

import numba
import numpy as np

from . import openblas, row_blocks
from .native import atomic_add, atomic_load, atomic_store, call_block, compare_and_swap, pause

SPIN_SECONDS = 0.002  # a helper busy-waits this long for the next job before it sleeps
# state slots, each on its own 64-byte cache line: the threads write different lines
_SEQUENCE, _FUNCTION, _ARGUMENTS, _NEXT, _DONE, _PAUSED, _SLEEPING = 0, 8, 9, 16, 24, 32, 40
# _NEXT packs (job sequence, block count, next block) so a claim checks all three in one atomic word
_FIELD_BITS, _FIELD_MASK = 20, (1 << 20) - 1
MAX_BLOCKS = _FIELD_MASK

_loop = numba.njit(nogil=True, cache=True)


@_loop
def _work(state, sequence):
    """Claim and run blocks of job ``sequence`` until none are left (or a newer job replaced it)."""
    while True:
        claim = atomic_load(state, _NEXT)
        block, blocks = claim & _FIELD_MASK, (claim >> _FIELD_BITS) & _FIELD_MASK
        if claim >> (2 * _FIELD_BITS) != sequence or block >= blocks:
            return
        if compare_and_swap(state, _NEXT, claim, claim + 1):
            call_block(state[_FUNCTION], state[_ARGUMENTS], block)  # published before _NEXT: visible here
            atomic_add(state, _DONE, 1)


@_loop
def _serve(state, seen, spin_limit):
    """A helper's life between sleeps: run each new job's blocks; return the last job seen once
    ``spin_limit`` spins passed without one, or when the team is paused."""
    spins = 0
    while spins < spin_limit and atomic_load(state, _PAUSED) == 0:
        sequence = atomic_load(state, _SEQUENCE)
        if sequence == seen:
            spins += 1
            pause()
            continue
        seen, spins = sequence, 0
        _work(state, sequence)
    return seen


@_loop
def _run(state, function, arguments, blocks):
    """Publish a job, take part in it, and wait until every block is done."""
    sequence = (state[_SEQUENCE] + 1) & _FIELD_MASK  # wraps: only equality with the live job matters
    state[_FUNCTION], state[_ARGUMENTS] = function, arguments
    atomic_store(state, _DONE, 0)
    atomic_store(state, _NEXT, (sequence << (2 * _FIELD_BITS)) | (blocks << _FIELD_BITS))
    atomic_store(state, _SEQUENCE, sequence)
    _work(state, sequence)
    while atomic_load(state, _DONE) < blocks:
        pause()


@_loop
def _run_alone(function, arguments, blocks):
    for block in range(blocks):
        call_block(function, arguments, block)


@_loop
def _spin(times):
    for _ in range(times):
        pause()


class Team:
    """The caller and ``helpers`` spinning threads; see the module docstring."""

    def __init__(self, helpers: int) -> None:
        self.helpers = helpers
        self.state = np.zeros(_SLEEPING + 8 * max(helpers, 1), np.int64)
        self._reset()
        _teams.add(self)

    def _reset(self) -> None:
        """A team with no helper threads yet, no job and a free lock (a new team; a forked child's copy).
        Whether it is paused carries over."""
        paused = int(self.state[_PAUSED])
        self.state = np.zeros(_SLEEPING + 8 * max(self.helpers, 1), np.int64)
        self.state[_PAUSED] = paused
        self._wake = [threading.Semaphore(0) for _ in range(self.helpers)]
        self._busy = threading.Lock()
        self._started = False
        self._start_lock = threading.Lock()
        self._spin_limit = 1

    def run(self, function: int, arguments: np.ndarray, blocks: int) -> None:
        """Run ``function(arguments.ctypes.data, block)`` for every block, on the team (GIL released)."""
        if not 0 < blocks <= MAX_BLOCKS:
            raise ValueError(f"team: {blocks} blocks (1..{MAX_BLOCKS} allowed)")
        address = arguments.ctypes.data
        if blocks == 1 or self.helpers == 0 or self.state[_PAUSED] or not self._busy.acquire(blocking=False):
            _run_alone(function, address, blocks)
            return
        try:
            self.start_helpers()
            for index, wake in enumerate(self._wake):
                if self.state[_SLEEPING + 8 * index]:
                    wake.release()
            _run(self.state, function, address, blocks)
        finally:
            self._busy.release()

    def pause(self, paused: bool) -> None:
        """Send the helpers to sleep and run every block on the caller (True), or let them help again."""
        self.state[_PAUSED] = int(paused)

    def start_helpers(self) -> None:
        """Start the helper threads (once); the first multi-block job does it otherwise."""
        with self._start_lock:
            if self._started:
                return
            _spin(1)  # compiled (or loaded) before it is timed
            _serve(self.state, self.state[_SEQUENCE], 0)  # compiled here, not in a helper thread (holding
            # numba's compiler lock there, a fork() would leave the child's lock held forever)
            start = time.perf_counter()
            _spin(20000)
            self._spin_limit = max(1, int(20000 / max(time.perf_counter() - start, 1e-6) * SPIN_SECONDS))
            for index in range(self.helpers):
                threading.Thread(
                    target=self._help, args=(index,), name=f"tinygrad_tx-team-{index}", daemon=True
                ).start()
            self._started = True

    def _help(self, index: int) -> None:
        seen, sleeping = 0, _SLEEPING + 8 * index
        while True:
            seen = _serve(self.state, seen, self._spin_limit)
            self.state[sleeping] = 1
            if self.state[_SEQUENCE] != seen and not self.state[_PAUSED]:  # a job came as we stopped
                self.state[sleeping] = 0
                continue
            self._wake[index].acquire()
            self.state[sleeping] = 0


_teams: weakref.WeakSet[Team] = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child: the parent's helper threads are gone; start over (helpers on first use)."""
    for live in list(_teams):
        live._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def start(workers: int) -> Team | None:
    """Route the compiled kernels through a team of ``workers`` threads in all (the caller included),
    at most as many as OpenBLAS was given (OPENBLAS_NUM_THREADS: a data-parallel rank given one core
    gets no team), and hold OpenBLAS to one thread. None (nothing changed) where there is no OpenBLAS
    sgemm to split GEMMs with, or one thread. Called by tune_for_training(); a second call returns
    the same team."""
    blas = openblas.thread_functions()
    if not blas or openblas.sgemm_address() is None or row_blocks.team() is not None:
        return row_blocks.team()
    workers = min(workers, blas[1]())
    if workers < 2:
        return None
    row_blocks.use_team(Team(workers - 1))
    blas[0](1)
    return row_blocks.team()


def warm_up() -> None:
    """Compile (or load from numba's on-disk cache) every block function the op modules declared
    (jobs.block_function registers them as they are imported) and start the helpers, so the first
    training step pays for neither. tinygrad_tx.tuning imports the op modules first."""
    from . import jobs

    jobs.compile_blocks()
    started = row_blocks.team()
    if started is not None:
        started.start_helpers()
