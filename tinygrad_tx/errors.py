"""The exceptions users see. One base class so callers (and the CLIs) can catch every user mistake.

Messages name the op and the values involved, e.g.
``matmul: shapes (3, 4) and (5, 4) do not align (4 != 5)``. The full catalogue is docs/errors.md.
"""


class TinygradTxError(ValueError):
    """A user mistake: bad shapes, values, files or configuration."""


class ShapeError(TinygradTxError):
    """Operands whose shapes do not fit the op."""


class DTypeError(TinygradTxError, TypeError):
    """An integer or boolean tensor where a float one is needed, or the reverse."""


class DeviceError(TinygradTxError, RuntimeError):
    """Unknown device, GPU without CuPy, or tensors on different devices in one op."""


class GraphError(TinygradTxError, RuntimeError):
    """Misuse of backward: freed graph, non-scalar without a gradient, wrong gradient shape."""


class GradcheckError(AssertionError):
    """An analytic gradient that disagrees with finite differences."""


class AnomalyError(FloatingPointError):
    """A NaN or Inf produced while anomaly detection is on."""


class IndexOutOfRangeError(TinygradTxError, IndexError):
    """An index past the end of an axis (getitem, embedding); the message gives the index and the size."""
