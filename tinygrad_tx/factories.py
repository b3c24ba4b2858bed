"""Tensors made from nothing but a shape or a range, on a chosen device, and the no-copy ``from_numpy``.

    from tinygrad_tx import arange, from_numpy, randn, tril, zeros
    positions = arange(start, start + T, device=x.device)    # int64 (T,), as torch.arange with ints
    mask = tril(T, T, dtype="bool", device=x.device)         # True on and below the diagonal
    noise = randn(4, 8, device="gpu")                        # the device's seeded generator (manual_seed)
    t = from_numpy(array)                                    # shares array's memory (see its docstring)

Every factory takes ``device`` ('cpu' | 'gpu', alias 'cuda'), ``dtype`` and ``requires_grad``. Floats are
float32 unless ``dtype`` says otherwise (the engine's default); ``dtype`` is anything NumPy accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np

from . import backend
from .errors import DTypeError
from .tensor import Tensor

Shape = Union[int, Sequence[int]]
DType = Any  # a NumPy dtype, a scalar type such as np.float32, or its name ("float32", "bool", ...)
Device = Optional[str]


def _shape(shape: tuple[Shape, ...]) -> tuple[int, ...]:
    """``zeros(2, 3)`` and ``zeros((2, 3))`` mean the same shape."""
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        return tuple(int(n) for n in shape[0])
    return tuple(int(n) for n in shape)  # type: ignore[arg-type]


def _made(array: Any, dtype: DType, requires_grad: bool) -> Tensor:
    """A fresh array this module just allocated, as a Tensor (float64 -> float32 unless asked for)."""
    if dtype is None and array.dtype.kind == "f" and array.dtype != backend.DEFAULT_FLOAT:
        array = array.astype(backend.DEFAULT_FLOAT)
    return Tensor.from_array(array, requires_grad=requires_grad)


def arange(
    start: float,
    stop: float | None = None,
    step: float = 1,
    *,
    dtype: DType = None,
    device: Device = "cpu",
    requires_grad: bool = False,
) -> Tensor:
    """[start, stop) in steps of ``step`` (``arange(n)`` is 0 .. n-1); int64 for integer arguments."""
    xp = backend.array_module(device)
    values = xp.arange(start, step=step, dtype=dtype) if stop is None else xp.arange(start, stop, step, dtype=dtype)
    return _made(values, dtype, requires_grad)


def full(
    shape: Shape,
    fill_value: bool | int | float,
    *,
    dtype: DType = None,
    device: Device = "cpu",
    requires_grad: bool = False,
) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value``; the dtype follows the value (bool, int64, float32)."""
    return _made(backend.array_module(device).full(_shape((shape,)), fill_value, dtype=dtype), dtype, requires_grad)


def zeros(*shape: Shape, dtype: DType = "float32", device: Device = "cpu", requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    return _made(backend.array_module(device).zeros(_shape(shape), dtype=dtype), dtype, requires_grad)


def ones(*shape: Shape, dtype: DType = "float32", device: Device = "cpu", requires_grad: bool = False) -> Tensor:
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``."""
    return _made(backend.array_module(device).ones(_shape(shape), dtype=dtype), dtype, requires_grad)


def tril(
    rows: int, cols: int | None = None, diagonal: int = 0, *, dtype: DType = "float32", device: Device = "cpu"
) -> Tensor:
    """A (rows, cols) matrix of ones on and below the ``diagonal``-th diagonal, zeros above (NumPy's ``tri``).

    ``tril(T)`` is ``torch.tril(torch.ones(T, T))``, the causal mask of "Let's build GPT"; with
    ``dtype="bool"`` it is True where query i may look at key j (j <= i + diagonal).
    """
    return _made(backend.array_module(device).tri(rows, cols, k=diagonal, dtype=dtype), dtype, False)


def randn(*shape: Shape, dtype: DType = "float32", device: Device = "cpu", requires_grad: bool = False) -> Tensor:
    """Standard normal samples drawn from the device's seeded generator (``manual_seed`` makes them repeat)."""
    values = backend.rng(device).standard_normal(_shape(shape), dtype=dtype)
    return _made(values, dtype, requires_grad)


def from_numpy(array: np.ndarray, device: Device = "cpu", requires_grad: bool = False) -> Tensor:
    """A Tensor over a NumPy array's memory: no copy on the CPU, so the two alias each other.

    Writing into ``array`` changes the tensor and an optimizer step on the tensor changes ``array``;
    copy first (``from_numpy(array.copy())`` or ``Tensor(array)``) to keep them apart. The dtype is
    kept as it is (float64 stays float64, unlike ``Tensor(array)``). On the GPU the values are
    necessarily copied to the device. See ``Tensor.from_array`` for NumPy or CuPy arrays in general.
    """
    if not isinstance(array, np.ndarray):
        raise DTypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    if backend.normalize_device(device) != "cpu":
        array = backend.as_array(array, device)
    return Tensor.from_array(array, requires_grad=requires_grad)
