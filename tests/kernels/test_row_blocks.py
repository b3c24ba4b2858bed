"""kernels/runtime/row_blocks.py: blocks of rows pulled by the caller and the helper threads.

The properties the fast kernels rely on: every row is covered exactly once, the blocks' return values
come back in order, an error in a block reaches the caller, a helper that never gets to run does not
hold the caller up (a busy machine), and small arrays or nested calls run as one plain call. The last
test runs the fast kernels themselves over many blocks and holds them to the reference.
"""

import threading
import time

import numpy as np
import pytest

from tinygrad_tx.kernels.cpu import common
from tinygrad_tx.kernels.runtime import row_blocks

from helpers.kernel_cases import FAST
from helpers.kernel_checks import check_adamw, check_attention, check_gelu, check_layer_norm, check_softmax


@pytest.fixture
def always_parallel(monkeypatch):
    """Every call of more than one row is cut into blocks (the thresholds normally keep small arrays whole)."""
    monkeypatch.setattr(row_blocks, "PARALLEL_MIN_ELEMENTS", 1)
    monkeypatch.setattr(common, "NUMPY_MIN_ELEMENTS", 1)
    if row_blocks.WORKERS < 2:
        pytest.skip(f"one core available to this process ({row_blocks.WORKERS} worker): nothing runs in blocks")


def test_every_row_once_and_results_in_block_order(always_parallel):
    rows = np.arange(1000, dtype=np.int64)
    out = np.zeros_like(rows)
    threads = set()

    def block(values, out_block):
        threads.add(threading.current_thread().name)
        out_block += values + 1  # += : a row visited twice would show
        return (int(values[0]), int(values[-1]))

    spans = row_blocks.in_row_blocks(block, rows, out)
    assert np.array_equal(out, rows + 1)
    assert len(spans) == min(1000, row_blocks.WORKERS * row_blocks.BLOCKS_PER_CORE) > 1
    assert spans[0][0] == 0 and spans[-1][1] == 999
    assert all(a[1] + 1 == b[0] for a, b in zip(spans, spans[1:])), "blocks out of order or overlapping"


def test_small_arrays_and_nested_calls_run_as_one_call():
    calls = []
    row_blocks.in_row_blocks(lambda block: calls.append(block.shape), np.zeros((8, 4)))
    assert calls == [(8, 4)], "an array below PARALLEL_MIN_ELEMENTS should not be cut"


def test_nested_call_inside_a_block_runs_in_place(always_parallel):
    inner_counts = []

    def outer(block):
        inner_counts.append(len(row_blocks.in_row_blocks(lambda b: None, np.zeros((64, 2)))))

    row_blocks.in_row_blocks(outer, np.zeros((64, 2)))
    assert inner_counts and set(inner_counts) == {1}, "a call from inside a block must not hand out blocks again"


def test_an_error_in_a_block_reaches_the_caller(always_parallel):
    def block(values):
        if values[0] >= 500:
            raise ValueError("bad block")

    with pytest.raises(ValueError, match="bad block"):
        row_blocks.in_row_blocks(block, np.arange(1000))
    # the pool still works afterwards
    assert len(row_blocks.in_row_blocks(lambda v: v.size, np.arange(1000))) > 1


def test_the_caller_does_not_wait_for_a_helper_that_never_runs(always_parallel):
    """A busy machine: every helper is held elsewhere, so the caller must take all the blocks itself."""
    release, held = threading.Event(), threading.Barrier(row_blocks.WORKERS)
    stall_done = threading.Event()

    checked_in = set()

    def stall(values):  # every thread that takes a block waits for the release; helpers check in once
        name = threading.current_thread().name
        if name.startswith("tinygrad_tx") and name not in checked_in:
            checked_in.add(name)
            held.wait(timeout=10)
        release.wait(timeout=30)

    staller = threading.Thread(target=lambda: (row_blocks.in_row_blocks(stall, np.arange(1000)), stall_done.set()))
    staller.start()
    held.wait(timeout=10)  # every helper now sits in a block of the other call
    try:
        finished = threading.Event()
        worker = threading.Thread(
            target=lambda: (row_blocks.in_row_blocks(lambda v: None, np.arange(1000)), finished.set())
        )
        worker.start()
        assert finished.wait(timeout=10), "in_row_blocks waited for helpers that were busy elsewhere"
    finally:
        release.set()
        staller.join(timeout=30)
    assert stall_done.is_set()


def test_fast_kernels_equal_the_reference_across_blocks(always_parallel):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 40, 96)).astype(np.float32)
    grad = rng.standard_normal(x.shape).astype(np.float32)
    weight, bias = rng.standard_normal((2, 96)).astype(np.float32)
    check_layer_norm(FAST, x, weight, bias, grad)
    check_layer_norm(FAST, x, weight, None, grad)
    check_softmax(FAST, x, -1, grad)
    check_gelu(FAST, x, grad, "none")
    q, k, v = (rng.standard_normal((4, 3, 16, 8)).astype(np.float32) for _ in range(3))
    causal = np.tri(16, 16, dtype=bool)
    for dropout_p in (0.0, 0.3):
        check_attention(FAST, q, k, v, causal, dropout_p, rng.standard_normal(q.shape).astype(np.float32), 3)

    def make_state():
        return tuple(np.full((64, 33), value, np.float32) for value in (0.5, 0.0, 0.0))

    check_adamw(FAST, make_state, [rng.standard_normal((64, 33)).astype(np.float32) for _ in range(3)], 0.1)


def test_blas_threads_follow_the_cores_other_programs_leave_free(monkeypatch):
    """Another program using a core for the last WATCH_SECONDS takes one thread from OpenBLAS; when it
    stops, the thread comes back. The load is simulated by moving the last /proc/stat reading back."""
    if not row_blocks.follow_free_cores():
        pytest.skip("no /proc/stat, no settable OpenBLAS thread count, or one core: nothing to follow")
    set_threads, get_threads = row_blocks._blas_functions
    ceiling = row_blocks._watch["ceiling"]
    try:
        watch = row_blocks._watch
        watch.update(time=watch["time"] - 1.0, busy=watch["busy"] - 1.0, last_call=time.monotonic())
        row_blocks.fit_blas_threads()  # one core-second of others' work in the last second
        assert get_threads() == max(1, min(ceiling, row_blocks.WORKERS - 1))
        watch.update(time=watch["time"] - 1.0, last_call=time.monotonic())
        row_blocks.fit_blas_threads()  # a quiet second
        assert get_threads() == min(ceiling, row_blocks.WORKERS)
        watch.update(time=watch["time"] - 1.0, busy=watch["busy"] - 1.0, last_call=time.monotonic() - 1.0)
        row_blocks.fit_blas_threads()  # after a pause: the window restarts, nothing changes
        assert get_threads() == min(ceiling, row_blocks.WORKERS)
    finally:
        row_blocks._watch.clear()
        set_threads(ceiling)
