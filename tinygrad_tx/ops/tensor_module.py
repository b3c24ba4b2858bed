"""The array-module functions of NumPy that the backwards and kernels/reference.py call, for Tensors.

``backend.xp_of(tensor)`` returns one of these, as ``xp_of(array)`` returns numpy or cupy. So a
formula written ``xp = xp_of(x); xp.exp(x) * y`` runs on arrays (fast, nothing recorded) and on
Tensors (every step recorded, so it can be differentiated): one formula, two uses
(docs/derivations/second_order.md). Only what the engine's formulas use is here; every function
returns a Tensor, and array arguments (masks, indices) are constants.
"""

import math

import numpy as np

from .. import backend
from ..tensor import Tensor
from .elementwise import Maximum, Where
from .movement import Concatenate, ScatterAdd, Stack


class TensorModule:
    """NumPy's names (``exp``, ``where``, ``matmul``, ``swapaxes`` ...) over Tensor ops, for one device."""

    inf = math.inf
    pi = math.pi
    float32, float64 = np.float32, np.float64
    finfo = staticmethod(np.finfo)

    def __init__(self, device):
        self.device = device

    def _tensor(self, x):
        return x if isinstance(x, Tensor) else Tensor._wrap(backend.as_array(x, self.device))

    def exp(self, x):
        return self._tensor(x).exp()

    def log(self, x):
        return self._tensor(x).log()

    def sqrt(self, x):
        return self._tensor(x).sqrt()

    def tanh(self, x):
        return self._tensor(x).tanh()

    def erf(self, x):
        return self._tensor(x).erf()

    def maximum(self, a, b):
        return Maximum.apply(a, b)

    def where(self, condition, a, b):
        return Where.apply(condition.data if isinstance(condition, Tensor) else condition, a, b)

    def matmul(self, a, b):
        return self._tensor(a) @ b

    def swapaxes(self, x, axis0, axis1):
        return x.transpose(axis0, axis1)

    def transpose(self, x, axes):
        return x.permute(axes)

    def expand_dims(self, x, axis):
        return x.unsqueeze(axis)

    def broadcast_to(self, x, shape):
        return self._tensor(x).expand(shape)

    def concatenate(self, tensors, axis=0):
        return Concatenate.apply(*tensors, axis=axis % tensors[0].ndim)

    def stack(self, tensors, axis=0):
        return Stack.apply(*tensors, axis=axis % (tensors[0].ndim + 1))

    def split(self, x, boundaries, axis=0):
        """NumPy's split at ``boundaries`` (indices, not sizes)."""
        edges = [0, *boundaries, x.shape[axis]]
        return list(x.split([end - start for start, end in zip(edges, edges[1:])], axis=axis))

    def take(self, x, index, axis):
        """One position ``index`` (an int) along ``axis``."""
        return x[(slice(None),) * (axis % x.ndim) + (index,)]

    def take_along_axis(self, x, indices, axis):
        indices = indices.data if isinstance(indices, Tensor) else indices
        xp = backend.xp_of(indices)
        axis %= x.ndim
        grids = [
            xp.arange(n).reshape([n if d == i else 1 for d in range(x.ndim)]) if i != axis else indices
            for i, n in enumerate(x.shape)
        ]
        return x[tuple(grids)]

    def scatter_add(self, target, indices, values):
        """``target`` plus ``values`` added at ``indices`` (repeats add up), as the ScatterAdd op: recorded."""
        return target + ScatterAdd.apply(values, indices, target.shape, True)

    def zeros(self, shape, dtype=None):
        return Tensor._wrap(backend.array_module(self.device).zeros(shape, dtype or backend.DEFAULT_FLOAT))

    def zeros_like(self, x):
        return self.zeros(x.shape, x.dtype)

    def ones_like(self, x):
        return Tensor._wrap(backend.array_module(self.device).ones(x.shape, x.dtype))

    def arange(self, *args, **kwargs):
        return Tensor._wrap(backend.array_module(self.device).arange(*args, **kwargs))


_MODULES: dict = {}


def for_device(device):
    """The TensorModule of ``device`` (one per device, made once)."""
    module = _MODULES.get(device)
    if module is None:
        module = _MODULES[device] = TensorModule(device)
    return module
