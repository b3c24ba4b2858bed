"""Which implementation of a fused op runs: the public switch and the one lookup behind every op.

    import tinygrad_tx.kernels as kernels
    kernels.use("reference")            # this thread, from now on
    with kernels.use("reference"):      # this block only; the previous choice comes back on exit
        ...
    kernels.current()                   # "reference" | "fast"

"fast" (the default) runs the fast CPU code (cpu.py, cpu_elementwise.py) on NumPy arrays and the
CUDA kernels (cuda_fast.py) on CuPy arrays; "reference" runs reference.py's plain formulas
everywhere. The environment variable TINYGRAD_TX_KERNELS=reference|fast sets the default of every
thread. The choice is per thread (a ``tinygrad_tx.scoped.ScopedSetting``), like grad mode.
"""

import os

from .. import backend
from ..errors import TinygradTxError
from ..scoped import ScopedSetting
from . import cpu, cpu_elementwise, cuda_fast, reference

ENV_VAR = "TINYGRAD_TX_KERNELS"
CHOICES = ("reference", "fast")
KERNEL_NAMES = tuple(name for name in vars(reference) if name.endswith(("_forward", "_backward", "_update")))


def _table(*modules):
    """{kernel name: the function of the first module that defines it}."""
    return {name: next(getattr(m, name) for m in modules if hasattr(m, name)) for name in KERNEL_NAMES}


_REFERENCE = _table(reference)
# choice -> (table for NumPy arrays, table for CuPy arrays)
_TABLES = {"reference": (_REFERENCE, _REFERENCE), "fast": (_table(cpu, cpu_elementwise), _table(cuda_fast, reference))}

_choice = ScopedSetting("kernels", os.environ.get(ENV_VAR, "fast"))


def _checked(name: str) -> str:
    if name not in CHOICES:
        raise TinygradTxError(f"kernels.use: unknown kernels {name!r}: use 'reference' or 'fast'")
    return name


class use:
    """Run the fused ops on ``name``'s kernels ("reference" | "fast") in this thread.

    A plain call switches until changed again (or until the enclosing ``with use(...)`` ends); as a
    context manager it also restores the previous choice on exit, as torch.set_grad_enabled does.
    """

    def __init__(self, name: str):
        self._previous = _choice.get()
        _choice.set(_checked(name))

    def __enter__(self) -> "use":
        return self

    def __exit__(self, *exc_info) -> None:
        _choice.set(self._previous)


def current() -> str:
    """The kernels this thread runs: "reference" or "fast"."""
    return _choice.get()


def pick(name: str, array):
    """The implementation of kernel ``name`` (e.g. "softmax_forward") for ``array``'s device and this thread."""
    try:
        on_cpu, on_gpu = _TABLES[_choice.get()]
    except KeyError:  # only a bad environment variable gets here: use() checks its argument
        raise TinygradTxError(
            f"{ENV_VAR}={_choice.get()!r} is not a kernel choice: use 'reference' or 'fast'"
        ) from None
    return (on_gpu if backend.is_gpu_array(array) else on_cpu)[name]
