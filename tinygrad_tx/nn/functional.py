"""The functional neural-network ops, imported as ``import tinygrad_tx.nn.functional as F``.

Each op is one fused Function with a hand-derived backward (tinygrad_tx/nn/activations.py,
losses.py, normalization.py, layer_ops.py, attention.py; derivations in docs/derivations/), whose
arithmetic runs on the kernels ``tinygrad_tx.kernels.use`` selects (reference formulas or fast code).
softmax, log_softmax, cross_entropy, layer_norm and scaled_dot_product_attention also have a
composed twin built from Tensor primitives (composed.py), picked per call with ``impl="composed"``
or for every call with ``F.set_default_impl("composed")``; both give the same values and gradients.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..errors import TinygradTxError
from ..scoped import ScopedSetting
from ..tensor import Tensor
from . import composed
from .activations import DropoutFunction, Gelu, LogSoftmax, Softmax, check_dropout_probability
from .attention import ScaledDotProductAttention
from .layer_ops import EmbeddingFunction, LinearFunction
from .losses import CrossEntropy
from .normalization import LayerNormFunction
from .smooth_activations import Silu, Softplus

IMPLS = ("fused", "composed")
_default_impl = ScopedSetting("default impl", "fused")


def _check_impl(op: str, impl: str) -> str:
    if impl not in IMPLS:
        raise TinygradTxError(f"{op}: impl must be one of {IMPLS}, got {impl!r}")
    return impl


def set_default_impl(impl: str) -> None:
    """Make ``impl`` ("fused" | "composed") what every op called with impl=None uses, in this thread.

    Other threads keep their own default ("fused" in a new thread), so one thread's switch never
    changes what another computes. "composed" replaces the fused op by primitives (autograd derives
    the backward); ``kernels.use("reference")`` instead keeps the fused op and changes its kernels:
    docs/kernels.md, "Three ways to see the plain version".
    """
    _default_impl.set(_check_impl("set_default_impl", impl))


def get_default_impl() -> str:
    """This thread's default implementation, "fused" unless ``set_default_impl`` changed it."""
    return _default_impl.get()


def _fused(op: str, impl: str | None) -> bool:
    return _check_impl(op, _default_impl.get() if impl is None else impl) == "fused"


def _index_tensor(indices: Any, device: str) -> Tensor:
    """Integer indices (Tensor, array or list) as a Tensor on ``device``; a Tensor stays as it is."""
    return indices if isinstance(indices, Tensor) else Tensor(indices, device=device)


def softmax(x: Tensor, axis: int = -1, impl: str | None = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``, stable for any finite logits; an all -inf row gives 0s."""
    return Softmax.apply(x, axis=axis) if _fused("softmax", impl) else composed.softmax(x, axis)


def log_softmax(x: Tensor, axis: int = -1, impl: str | None = None) -> Tensor:
    """x - logsumexp(x) along ``axis``, stable for any finite logits."""
    return LogSoftmax.apply(x, axis=axis) if _fused("log_softmax", impl) else composed.log_softmax(x, axis)


def cross_entropy(
    logits: Tensor, targets: Any, ignore_index: int = -1, reduction: str = "mean", impl: str | None = None
) -> Tensor:
    """Softmax cross-entropy of (N, C) or (B, T, C) logits against integer targets (N,) or (B, T).

    Positions whose target equals ``ignore_index`` add neither loss nor gradient; "mean" averages
    over the counted positions. If every target is ignored, "mean" returns 0.0 with a zero gradient
    (PyTorch returns nan). reduction: "mean" | "sum" | "none" (per-position losses, 0 where ignored).
    Raises DTypeError for non-integer targets, ShapeError when targets' shape is not logits' leading
    shape, IndexOutOfRangeError for a target outside [0, C) that is not ``ignore_index``.
    """
    targets = _index_tensor(targets, logits.device)
    if _fused("cross_entropy", impl):
        return CrossEntropy.apply(logits, targets, ignore_index=ignore_index, reduction=reduction)
    return composed.cross_entropy(logits, targets, ignore_index, reduction)


def layer_norm(
    x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5, impl: str | None = None
) -> Tensor:
    """Normalize over the last axis (biased variance, as PyTorch), then scale by weight and add bias."""
    if _fused("layer_norm", impl):
        return LayerNormFunction.apply(x, weight, bias, eps=eps)
    return composed.layer_norm(x, weight, bias, eps)


def embedding(indices: Any, weight: Tensor) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) picked by integer ``indices`` of any shape -> (*indices, dim)."""
    return EmbeddingFunction.apply(_index_tensor(indices, weight.device), weight)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """x Phi(x): "none" is the exact erf form (PyTorch's default), "tanh" PyTorch's tanh approximation."""
    return Gelu.apply(x, approximate=approximate)


def relu(x: Tensor) -> Tensor:
    """max(x, 0), the engine's primitive."""
    return x.relu()


def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x) (also called swish), the activation of SwiGLU."""
    return Silu.apply(x)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, and x where beta x > threshold (PyTorch's signature and rule)."""
    return Softplus.apply(x, beta=beta, threshold=threshold)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x W^T + b with PyTorch's weight layout (out_features, in_features); (..., in) -> (..., out)."""
    return LinearFunction.apply(x, weight, bias)


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (backend.rng's draws).

    Returns ``x`` itself when p == 0 or not training. p must be in [0, 1).
    """
    check_dropout_probability("dropout", p)
    if p == 0 or not training:
        return x
    return DropoutFunction.apply(x, p)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    causal: bool = True,
    dropout_p: float = 0.0,
    scale: float | None = None,
    attn_mask: Any = None,
    impl: str | None = None,
) -> Tensor:
    """softmax(q k^T * scale, masked) v over (..., T, D) heads (typically (B, H, T, D)).

    scale defaults to 1/sqrt(D). attn_mask: boolean, broadcastable to (..., Tq, Tk), True = may
    attend; combined with the causal mask, which is aligned bottom-right when Tq < Tk (query i sees
    keys j <= i + Tk - Tq, as a key/value cache needs). A query whose keys are all masked outputs 0.
    dropout_p > 0 drops attention probabilities (whatever the module's mode: pass 0 in eval).
    """
    if attn_mask is not None:
        attn_mask = backend.as_array(attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask, q.device)
    if _fused("scaled_dot_product_attention", impl):
        return ScaledDotProductAttention.apply(
            q, k, v, causal=causal, dropout_p=dropout_p, scale=scale, attn_mask=attn_mask
        )
    return composed.scaled_dot_product_attention(q, k, v, causal, dropout_p, scale, attn_mask)
