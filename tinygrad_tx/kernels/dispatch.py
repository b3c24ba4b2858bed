"""Which implementation of a fused op runs: the public switches and the one lookup behind every op.

    import tinygrad_tx.kernels as kernels
    from tinygrad_tx.kernels import reference
    kernels.use("reference")            # this thread, from now on
    with kernels.use("reference"):      # this block only; the previous choice comes back on exit
        ...
    kernels.current()                   # "reference" | "fast"
    with kernels.override(layer_norm_backward=my_fn):   # every call of that kernel, this thread
        ...
    kernels.pick(reference.layer_norm_backward, x)      # what a fused op calls

"fast" (the default) runs the fast CPU code (kernels/cpu/<op>.py) on NumPy arrays and the CUDA
kernels (kernels/cuda/<op>.py) on CuPy arrays; "reference" runs reference.py's plain formulas
everywhere. The environment variable TINYGRAD_TX_KERNELS=reference|fast sets the default of every
thread. The choice and the overrides are per thread (a ``tinygrad_tx.scoped.ScopedSetting``), like
grad mode. docs/kernels.md, "Three ways to see the plain version", says how this switch differs from
``F.set_default_impl("composed")`` and from ``override``.

The tables are keyed by the reference function itself, so ``pick(reference.layer_norm_backward, x)``
leads an editor's go-to-definition straight to the formula. The fast tables are built on the first
fast call (importing kernels/cpu loads numba), so ``import tinygrad_tx`` stays light.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from .. import backend
from ..errors import TinygradTxError
from ..scoped import ScopedSetting
from . import reference

ENV_VAR = "TINYGRAD_TX_KERNELS"
CHOICES = ("reference", "fast")
KERNELS: tuple[Callable[..., Any], ...] = tuple(
    function for name, function in vars(reference).items() if name.endswith(("_forward", "_backward", "_update"))
)
KERNEL_NAMES = tuple(kernel.__name__ for kernel in KERNELS)
_BY_NAME = dict(zip(KERNEL_NAMES, KERNELS))


class _Table(dict):
    """{reference function: implementation}; a key that is not a kernel gets a one-line error."""

    def __missing__(self, kernel: Any) -> Any:
        raise TinygradTxError(
            f"kernels.pick: {getattr(kernel, '__name__', kernel)!r} is not a kernel of kernels/reference.py"
        )


class _FastTable(_Table):
    """The fast table of one side ("cpu" or "gpu"), filled on its first lookup."""

    def __init__(self, side: int) -> None:
        super().__init__()
        self.side = side

    def __missing__(self, kernel: Any) -> Any:
        if not self:
            self.update(_fast_tables()[self.side])
            if kernel in self:
                return dict.__getitem__(self, kernel)
        return super().__missing__(kernel)


class _BadChoice(_Table):
    def __init__(self, choice: str) -> None:
        super().__init__()
        self.choice = choice

    def __missing__(self, kernel: Any) -> Any:  # only a bad environment variable gets here: use() checks its argument
        raise TinygradTxError(f"{ENV_VAR}={self.choice!r} is not a kernel choice: use 'reference' or 'fast'")


def _fast_tables() -> tuple[dict, dict]:
    """(CPU table, GPU table): each reference kernel's namesake in kernels/cpu and kernels/cuda (the
    reference where CUDA has none)."""
    from . import cpu, cuda  # numba loads here, on the first fast call

    def namesake(modules: tuple, kernel: Callable[..., Any], default: Any) -> Any:
        return next((getattr(m, kernel.__name__) for m in modules if hasattr(m, kernel.__name__)), default)

    on_cpu = {kernel: namesake(cpu.OPS, kernel, None) for kernel in KERNELS}
    missing = [kernel.__name__ for kernel, fast in on_cpu.items() if fast is None]
    if missing:
        raise RuntimeError(f"kernels/cpu has no fast version of {', '.join(missing)}")
    return on_cpu, {kernel: namesake(cuda.OPS, kernel, kernel) for kernel in KERNELS}


_REFERENCE = _Table({kernel: kernel for kernel in KERNELS})
_BASE = {"reference": (_REFERENCE, _REFERENCE), "fast": (_FastTable(0), _FastTable(1))}


class _State(NamedTuple):
    """One thread's kernels: its choice, its overrides, and the two tables ``pick`` reads."""

    choice: str
    overrides: dict
    on_cpu: dict
    on_gpu: dict


def _state(choice: str, overrides: dict) -> _State:
    if choice not in _BASE:
        return _State(choice, overrides, _BadChoice(choice), _BadChoice(choice))
    on_cpu, on_gpu = _BASE[choice]
    if overrides:
        on_cpu, on_gpu = (_Table({**{k: table[k] for k in KERNELS}, **overrides}) for table in (on_cpu, on_gpu))
    return _State(choice, overrides, on_cpu, on_gpu)


_active = ScopedSetting("kernels", _state(os.environ.get(ENV_VAR, "fast"), {}))


def _checked(name: str) -> str:
    if name not in CHOICES:
        raise TinygradTxError(f"kernels.use: unknown kernels {name!r}: use 'reference' or 'fast'")
    return name


class use:
    """Run the fused ops on ``name``'s kernels ("reference" | "fast") in this thread.

    A plain call switches until changed again (or until the enclosing ``with use(...)`` ends); as a
    context manager it also restores the previous choice on exit, as torch.set_grad_enabled does.
    Overrides in force (``override``) stay in force. This picks *which kernels* implement a fused op;
    ``F.set_default_impl("composed")`` instead replaces the fused op by primitives: docs/kernels.md,
    "Three ways to see the plain version".
    """

    def __init__(self, name: str):
        self._previous = _active.get()
        _active.set(_state(_checked(name), self._previous.overrides))

    def __enter__(self) -> use:
        return self

    def __exit__(self, *exc_info) -> None:
        _active.set(self._previous)


@contextlib.contextmanager
def override(**replacements: Callable[..., Any]) -> Iterator[None]:
    """Route every call of the named kernels in this thread through your functions, for the block.

        with kernels.override(layer_norm_backward=my_layer_norm_backward):
            loss = model(idx, targets)[1]; loss.backward()

    Each function takes the same arguments as its namesake in kernels/reference.py and returns the
    same. It replaces both the "reference" and the "fast" choice, on CPU and GPU arrays; the previous
    kernels come back on exit; other threads are unaffected; nested overrides compose (the inner one
    wins for a kernel both name). docs/experimenting.md shows it on a GPT.
    """
    unknown = sorted(set(replacements) - set(KERNEL_NAMES))
    if unknown:
        raise TinygradTxError(
            f"kernels.override: unknown kernel {unknown[0]!r}: valid kernels are {', '.join(KERNEL_NAMES)}"
        )
    current = _active.get()
    merged = {**current.overrides, **{_BY_NAME[name]: function for name, function in replacements.items()}}
    with _active.scope(_state(current.choice, merged)):
        yield


def current() -> str:
    """The kernels this thread runs: "reference" or "fast"."""
    return _active.get().choice


def pick(kernel: Callable[..., Any], array: Any) -> Callable[..., Any]:
    """The implementation of ``kernel`` (a function of kernels/reference.py, e.g. ``reference.softmax_forward``)
    for ``array``'s device and this thread: one dictionary lookup. A Tensor (a backward recorded under
    create_graph=True) always gets the reference formula itself, which then runs on Tensors."""
    state = _active.get()
    if backend.is_gpu_array(array):
        return state.on_gpu[kernel]
    return (state.on_cpu if isinstance(array, np.ndarray) else _REFERENCE)[kernel]
