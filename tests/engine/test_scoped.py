"""ScopedSetting: the per-thread stack behind grad mode, anomaly mode and the kernel switch."""

import threading

import pytest

from tinygrad_tx.scoped import ScopedSetting


def test_scopes_nest_and_restore():
    setting = ScopedSetting("mode", "a")
    with setting.scope("b"):
        with setting.scope("c"):
            assert setting.get() == "c"
        assert setting.get() == "b"
    assert setting.get() == "a"


def test_an_exception_restores_the_value():
    setting = ScopedSetting("mode", "a")
    with pytest.raises(RuntimeError), setting.scope("b"):
        raise RuntimeError
    assert setting.get() == "a"


def test_set_inside_a_scope_ends_with_the_scope():
    setting = ScopedSetting("mode", "a")
    with setting.scope("b"):
        setting.set("c")
        assert setting.get() == "c"
    assert setting.get() == "a"


def test_pop_closes_scopes_left_open_inside():
    setting = ScopedSetting("mode", "a")
    outer = setting.push("b")
    setting.push("c")
    setting.pop(outer)
    assert setting.get() == "a"


def test_each_thread_has_its_own_value():
    setting = ScopedSetting("mode", "a")
    seen = []
    with setting.scope("b"):
        thread = threading.Thread(target=lambda: seen.append(setting.get()))
        thread.start()
        thread.join()
    assert seen == ["a"]
