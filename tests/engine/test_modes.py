"""Grad mode, anomaly mode and the fused/composed default are per-thread stacks (issue 13, item 2).

Nesting, recursion through one decorator instance, exceptions and other threads must all leave
each mode as it was found.
"""

import threading

import numpy as np
import pytest

import tinygrad_tx as tx
import tinygrad_tx.nn.functional as F
from tinygrad_tx import Tensor, detect_anomaly, enable_grad, no_grad
from tinygrad_tx.anomaly import is_anomaly_enabled


def in_thread(function):
    """function() run in a new thread; its result (or exception) returned here."""
    box = {}

    def target():
        try:
            box["result"] = function()
        except BaseException as exc:  # handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def test_recursive_no_grad_decorator_restores_grad_mode():
    """Regression: the decorator kept its saved state on the shared instance, so re-entry left grad off."""

    @no_grad()
    def countdown(n):
        return countdown(n - 1) if n else tx.is_grad_enabled()

    assert countdown(3) is False
    assert tx.is_grad_enabled()
    assert (Tensor([1.0], requires_grad=True) * 2).requires_grad


def test_nested_no_grad_and_enable_grad_through_one_instance():
    scope = no_grad()
    with scope:
        with enable_grad():
            assert tx.is_grad_enabled()
            with scope:
                assert not tx.is_grad_enabled()
            assert tx.is_grad_enabled()
        assert not tx.is_grad_enabled()
    assert tx.is_grad_enabled()


def test_an_exception_inside_no_grad_restores_grad_mode():
    @no_grad()
    def fails():
        raise KeyError("inside")

    with pytest.raises(KeyError):
        fails()
    with pytest.raises(ValueError), no_grad():
        raise ValueError
    assert tx.is_grad_enabled()


def test_grad_mode_never_leaks_between_threads():
    with no_grad():
        other = in_thread(lambda: (tx.is_grad_enabled(), (Tensor([1.0], requires_grad=True) * 2).requires_grad))
        assert other == (True, True)
        assert not (Tensor([1.0], requires_grad=True) * 2).requires_grad
    started, release = threading.Event(), threading.Event()

    def holds_no_grad():
        with no_grad():
            started.set()
            release.wait(10)
            return tx.is_grad_enabled()

    thread_result = {}
    thread = threading.Thread(target=lambda: thread_result.update(value=holds_no_grad()))
    thread.start()
    started.wait(10)
    try:
        assert tx.is_grad_enabled(), "another thread's no_grad turned grad mode off here"
    finally:
        release.set()
        thread.join()
    assert thread_result["value"] is False


def test_one_decorated_function_called_from_two_threads_at_once():
    inside, release = threading.Barrier(2), threading.Event()

    @no_grad()
    def hold():
        inside.wait(10)
        release.wait(10)
        return tx.is_grad_enabled()

    results = []
    threads = [threading.Thread(target=lambda: results.append(hold())) for _ in range(2)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join()
    assert results == [False, False] and tx.is_grad_enabled()


def test_anomaly_mode_is_per_thread_and_nests():
    with detect_anomaly():
        assert is_anomaly_enabled()
        assert in_thread(is_anomaly_enabled) is False
        with detect_anomaly(False):
            assert not is_anomaly_enabled()
        assert is_anomaly_enabled()
        with pytest.raises(tx.AnomalyError):
            Tensor([-1.0], requires_grad=True).log().sum()
        in_thread(lambda: Tensor([-1.0], requires_grad=True).log())  # no anomaly check in the other thread
    assert not is_anomaly_enabled()


def test_default_impl_is_per_thread():
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    F.set_default_impl("composed")
    try:
        assert F.softmax(x).grad_fn != "Softmax"
        assert in_thread(lambda: (F.get_default_impl(), F.softmax(x).grad_fn)) == ("fused", "Softmax")
        in_thread(lambda: F.set_default_impl("fused"))
        assert F.get_default_impl() == "composed"
    finally:
        F.set_default_impl("fused")
    assert F.softmax(x).grad_fn == "Softmax"
