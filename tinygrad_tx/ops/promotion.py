"""PyTorch's type promotion for ops that mix dtypes: which dtype a result has, and the operands cast to it.

NumPy's rules differ from PyTorch's exactly where integers meet floats: ``int32 / 2`` and
``int32 + 1.5`` are float64 in NumPy and float32 (PyTorch's default float) in PyTorch, and a
float32 tensor meeting an int64 one is float64 in NumPy and float32 in PyTorch. The rules kept here:

- categories bool < integer < float; tensors meeting tensors take the highest category's widest
  dtype (``int8 + uint8 -> int16`` as NumPy; ``float32 + int64 -> float32``);
- a Python number only matters when its category is above every tensor's: then the result is
  that category's default (``int -> int64``, ``float -> float32``); otherwise the tensors decide,
  and an integer is cast to their dtype with wraparound, as PyTorch does (``uint8 - 1 -> 255``);
- true division of integers or booleans gives float32; ``-`` on booleans is refused.

0-d tensors count as tensors (NumPy's rule, documented in docs/errors.md): PyTorch lets a 0-d
float64 tensor lose to a float32 one.
"""

import numbers

import numpy as np

from ..errors import DTypeError
from ..tensor import Tensor

_DEFAULT = {1: np.dtype(np.int64), 2: np.dtype(np.float32), 3: np.dtype(np.complex64)}


def _category(kind):
    return {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}[kind]


def _scalar_category(value):
    if isinstance(value, bool):
        return 0
    if isinstance(value, numbers.Integral):
        return 1
    return 3 if isinstance(value, complex) else 2


def _is_bool(operand):
    return operand.dtype.kind == "b" if isinstance(operand, Tensor) else isinstance(operand, (bool, np.bool_))


def result_dtype(op, *operands):
    """The dtype PyTorch gives ``op`` (a name: "add", "div", ...) on these tensors and Python numbers."""
    dtypes = [o.dtype for o in operands if isinstance(o, Tensor)]
    top = max(_category(d.kind) for d in dtypes)
    dtype = np.result_type(*[d for d in dtypes if _category(d.kind) == top])
    scalars = [_scalar_category(o) for o in operands if not isinstance(o, Tensor)]
    if scalars and max(scalars) > top:
        dtype = _DEFAULT[max(scalars)]
    if op == "div" and dtype.kind in "biu":
        dtype = _DEFAULT[2]
    if op in ("sub", "neg") and (dtype.kind == "b" or any(_is_bool(o) for o in operands)):
        raise DTypeError(
            f"{op}: '-' is not defined on boolean tensors (use ~ for logical not, ^ for exclusive or, "
            "or convert with .astype('int64'))"
        )
    return dtype


def _cast_scalar(op, value, dtype):
    """A Python integer as PyTorch casts it into an integer result dtype: wrapped around, not rejected."""
    if dtype.kind not in "iu" or isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return value
    if not -(2**63) <= value < 2**64:
        raise DTypeError(f"{op}: the integer {value} does not fit in 64 bits")
    return np.array(value, np.uint64 if value >= 2**63 else np.int64).astype(dtype).item()


def promote(op, *operands):
    """``operands`` with integer and boolean tensors cast to the result dtype and Python integers wrapped.

    Float tensors are left as they are (a float32 one meeting float64 computes in float64 and gets
    its gradient cast back by the engine); only tensors without gradients (not float) are cast.
    """
    if not any(isinstance(o, Tensor) for o in operands):
        return operands
    dtype = result_dtype(op, *operands)
    return tuple(
        (Tensor._wrap(o.data.astype(dtype)) if o.dtype.kind not in "fc" and o.dtype != dtype else o)
        if isinstance(o, Tensor)
        else _cast_scalar(op, o, dtype)
        for o in operands
    )
