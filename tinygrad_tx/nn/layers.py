"""The layers a transformer needs, each a thin Module over a fused op in ``nn.functional``.

Initialisation follows PyTorch's defaults and draws from ``backend.rng(device)``, so
``manual_seed`` makes a model's starting weights reproducible.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backend
from ..errors import TinygradTxError
from ..tensor import Tensor
from . import functional as F
from .activations import check_dropout_probability
from .module import Module, Parameter
from .normalization import check_eps


def _positive_int(layer, name, value):
    if not isinstance(value, numbers.Integral) or value <= 0:
        raise TinygradTxError(f"{layer}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _uniform(shape, bound, device):
    """U(-bound, bound) in float32, as torch.nn.init.uniform_."""
    unit = backend.rng(device).random(shape, dtype=np.float32)
    return Parameter(unit * (2 * bound) - bound)


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features), as torch.nn.Linear."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: str = "cpu") -> None:
        super().__init__()
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        bound = 1 / math.sqrt(self.in_features)  # PyTorch's default: kaiming_uniform(a=sqrt(5)) reduces to this
        self.weight = _uniform((self.out_features, self.in_features), bound, device)
        self.bias = _uniform((self.out_features,), bound, device) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table: row i of ``weight`` (num_embeddings, embedding_dim) for token id i; init N(0, 1)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, device: str = "cpu") -> None:
        super().__init__()
        self.num_embeddings = _positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = _positive_int("Embedding", "embedding_dim", embedding_dim)
        shape = (self.num_embeddings, self.embedding_dim)
        self.weight = Parameter(backend.rng(device).standard_normal(shape, dtype=np.float32))

    def forward(self, indices: Any) -> Tensor:
        return F.embedding(indices, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` axes, then scale (ones) and shift (zeros, optional)."""

    def __init__(
        self, normalized_shape: int | Sequence[int], eps: float = 1e-5, bias: bool = True, device: str = "cpu"
    ) -> None:
        super().__init__()
        integral = (int, numbers.Integral)  # int listed too: type checkers do not know int is an Integral
        shape = (normalized_shape,) if isinstance(normalized_shape, integral) else tuple(normalized_shape)
        if not shape or not all(isinstance(n, integral) and int(n) > 0 for n in shape):
            raise TinygradTxError(f"LayerNorm: normalized_shape must be positive integers, got {normalized_shape!r}")
        self.normalized_shape, self.eps = tuple(int(n) for n in shape), check_eps("LayerNorm", eps)
        xp = backend.array_module(device)
        self.weight = Parameter(xp.ones(self.normalized_shape, dtype=np.float32))
        self.bias = Parameter(xp.zeros(self.normalized_shape, dtype=np.float32)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        trailing = x.shape[x.ndim - len(self.normalized_shape) :]
        if tuple(trailing) != self.normalized_shape:
            raise TinygradTxError(
                f"LayerNorm: input of shape {x.shape} does not end in normalized_shape {self.normalized_shape}"
            )
        if len(self.normalized_shape) == 1:
            return F.layer_norm(x, self.weight, self.bias, self.eps)
        # F.layer_norm normalises the last axis: flatten the normalised axes into one and back
        flat = x.reshape(*x.shape[: x.ndim - len(self.normalized_shape)], -1)
        bias = None if self.bias is None else self.bias.reshape(-1)
        return F.layer_norm(flat, self.weight.reshape(-1), bias, self.eps).reshape(*x.shape)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, bias={self.bias is not None}"


class Dropout(Module):
    """Zero each element with probability p in training and scale the rest by 1/(1-p); identity in eval."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        check_dropout_probability("Dropout", p)  # at construction, not at the first forward
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, training=self.training)

    def extra_repr(self):
        return f"p={self.p}"
