"""Fuzz specs of the movement ops: indexing, reshape, permute, expand, squeeze, split, join, where, casts.

Indices cover ints (negative, out of range), slices with positive and negative steps, None,
Ellipsis, integer arrays (repeated, negative, out of range; as arrays and as Tensors) and boolean
masks. PyTorch has no negative-step slice, so its twin reads those axes through index_select.
"""

import numpy as np
import torch
from hypothesis import strategies as st

import tinygrad_tx as tx

from .core import Leaf, Raw, Spec, float_dtypes, leaf, shapes, values

ZERO_D_AXIS = "a 0-d tensor has no axis 0 or -1 (NumPy's rule; PyTorch wraps them; docs/errors.md)"
SQUEEZE_STRICT = "squeeze of an axis whose size is not 1 is refused (PyTorch ignores it; docs/errors.md)"


# ---------------------------------------------------------------- indexing
@st.composite
def index_item(draw, size):
    kind = draw(st.sampled_from(["int", "slice", "slice", "array", "tensor", "none"]))
    if kind == "int":
        return draw(st.integers(-size - 1, size))
    if kind == "slice":
        bound = st.one_of(st.none(), st.integers(-size - 2, size + 2))
        return slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3, -1, -2])))
    if kind in ("array", "tensor"):
        picks = draw(st.lists(st.integers(-size - 1, size), max_size=5))
        array = np.array(picks, dtype=np.int64).reshape(draw(st.sampled_from([(-1,), (1, -1)])))
        return Raw(array) if kind == "array" else array
    return None


@st.composite
def getitem_case(draw):
    shape = draw(shapes(min_dims=0, max_dims=3))
    x = draw(leaf(shape, draw(float_dtypes())))
    if shape and draw(st.integers(0, 5)) == 0:  # a boolean mask over the leading axes
        mask_shape = shape[: draw(st.integers(1, len(shape)))]
        if draw(st.integers(0, 4)) == 0:
            mask_shape = mask_shape[:-1] + (mask_shape[-1] + 1,)
        return (x, Raw(np.asarray(values(draw(st.integers(0, 99)), mask_shape, np.float64) > 0))), {}
    items, axis = [], 0
    for _ in range(draw(st.integers(0, len(shape) + 1))):
        item = draw(index_item(shape[axis] if axis < len(shape) else 1))
        axis += item is not None
        items.append(item)
    if draw(st.integers(0, 4)) == 0:
        items.insert(draw(st.integers(0, len(items))), Ellipsis)
    return (x, tuple(items) if len(items) != 1 or draw(st.booleans()) else items[0]), {}


def _out_of_range_in_empty(args, kwargs):
    """PyTorch checks only the indices it reads, so an empty result (an empty axis, or a slice that selects
    nothing) hides an out-of-range index; we refuse whatever NumPy refuses."""
    x, index = args
    shape = x.view[1] if x.view[0] == "expand" else _view_shape(x)
    plain = (
        tuple(i.array if isinstance(i, Raw) else i for i in index)
        if isinstance(index, tuple)
        else (index.array if isinstance(index, Raw) else index)
    )
    try:
        np.zeros(shape)[plain]
    except IndexError:
        return "getitem: an out-of-range index is refused even where the result is empty (docs/errors.md)"
    return None


def _torch_index(x, index):
    """PyTorch's x[index] with NumPy's negative-step slices read through index_select first."""
    items = list(index) if isinstance(index, tuple) else [index]
    consumed = sum(1 for i in items if i is not None and i is not Ellipsis)
    axis = 0
    for position, item in enumerate(items):
        if item is Ellipsis:
            axis += x.ndim - consumed
        elif isinstance(item, slice) and item.step is not None and item.step < 0 and axis < x.ndim:
            picked = torch.tensor(list(range(*item.indices(x.shape[axis]))), dtype=torch.int64)
            x = x.index_select(axis, picked)
            items[position] = slice(None)
            axis += 1
        elif item is not None:
            axis += 1
    if not any(isinstance(item, torch.Tensor) for item in items):
        return x[tuple(items) if isinstance(index, tuple) else items[0]]
    # NumPy counts an int beside an index array as one more advanced index (so an int and an array
    # apart put the indexed axes first); PyTorch applies the int first. We keep NumPy's rule.
    items = [torch.tensor([item]) if isinstance(item, int) else item for item in items]
    out = x[tuple(items) if isinstance(index, tuple) else items[0]]
    advanced = [i for i, item in enumerate(items) if isinstance(item, torch.Tensor)]
    between = items[advanced[0] : advanced[-1] + 1]
    if Ellipsis in between and not any(isinstance(item, slice) or item is None for item in between):
        # an Ellipsis that stands for no axis still separates the advanced indices in NumPy (their axes go
        # first), not in PyTorch (they stay in place)
        before = sum(1 for item in items[: advanced[0]] if isinstance(item, slice) or item is None)
        width = len(torch.broadcast_shapes(*(items[i].shape for i in advanced)))
        out = out.movedim(list(range(before, before + width)), list(range(width)))
    return out


# ---------------------------------------------------------------- shapes and axes
@st.composite
def reshape_case(draw):
    shape = draw(shapes())
    x = draw(leaf(shape, draw(float_dtypes())))
    size = int(np.prod(shape))
    choices = [(-1,), (size,), shape[::-1], (1,) + shape, shape + (1,), (-1, 1), (1, -1, 1), (-1, -1)]
    choices += [(d, -1) for d in range(1, 5) if size % d == 0]
    target = draw(st.one_of(st.sampled_from(choices), shapes(max_dims=3)))
    return (x, target), {"spread": draw(st.booleans())}


def _reshape(method):
    def ours(x, target, spread):
        return getattr(x, method)(*target) if spread else getattr(x, method)(target)

    return ours


@st.composite
def permute_case(draw):
    shape = draw(shapes())
    x = draw(leaf(shape, draw(float_dtypes())))
    axes = list(draw(st.permutations(range(len(shape)))))
    axes = [a - len(shape) if draw(st.booleans()) else a for a in axes]
    if draw(st.integers(0, 4)) == 0 and axes:  # out of range by one lap (3 for 3 axes), or repeated
        axes = axes[:-1] + [axes[-1] % len(shape) + len(shape)] if draw(st.booleans()) else axes[:-1] + [axes[0]]
    elif draw(st.integers(0, 9)) == 0:
        axes = axes + [len(shape)]
    return (x, tuple(axes)), {}


@st.composite
def axis_pair_case(draw):
    shape = draw(shapes())
    x = draw(leaf(shape, draw(float_dtypes())))
    n = max(len(shape), 1)
    axis = st.integers(-n - 1, n)
    return (x,), {"axis0": draw(axis), "axis1": draw(axis)}


@st.composite
def expand_case(draw):
    shape = draw(shapes(max_dims=3))
    x = draw(leaf(shape, draw(float_dtypes()), layouts=("id", "transpose", "step", "flip")))
    target = [draw(st.sampled_from([n, -1])) if n != 1 else draw(st.sampled_from([1, 3, 0, -1])) for n in shape]
    target = [draw(st.integers(1, 3)) for _ in range(draw(st.integers(0, 2)))] + target
    if draw(st.integers(0, 5)) == 0:
        target = list(draw(shapes(max_dims=3)))
    return (x, tuple(target)), {}


def _expand_twin(method):
    return lambda x, target: getattr(x, method)(target)


@st.composite
def unsqueeze_case(draw):
    shape = draw(shapes())
    return (draw(leaf(shape, draw(float_dtypes()))), draw(st.integers(-len(shape) - 2, len(shape) + 1))), {}


@st.composite
def squeeze_case(draw):
    shape = draw(shapes(min_side=0, max_side=2))
    x = draw(leaf(shape, draw(float_dtypes())))
    n = max(len(shape), 1)
    axis = draw(
        st.one_of(
            st.none(), st.integers(-n - 1, n), st.lists(st.integers(-n, n - 1), max_size=2, unique=True).map(tuple)
        )
    )
    return (x,), {"axis": axis}


def _zero_d_axes(args, kwargs):
    x = args[0]
    named = [v for k, v in kwargs.items() if k.startswith("axis") and v is not None and v != ()]
    return ZERO_D_AXIS if x.view == ("id",) and x.base.ndim == 0 and named else None


def _squeeze_strict(args, kwargs):
    if _zero_d_axes(args, kwargs):
        return ZERO_D_AXIS
    x, axis = args[0], kwargs["axis"]
    shape = x.view[1] if x.view[0] == "expand" else _view_shape(x)
    if axis is None or not shape:
        return None
    axes = axis if isinstance(axis, tuple) else (axis,)
    if all(-len(shape) <= a < len(shape) for a in axes) and any(shape[a] != 1 for a in axes):
        return SQUEEZE_STRICT
    return None


def _view_shape(leaf_):
    shape, kind = leaf_.base.shape, leaf_.view[0]
    if kind == "transpose":
        return shape[::-1]
    if kind == "step":
        axis = leaf_.view[1]
        return shape[:axis] + ((shape[axis] + 1) // 2,) + shape[axis + 1 :]
    return shape


@st.composite
def split_case(draw, function=False):
    shape = draw(shapes(min_dims=1))
    x = draw(leaf(shape, draw(float_dtypes())))
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    length = shape[axis] if -len(shape) <= axis < len(shape) else 3
    sizes = draw(
        st.one_of(
            st.integers(1, 4),
            st.lists(st.integers(0, length), max_size=4).map(
                lambda s: s + [length - sum(s)] if length >= sum(s) else s
            ),
        )
    )
    return (x, sizes), {"axis": axis}


# ---------------------------------------------------------------- joins, where, casts
@st.composite
def join_case(draw, stack=False):
    dtype = draw(float_dtypes())
    shape = draw(shapes(max_dims=3))
    ndim = len(shape) + stack
    axis = draw(st.integers(-ndim - 1, ndim))
    tensors = []
    for _ in range(draw(st.integers(0 if draw(st.integers(0, 9)) == 0 else 1, 3))):
        piece = list(shape)
        if piece and not stack and -len(piece) <= axis < len(piece):
            piece[axis] = draw(st.integers(0, 3))
        if draw(st.integers(0, 7)) == 0:
            piece = list(draw(shapes(max_dims=3)))
        tensors.append(draw(leaf(tuple(piece), dtype)))
    return (tensors,), {"axis": axis}


@st.composite
def where_case(draw, masked_fill=False):
    dtype = draw(float_dtypes())
    (shape_c, shape_a), shape_b = draw(_two()), draw(shapes(max_dims=2))
    condition = np.asarray(values(draw(st.integers(0, 99)), shape_c, np.float64) > 0)
    if draw(st.integers(0, 7)) == 0:
        condition = condition.astype(draw(st.sampled_from([np.int64, np.float32])))
    condition = Raw(condition) if draw(st.booleans()) else condition
    a = draw(leaf(shape_a, dtype))
    if masked_fill:
        return (a, condition, draw(st.sampled_from([0.0, -np.inf, 2.5, 3]))), {}
    b = (
        draw(st.one_of(st.sampled_from([0.0, -1.5, 2]), leaf(shape_b, dtype)))
        if draw(st.booleans())
        else draw(leaf(shape_a, dtype))
    )
    return ((condition, a, b) if draw(st.booleans()) or not isinstance(b, Leaf) else (condition, b, a)), {}


def _legacy_empty(args, kwargs):
    """PyTorch's cat skips 1-D empty tensors whatever the axis or the other shapes; we apply the rules to them."""
    shapes_ = [_view_shape(t) if t.view[0] != "expand" else t.view[1] for t in args[0]]
    if any(s == (0,) for s in shapes_) and (kwargs["axis"] not in (0, -1) or any(len(s) != 1 for s in shapes_)):
        return "concatenate: PyTorch's legacy skip of (0,)-shaped pieces (docs/errors.md)"
    return None


def _two():
    from .specs_ops import two_shapes

    return two_shapes(max_dims=3)


def _torch_where(condition, a, b):
    return torch.where(condition, a, b)


@st.composite
def astype_case(draw):
    x = draw(leaf(draw(shapes()), draw(float_dtypes())))
    return (x, draw(st.sampled_from(["float32", "float64", np.float32, np.dtype("float64"), "int64", "bool"]))), {}


TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64, "bool": torch.bool}


def _torch_dtype(dtype):
    return TORCH_DTYPES[np.dtype(dtype).name]


def _unary_float_case():
    from .specs_ops import unary

    return unary(ints=False)


def specs():
    return [
        Spec(
            "Tensor.__getitem__",
            getitem_case(),
            lambda x, index: x[index],
            _torch_index,
            ("getitem",),
            _out_of_range_in_empty,
        ),
        Spec("Tensor.reshape", reshape_case(), _reshape("reshape"), lambda x, target, spread: x.reshape(target)),
        # view is reshape here: arrays are values (no in-place ops), so no stride rule to enforce
        Spec(
            "Tensor.view", reshape_case(), _reshape("view"), lambda x, target, spread: x.reshape(target), ("reshape",)
        ),
        Spec("Tensor.permute", permute_case(), lambda x, axes: x.permute(*axes), lambda x, axes: x.permute(axes)),
        Spec(
            "Tensor.transpose",
            axis_pair_case(),
            lambda x, axis0, axis1: x.transpose(axis0, axis1),
            lambda x, axis0, axis1: x.transpose(axis0, axis1),
            stricter=_zero_d_axes,
        ),
        Spec(
            "Tensor.T",
            _unary_float_case(),
            lambda x: x.T,
            lambda x: x.permute(tuple(reversed(range(x.ndim)))),
            ("permute",),
        ),
        Spec("Tensor.expand", expand_case(), lambda x, target: x.expand(*target), _expand_twin("expand")),
        Spec(
            "Tensor.broadcast_to",
            expand_case(),
            lambda x, target: x.broadcast_to(target),
            _expand_twin("broadcast_to"),
            ("expand",),
        ),
        Spec(
            "Tensor.unsqueeze", unsqueeze_case(), lambda x, axis: x.unsqueeze(axis), lambda x, axis: x.unsqueeze(axis)
        ),
        Spec(
            "Tensor.squeeze",
            squeeze_case(),
            lambda x, axis: x.squeeze(axis),
            lambda x, axis: x.squeeze() if axis is None else x.squeeze(axis),
            stricter=_squeeze_strict,
        ),
        Spec(
            "Tensor.split",
            split_case(),
            lambda x, sizes, axis: x.split(sizes, axis=axis),
            lambda x, sizes, axis: torch.split(x, sizes, dim=axis),
        ),
        Spec(
            "tinygrad_tx.split",
            split_case(),
            lambda x, sizes, axis: tx.split(x, sizes, axis=axis),
            lambda x, sizes, axis: torch.split(x, sizes, dim=axis),
        ),
        Spec(
            "tinygrad_tx.concatenate",
            join_case(),
            lambda ts, axis: tx.concatenate(ts, axis=axis),
            lambda ts, axis: torch.cat(ts, dim=axis),
            stricter=_legacy_empty,
        ),
        Spec(
            "tinygrad_tx.stack",
            join_case(stack=True),
            lambda ts, axis: tx.stack(ts, axis=axis),
            lambda ts, axis: torch.stack(ts, dim=axis),
        ),
        Spec("tinygrad_tx.where", where_case(), tx.where, _torch_where),
        Spec(
            "Tensor.masked_fill",
            where_case(masked_fill=True),
            lambda x, mask, value: x.masked_fill(mask, value),
            lambda x, mask, value: x.masked_fill(mask, value),
        ),
        Spec(
            "Tensor.astype", astype_case(), lambda x, dtype: x.astype(dtype), lambda x, dtype: x.to(_torch_dtype(dtype))
        ),
        Spec("Tensor.float", _unary_float_case(), lambda x: x.float(), lambda x: x.float()),
        Spec("Tensor.double", _unary_float_case(), lambda x: x.double(), lambda x: x.double()),
    ]


SPECS = specs()
