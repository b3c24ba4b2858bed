"""Fuzz specs of the ops experiments asked for (issue 25): tinygrad_tx/ops/unary.py, statistics.py, indexing.py
and nn/smooth_activations.py. Float data is drawn in every layout, with kinks (zeros, ties, values on a
clamp bound: the "integer" domain) and, where PyTorch accepts them, int8/int32/int64/uint8/bool tensors.
"""

import warnings

import numpy as np
import torch
import torch.nn.functional as TF
from hypothesis import strategies as st

import tinygrad_tx as tx
import tinygrad_tx.nn.functional as F

from .core import Leaf, Raw, Spec, float_dtypes, leaf, shapes, values
from .specs_ops import (
    _integer_input,
    _promoted,
    _reduce_twin,
    _zero_d_axis,
    axes,
    binary,
    pytorch_scalar_operand,
    reduction,
    unary,
)

INTEGER_DTYPES = (np.int8, np.int32, np.int64, np.uint8, np.bool_)
KINKY = st.sampled_from(["real", "integer"])  # "integer": small whole numbers as floats, so 0s, ties, bounds


@st.composite
def any_dtype(draw, min_dims=0, max_dims=4, layouts=("id", "transpose", "step", "flip", "expand")):
    """A float leaf (kinks included) or, one time in three, an integer or boolean array."""
    shape = draw(shapes(min_dims=min_dims, max_dims=max_dims))
    if draw(st.integers(0, 2)) == 0:
        dtype = draw(st.sampled_from(INTEGER_DTYPES))
        array = values(draw(st.integers(0, 99)), shape, np.int64, "integer")
        return np.asarray(array > 0) if dtype is np.bool_ else array.astype(dtype)
    return draw(leaf(shape, draw(float_dtypes()), draw(KINKY), layouts))


def _torch_minimum(a, b):
    return _promoted(torch.minimum, a, pytorch_scalar_operand(a, b))


# ---------------------------------------------------------------- elementwise
@st.composite
def clamp_case(draw):
    bounds = st.sampled_from([None, None, -1, 0, 2, 0.5, -1.5, 1.0])
    return (draw(any_dtype()),), {"min": draw(bounds), "max": draw(bounds)}


@st.composite
def float_tests_case(draw):
    shape = draw(shapes())
    if draw(st.booleans()):
        dtype = draw(st.sampled_from(INTEGER_DTYPES))
        array = values(draw(st.integers(0, 99)), shape, np.int64, "integer")
        return (np.asarray(array > 0) if dtype is np.bool_ else array.astype(dtype),), {}
    array = values(draw(st.integers(0, 99)), shape, draw(float_dtypes()))
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-310])
    picks = values(draw(st.integers(0, 99)), shape, np.float64, "positive") > 1.2
    array[picks] = special[np.arange(int(picks.sum())) % len(special)]
    return (array,), {}


def _bound_outside_dtype(args, kwargs):
    x = args[0]
    if isinstance(x, np.ndarray) and x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        for bound in (kwargs["min"], kwargs["max"]):
            if isinstance(bound, int) and not info.min <= bound <= info.max:
                return "a bound outside an integer dtype's range is refused (PyTorch wraps -1 to 255 for uint8)"
    return None


def _elementwise_specs():
    specs = []
    for name in ("sigmoid", "sin", "cos", "rsqrt"):
        specs.append(
            Spec(
                f"Tensor.{name}",
                unary(),
                lambda a, name=name: getattr(a, name)(),
                lambda a, name=name: getattr(torch, name)(a),
                stricter=_integer_input,
            )
        )
    for name in ("abs", "sign", "square"):
        specs.append(
            Spec(
                f"Tensor.{name}",
                any_dtype().map(lambda x: ((x,), {})),
                lambda a, name=name: getattr(a, name)(),
                lambda a, name=name: getattr(torch, name)(a),
            )
        )
    for name in ("clamp", "clip"):
        specs.append(
            Spec(
                f"Tensor.{name}",
                clamp_case(),
                lambda a, name=name, **kw: getattr(a, name)(**kw),
                lambda a, **kw: torch.clamp(a, **kw),
                ("clamp",),
                stricter=_bound_outside_dtype,
            )
        )
    minimum_case = st.one_of(binary(), tied_pair())
    specs += [
        Spec("Tensor.minimum", minimum_case, lambda a, b: a.minimum(b), _torch_minimum, ("minimum",)),
        Spec("tinygrad_tx.minimum", minimum_case, tx.minimum, _torch_minimum, ("minimum",)),
    ]
    for name in ("isnan", "isinf", "isfinite"):
        twin = getattr(torch, name)
        specs.append(Spec(f"Tensor.{name}", float_tests_case(), lambda a, name=name: getattr(a, name)(), twin))
        specs.append(Spec(f"tinygrad_tx.{name}", float_tests_case(), getattr(tx, name), twin))
    return specs


@st.composite
def tied_pair(draw):
    """Two same-dtype leaves of small whole numbers: many ties, where each side gets half the gradient."""
    dtype, shape = draw(float_dtypes()), draw(shapes(min_dims=1, max_dims=2))
    return (draw(leaf(shape, dtype, "integer")), draw(leaf(shape, dtype, "integer"))), {}


# ---------------------------------------------------------------- reductions
@st.composite
def variance_case(draw, layouts=("id", "transpose", "step", "flip", "expand")):
    shape = draw(shapes())
    if draw(st.integers(0, 9)) == 0:
        x = values(draw(st.integers(0, 99)), shape, np.int64, "integer")  # refused by both
    else:
        x = draw(leaf(shape, draw(float_dtypes()), "real", layouts))
    kwargs = {"axis": draw(axes(len(shape))), "keepdims": draw(st.booleans())}
    choice = draw(st.integers(0, 5))
    if choice in (1, 2):
        kwargs["correction"] = draw(st.sampled_from([0, 1, 2]))
    if choice in (3, 5):
        kwargs["unbiased"] = draw(st.booleans())
    return (x,), kwargs


def _variance_twin(method):
    def twin(x, axis=None, keepdims=False, **kw):
        if axis == (0, 0):
            raise ValueError("repeated axis")
        if "correction" in kw and "unbiased" in kw:
            raise TypeError("correction and unbiased together")
        correction = kw.get("correction", int(kw.get("unbiased", True)))
        with warnings.catch_warnings():  # n - correction <= 0 is a case we draw on purpose, not news
            warnings.filterwarnings("ignore", "var\\(\\): degrees of freedom", UserWarning)
            if axis == () or (axis is None and x.ndim == 0):  # NumPy's rule: no axis reduced, n = 1
                return getattr(x.unsqueeze(-1), method)(dim=-1, correction=correction)
            dim = tuple(range(x.ndim)) if axis is None else axis
            return getattr(x, method)(dim=dim, correction=correction, keepdim=keepdims)

    return twin


def _raw_zero_d_axis(args, kwargs):
    axis = kwargs.get("axis", None)
    array = args[0].base if isinstance(args[0], Leaf) else args[0]
    view = args[0].view if isinstance(args[0], Leaf) else ("id",)
    if view == ("id",) and array.ndim == 0 and axis is not None and axis != ():
        return "a 0-d tensor has no axis 0 (NumPy's rule)"
    return None


@st.composite
def logsumexp_case(draw):
    (x,), kwargs = draw(reduction())
    if draw(st.integers(0, 5)) == 0:
        x.base = np.asarray(x.base * 1e4)  # large values: the maximum must come out first
    return (x,), kwargs


@st.composite
def cumsum_case(draw):
    x = draw(any_dtype())
    ndim = (x.base.ndim if x.view[0] != "expand" else len(x.view[1])) if isinstance(x, Leaf) else x.ndim
    n = max(ndim, 1)
    return (x, draw(st.one_of(st.integers(-n, n - 1), st.sampled_from([n, -n - 1, (0,)])))), {}


@st.composite
def argmin_case(draw):
    shape = draw(shapes())
    x = draw(leaf(shape, draw(float_dtypes()), "distinct"))
    axis = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1))) if shape else None
    return (x,), {"axis": axis, "keepdims": draw(st.booleans()) if axis is not None else False}


@st.composite
def logical_case(draw):
    x = draw(any_dtype(layouts=("id",)))
    array = x.base if isinstance(x, Leaf) else x
    return (array,), {"axis": draw(axes(array.ndim)), "keepdims": draw(st.booleans())}


def _logical_twin(name):
    def twin(x, axis=None, keepdims=False):
        if axis == (0, 0):
            raise ValueError("repeated axis")
        return getattr(torch, name)(x, dim=tuple(range(x.ndim)) if axis is None else axis, keepdim=keepdims)

    return twin


def _reduction_specs():
    return [
        Spec(
            "Tensor.var", variance_case(), lambda x, **kw: x.var(**kw), _variance_twin("var"), stricter=_raw_zero_d_axis
        ),
        # no broadcast layout: a constant slice's float32 mean may round, and std's gradient there is 0/0
        Spec(
            "Tensor.std",
            variance_case(("id", "transpose", "step", "flip")),
            lambda x, **kw: x.std(**kw),
            _variance_twin("std"),
            stricter=_raw_zero_d_axis,
        ),
        Spec(
            "Tensor.logsumexp",
            logsumexp_case(),
            lambda x, **kw: x.logsumexp(**kw),
            _reduce_twin("logsumexp"),
            stricter=_zero_d_axis,
        ),
        Spec(
            "Tensor.cumsum",
            cumsum_case(),
            lambda x, axis: x.cumsum(axis),
            lambda x, axis: torch.cumsum(x, dim=axis),
            stricter=lambda args, kwargs: _raw_zero_d_axis(args, {"axis": args[1]}),
        ),
        Spec(
            "Tensor.argmin",
            argmin_case(),
            lambda x, **kw: x.argmin(**kw),
            lambda x, axis=None, keepdims=False: x.argmin(dim=axis, keepdim=keepdims),
        ),
        Spec(
            "Tensor.any", logical_case(), lambda x, **kw: x.any(**kw), _logical_twin("any"), stricter=_raw_zero_d_axis
        ),
        Spec(
            "Tensor.all", logical_case(), lambda x, **kw: x.all(**kw), _logical_twin("all"), stricter=_raw_zero_d_axis
        ),
    ]


# ---------------------------------------------------------------- indexing
@st.composite
def triangle_case(draw):
    return (draw(any_dtype()),), {"diagonal": draw(st.integers(-3, 3))}


@st.composite
def gather_case(draw):
    shape = draw(shapes(min_dims=1, max_dims=3))
    x = draw(leaf(shape, draw(float_dtypes())))
    ndim = len(shape)
    axis = draw(st.one_of(st.integers(-ndim, ndim - 1), st.sampled_from([ndim, -ndim - 1])))
    along = axis % ndim if -ndim <= axis < ndim else 0
    index_shape = [draw(st.integers(0, 4)) if d == along else draw(st.integers(0, n)) for d, n in enumerate(shape)]
    size = shape[along]
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    index = rng.integers(0, max(size, 1), index_shape)
    fault = draw(st.integers(0, 11))
    if fault == 0 and index.size:
        index.reshape(-1)[0] = draw(st.sampled_from([size, -1, size + 2]))
    elif fault == 1:
        index = index[..., None]  # one dimension too many
    elif fault == 2:
        index = np.zeros([n + 1 for n in shape], np.int64)  # larger than x on every axis
    dtype = draw(st.sampled_from([np.int64, np.int64, np.int32, np.uint8, np.float32]))
    return (x, axis, Raw(np.asarray(index, dtype))), {}


def _empty_index_of_another_dtype(args, kwargs):
    """PyTorch checks nothing about an empty index (dtype, dimensions, sizes); we check it all the same."""
    x, axis, index = args[0], args[1], args[2].array
    shape = x.view[1] if x.view[0] == "expand" else (x.base.shape[::-1] if x.view[0] == "transpose" else None)
    shape = shape if shape is not None else x.base.shape
    if x.view[0] == "step":
        shape = shape[: x.view[1]] + (shape[x.view[1]] // 2,) + shape[x.view[1] + 1 :]
    fits = index.ndim == len(shape) and all(
        n <= m for d, (n, m) in enumerate(zip(index.shape, shape)) if d != axis % max(len(shape), 1)
    )
    if index.size == 0 and (index.dtype not in (np.int32, np.int64) or not fits):
        return "an empty index is checked like any other (PyTorch skips its dtype and shape checks)"
    return None


def _indexing_specs():
    return [
        Spec("Tensor.tril", triangle_case(), lambda x, **kw: x.tril(**kw), lambda x, **kw: torch.tril(x, **kw)),
        Spec("Tensor.triu", triangle_case(), lambda x, **kw: x.triu(**kw), lambda x, **kw: torch.triu(x, **kw)),
        Spec(
            "Tensor.gather",
            gather_case(),
            lambda x, axis, index: x.gather(axis, index),
            torch.gather,
            stricter=_empty_index_of_another_dtype,
        ),
    ]


# ---------------------------------------------------------------- nn.functional
@st.composite
def softplus_case(draw):
    (x,), _ = draw(unary())
    if isinstance(x, Leaf) and draw(st.booleans()):
        x.base = np.asarray(x.base * 15)  # across the threshold, and exp(beta x) past float32's range
    kwargs = {}
    if draw(st.booleans()):
        kwargs["beta"] = draw(st.sampled_from([1, 2.0, 0.5, -1.0]))
    if draw(st.booleans()):
        kwargs["threshold"] = draw(st.sampled_from([20, 1.0, 5.0, 100.0]))
    return (x,), kwargs


def _nn_specs():
    return [
        Spec("F.silu", unary(), F.silu, TF.silu),
        Spec("F.softplus", softplus_case(), F.softplus, TF.softplus),
    ]


SPECS = _elementwise_specs() + _reduction_specs() + _indexing_specs() + _nn_specs()
