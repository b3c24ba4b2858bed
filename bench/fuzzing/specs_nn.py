"""Fuzz specs of tinygrad_tx.nn.functional, each op with both impls where it has two.

The PyTorch twins use PyTorch's own functional ops in our layout (class axis last for
cross_entropy, causal mask aligned bottom-right for attention) and apply our documented choices:
an all-ignored "mean" loss is 0 (PyTorch: nan), a fully masked attention row outputs 0 (PyTorch: nan).
"""

import numpy as np
import torch
import torch.nn.functional as TF
from hypothesis import strategies as st

import tinygrad_tx.nn.functional as F
from tinygrad_tx import backend

from .core import Alias, Leaf, Raw, Spec, float_dtypes, leaf, shapes, values

IMPLS = st.sampled_from(["fused", "composed"])
ZERO_D = "a 0-d tensor has no axis 0 or -1 (NumPy's rule; PyTorch wraps them; docs/errors.md)"


@st.composite
def softmax_case(draw):
    shape = draw(shapes())
    x = draw(leaf(shape, draw(float_dtypes())))
    if draw(st.integers(0, 9)) == 0:
        x.base = np.asarray(x.base * 1e4)  # large logits: the max shift must keep exp finite
    n = max(len(shape), 1)
    axis = draw(st.one_of(st.integers(-n, n - 1), st.integers(-n, n - 1), st.integers(-n - 1, n), st.just((0,))))
    return (x,), {"axis": axis, "impl": draw(IMPLS)}


def _softmax_strict(args, kwargs):
    return ZERO_D if args[0].base.ndim == 0 and args[0].view == ("id",) else None


def _softmax_twin(function):
    def twin(x, axis, impl):
        if not isinstance(axis, int):
            raise TypeError("dim must be an int")
        return function(x, dim=axis)

    return twin


@st.composite
def cross_entropy_case(draw):
    dtype = draw(float_dtypes())
    classes = draw(st.integers(1, 5))
    lead = draw(
        st.sampled_from(
            [(draw(st.integers(0, 4)),), (draw(st.integers(1, 3)), draw(st.integers(0, 3)))] * 3 + [(), (2, 1, 2)]
        )
    )
    logits = draw(leaf(lead + (classes,), dtype))
    ignore_index = draw(st.sampled_from([-1, -100, 0, 2]))
    targets = np.asarray(values(draw(st.integers(0, 99)), lead, np.float64, "positive") * classes / 2, np.int64)
    targets = np.asarray(np.minimum(targets, classes - 1))
    targets[values(draw(st.integers(0, 99)), lead, np.float64) > 1.0] = ignore_index
    if draw(st.integers(0, 5)) == 0:
        targets.reshape(-1)[:1] = draw(st.sampled_from([classes, -2, classes + 3]))
    if draw(st.integers(0, 9)) == 0:
        targets = np.asarray(targets, np.float32)
    if draw(st.integers(0, 9)) == 0:
        targets = targets.reshape(-1)[: max(targets.size - 1, 0)]
    return (logits, Raw(targets)), {
        "ignore_index": ignore_index,
        "impl": draw(IMPLS),
        "reduction": draw(st.sampled_from(["mean", "mean", "sum", "none", "avg"])),
    }


def _cross_entropy_twin(logits, targets, ignore_index, reduction, impl):
    if logits.ndim not in (2, 3) or tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise ValueError("our layout: (N, C) or (B, T, C) logits, targets of the leading shape")
    if targets.dtype.is_floating_point:
        raise TypeError("class probabilities are not accepted: targets are class indices")
    rows, flat = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    losses = TF.cross_entropy(rows, flat, ignore_index=ignore_index, reduction="none")
    if reduction == "none":
        return losses.reshape(targets.shape)
    if reduction == "sum" or (reduction == "mean" and not (flat != ignore_index).any()):
        return losses.sum()  # all ignored: 0 with a zero gradient (PyTorch's mean gives nan)
    return TF.cross_entropy(rows, flat, ignore_index=ignore_index, reduction=reduction)


@st.composite
def layer_norm_case(draw):
    dtype = draw(float_dtypes())
    shape = draw(shapes(min_dims=0, max_dims=3)) + (draw(st.integers(1, 5)),)
    if draw(st.integers(0, 9)) == 0:
        shape = shape[:-1]
    x = draw(leaf(shape, dtype, layouts=("id", "transpose", "step", "flip")))
    features = shape[-1] if shape else 1
    params = []
    for _ in range(2):
        size = features if draw(st.integers(0, 9)) else features + 1
        params.append(draw(st.one_of(st.none(), leaf((size,), dtype, layouts=("id", "flip", "step")))))
    return (x, *params), {"eps": draw(st.sampled_from([1e-5, 1e-3, 0.5])), "impl": draw(IMPLS)}


def _layer_norm_twin(x, weight, bias, eps, impl):
    """PyTorch's layer_norm in float64, cast back: its float32 backward loses up to ~3e-4 (relative) on
    rows of two nearly equal features, where ours stays within ~2e-6 of float64 (sweep seed 2, round 79)."""
    if x.ndim == 0:
        raise ValueError("layer_norm needs an axis")
    up = [None if t is None else t.double() for t in (x, weight, bias)]
    return TF.layer_norm(up[0], (x.shape[-1],), up[1], up[2], eps).to(x.dtype)


@st.composite
def embedding_case(draw):
    rows, dim = draw(st.integers(1, 6)), draw(st.integers(0, 4))
    weight = draw(leaf((rows, dim), draw(float_dtypes()), layouts=("id", "transpose", "step", "flip")))
    indices = np.asarray(
        values(draw(st.integers(0, 99)), draw(shapes(max_dims=3)), np.float64, "positive") * rows / 2, np.int64
    )
    indices = np.asarray(np.minimum(indices, rows - 1))
    if draw(st.integers(0, 5)) == 0 and indices.size:
        indices.reshape(-1)[0] = draw(st.sampled_from([rows, -1, rows + 5]))
    if draw(st.integers(0, 9)) == 0:
        indices = np.asarray(indices, np.float32)
    return ((Raw(indices) if draw(st.booleans()) else indices), weight), {}


@st.composite
def linear_case(draw):
    dtype = draw(float_dtypes())
    n_in, n_out = draw(st.integers(0, 4)), draw(st.integers(1, 4))
    lead = draw(shapes(max_dims=2))
    x = draw(leaf(lead + (n_in if draw(st.integers(0, 9)) else n_in + 1,), dtype))
    weight = draw(leaf((n_out, n_in), dtype, layouts=("id", "transpose", "flip")))
    bias = draw(st.one_of(st.none(), leaf((n_out,), dtype, layouts=("id", "flip"))))
    return (x, weight, bias), {}


@st.composite
def gelu_case(draw):
    x = draw(leaf(draw(shapes()), draw(float_dtypes())))
    if draw(st.integers(0, 9)) == 0:
        x.base = np.asarray(x.base * 100)  # far tails: erf must reach exactly +-1
    return (x,), {"approximate": draw(st.sampled_from(["none", "tanh", "exact"]))}


@st.composite
def dropout_case(draw):
    x = draw(leaf(draw(shapes()), draw(float_dtypes())))
    return (x,), {"p": draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, -0.1, 1.5])), "training": draw(st.booleans())}


def _dropout_twin(x, p, training):
    """PyTorch's dropout formula applied with the mask our generator will draw next (then rewound)."""
    if not 0 <= p <= 1:
        raise ValueError("dropout probability has to be between 0 and 1")
    if not training or p == 0:
        return TF.dropout(x, p, training)
    state = backend.get_rng_state()
    draws = backend.rng("cpu").random(tuple(x.shape), dtype="float32")
    backend.set_rng_state(state)
    keep = torch.from_numpy(np.asarray((np.asarray(draws) >= p) / (1 - p), x.detach().numpy().dtype))
    return x * keep


def _dropout_strict(args, kwargs):
    return "p = 1 is refused (it divides by 1 - p; docs/errors.md)" if kwargs["p"] == 1 else None


@st.composite
def attention_case(draw):
    dtype = draw(float_dtypes())
    lead = draw(st.sampled_from([(), (2,), (1, 2), (2, 1)]))
    tq, tk, d, dv = (draw(st.integers(1, 4)) for _ in range(4))
    q = draw(leaf(lead + (tq, d), dtype, layouts=("id", "transpose", "step", "flip")))
    k = draw(
        leaf(lead + (tk, d if draw(st.integers(0, 14)) else d + 1), dtype, layouts=("id", "transpose", "step", "flip"))
    )
    v = draw(leaf(lead + (tk, dv), dtype, layouts=("id", "step", "flip")))
    if draw(st.integers(0, 3)) == 0:  # q, k, v cut from one array: the same, overlapping, or disjoint (split qkv)
        shift, tk, dv = draw(st.sampled_from([0, 1, d])), tq, d
        base = values(draw(st.integers(0, 2**32 - 1)), lead + (tq, d + 2 * shift), dtype)
        q = Leaf(base, ("slice", len(lead) + 1, 0, d))
        k, v = (Alias(q, ("slice", len(lead) + 1, i * shift, i * shift + d)) for i in (1, 2))
    mask = None
    if draw(st.booleans()):
        mask_shape = draw(st.sampled_from([(tq, tk), (1, tk), (tq, 1), lead + (tq, tk), (tk + 1,)]))
        mask = np.asarray(values(draw(st.integers(0, 99)), mask_shape, np.float64) > -0.5)
        if draw(st.integers(0, 7)) == 0:
            mask = mask.astype(np.int64)
    return (q, k, v), {
        "causal": draw(st.booleans()),
        "scale": draw(st.sampled_from([None, 0.5, 2])),
        "attn_mask": None if mask is None else Raw(mask),
        "impl": draw(IMPLS),
    }


def _attention_twin(q, k, v, causal, scale, attn_mask, impl):
    tq, tk = q.shape[-2], k.shape[-2]
    allowed = torch.ones(tq, tk, dtype=torch.bool).tril(tk - tq) if causal else torch.ones(tq, tk, dtype=torch.bool)
    if attn_mask is not None:
        if attn_mask.dtype != torch.bool:
            raise TypeError("our attn_mask is boolean (True = may attend)")
        allowed = allowed & attn_mask
    row_ok = allowed.any(-1, keepdim=True)  # a fully masked query outputs 0 (PyTorch: nan)
    out = TF.scaled_dot_product_attention(q, k, v, attn_mask=allowed | ~row_ok, scale=scale)
    return out * row_ok


def _raw_mask(kwargs):
    mask = kwargs.get("attn_mask")
    return dict(kwargs, attn_mask=None if mask is None else torch.from_numpy(mask.array.copy()))


def _attention_ours(q, k, v, **kwargs):
    mask = kwargs.pop("attn_mask")
    return F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask.array, **kwargs)


SPECS = [
    Spec("F.softmax", softmax_case(), F.softmax, _softmax_twin(TF.softmax), stricter=_softmax_strict),
    Spec("F.log_softmax", softmax_case(), F.log_softmax, _softmax_twin(TF.log_softmax), stricter=_softmax_strict),
    Spec("F.cross_entropy", cross_entropy_case(), F.cross_entropy, _cross_entropy_twin),
    Spec("F.layer_norm", layer_norm_case(), F.layer_norm, _layer_norm_twin),
    Spec("F.embedding", embedding_case(), F.embedding, TF.embedding),
    Spec("F.linear", linear_case(), F.linear, TF.linear),
    Spec("F.gelu", gelu_case(), F.gelu, TF.gelu),
    Spec("F.relu", softmax_case().map(lambda case: (case[0], {})), F.relu, TF.relu),
    Spec("F.dropout", dropout_case(), F.dropout, _dropout_twin, stricter=_dropout_strict),
    Spec(
        "F.scaled_dot_product_attention",
        attention_case(),
        _attention_ours,
        lambda q, k, v, **kwargs: _attention_twin(q, k, v, **_raw_mask(kwargs)),
    ),
]
