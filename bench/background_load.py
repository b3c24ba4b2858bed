"""Busy cores for benchmarking under load: ``with spinning(n): ...`` keeps ``n`` other processes spinning.

A learner's laptop runs a browser beside the training; ``bench.train_step --background-load N``
reproduces that with N processes that do nothing but spin (pure Python, no memory traffic), started
before the timed rounds and stopped after them. Each is a plain process at the default priority, so
the scheduler shares the cores between it and the benchmark's threads as it would a real one.
"""

import contextlib
import multiprocessing
import time


def _spin(stop):
    """Burn one core until ``stop`` is set (checked every ~10 ms, so stopping is prompt)."""
    while not stop.is_set():
        deadline = time.perf_counter() + 0.01
        while time.perf_counter() < deadline:
            pass


@contextlib.contextmanager
def spinning(count):
    """Run ``count`` spinning processes for the duration of the block (none for count 0)."""
    if count < 0:
        raise ValueError(f"background load: the number of busy processes must be >= 0, got {count}")
    if count == 0:
        yield []
        return
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    spinners = [context.Process(target=_spin, args=(stop,), daemon=True) for _ in range(count)]
    for process in spinners:
        process.start()
    try:
        yield spinners
    finally:
        stop.set()
        for process in spinners:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
