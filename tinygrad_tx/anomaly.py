"""Anomaly detection: stop at the first NaN or Inf, naming the op, the pass and the user's line.

Off by default. When off the engine pays one boolean test per op; when on, every Function.apply
records where in user code it was called and every forward output and backward gradient is checked.
"""

import contextlib
import os
import traceback

from .backend import xp_of
from .errors import AnomalyError
from .scoped import ScopedSetting

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_anomaly_mode = ScopedSetting("anomaly mode", False)


def is_anomaly_enabled():
    """Whether anomaly detection is on in this thread (off by default in every thread)."""
    return _anomaly_mode.get()


@contextlib.contextmanager
def detect_anomaly(enabled=True):
    """Context manager: raise ``AnomalyError`` at the first non-finite forward output or gradient.

    Applies to the calling thread only, and restores the previous mode on exit (nesting, exceptions).
    """
    with _anomaly_mode.scope(bool(enabled)):
        yield


def user_call_site():
    """'file:line' of the innermost stack frame outside the tinygrad_tx package."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno}"
    return "<unknown>"


def check_finite(array, op_name, phase, where, what):
    """Raise if ``array`` holds a NaN or Inf. ``phase`` is 'forward' or 'backward'."""
    if array is None or array.dtype.kind not in "fc":
        return
    if not bool(xp_of(array).isfinite(array).all()):
        raise AnomalyError(
            f"anomaly: {op_name} produced a NaN or Inf in its {phase} pass ({what}); the op was created at {where}"
        )
