"""Per-thread settings that a context manager changes and restores: grad mode, anomaly mode, kernels.

Each setting is a stack kept per thread. Entering a scope pushes a value and leaving it pops back to
the depth it found, so nesting, recursion, exceptions and other threads all see the right value. A
new thread starts at the setting's default, as PyTorch's grad mode does. Nothing lives on the object
a ``with`` statement enters, so one decorator instance can be re-entered (a recursive ``@no_grad()``).
"""

import contextlib
import threading


class ScopedSetting:
    """One named setting: ``get()``, ``set(value)`` for this thread, ``scope(value)`` to change it for a block."""

    def __init__(self, name, default):
        self.name = name
        self.default = default
        self._local = threading.local()

    def _stack(self):
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = [self.default]
        return stack

    def get(self):
        try:  # every op asks (grad mode, anomaly mode, kernels): the common case is one attribute read
            return self._local.stack[-1]
        except AttributeError:
            return self._stack()[-1]

    def set(self, value):
        """Change the value in this thread until the enclosing scope (if any) ends."""
        self._stack()[-1] = value

    def push(self, value):
        """Enter a scope holding ``value``; returns the token ``pop`` needs."""
        stack = self._stack()
        stack.append(value)
        return len(stack) - 1

    def pop(self, token):
        """Leave the scope ``push`` returned ``token`` for, and any scope left open inside it."""
        del self._stack()[token:]

    @contextlib.contextmanager
    def scope(self, value):
        token = self.push(value)
        try:
            yield
        finally:
            self.pop(token)
