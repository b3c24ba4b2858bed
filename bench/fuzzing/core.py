"""The differential fuzzer's machinery: inputs in odd layouts, and one case run on both engines.

A case is ``(args, kwargs)`` drawn by a spec (bench/fuzzing/specs.py). Float inputs are ``Leaf``s: an
array plus a view (transposed, stepped, negative-stepped, broadcast) applied inside the graph, so
the op under test receives a non-contiguous array while the gradient is compared on the leaf.
``run_case`` runs the op in tinygrad_tx and in PyTorch and raises ``Divergence`` on any difference:
forward values or dtype, any input gradient under a random upstream gradient, or an error on one
side only. Where PyTorch raises, tinygrad_tx must raise a TinygradTxError that names the op.
"""

import dataclasses

import numpy as np
import torch
from hypothesis import strategies as st

from tinygrad_tx import Tensor, TinygradTxError

FLOATS = (np.float32, np.float64)
INTEGERS = (np.int8, np.int32, np.int64, np.uint8, np.bool_)
RTOL = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-9}


class Divergence(AssertionError):
    """tinygrad_tx and PyTorch disagree on one case."""


@dataclasses.dataclass
class Leaf:
    """An input tensor: ``base`` is the leaf (gradients compared there), ``view`` is applied in the graph."""

    base: np.ndarray
    view: tuple = ("id",)
    grad: bool = True

    def __repr__(self):
        return f"Leaf({self.base.dtype}{list(self.base.shape)}, view={self.view})"


@dataclasses.dataclass
class Alias:
    """Another view of a Leaf of the same case: the op gets two arrays sharing memory (the same tensor
    twice with view ("id",), or overlapping views), and that one leaf's gradient is compared."""

    leaf: Leaf
    view: tuple = ("id",)

    def __repr__(self):
        return f"Alias(of {self.leaf!r}, view={self.view})"


@dataclasses.dataclass
class Raw:
    """A plain array passed as it is: a NumPy array to tinygrad_tx, a tensor to PyTorch."""

    array: np.ndarray

    def __repr__(self):
        return f"Raw({self.array.dtype}{list(self.array.shape)}: {self.array.tolist()})"


# ---------------------------------------------------------------- drawing inputs
def values(seed, shape, dtype, domain="real"):
    """Random values of ``shape``: real (normal), positive, nonzero (|x| >= 0.5), distinct (no ties),
    kinks (normal with zeros of both signs and ties) or extreme (kinks plus subnormals, the largest
    finite values, +-inf and NaN). Integer and boolean dtypes draw small values, and for "extreme"
    also their minimum and maximum (the wraparound cases)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind in "biu":
        return _integer_values(rng, shape, dtype, domain)
    if domain == "positive":
        out = rng.uniform(0.5, 2.0, shape)
    elif domain == "nonzero":
        out = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    elif domain == "distinct":
        out = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.25 - 1.0
    elif domain == "integer":
        out = rng.integers(-3, 4, shape)
    else:
        out = rng.standard_normal(shape)
    out = np.asarray(out, dtype=dtype)
    if domain in ("kinks", "extreme") and out.size:
        info = np.finfo(dtype)
        special = [0.0, -0.0, 1.0, -1.0, 0.5]
        if domain == "extreme":
            special += [info.smallest_subnormal, -info.smallest_subnormal, info.max, -info.max, np.inf, -np.inf, np.nan]
        picked = np.asarray(rng.random(shape) < 0.4)
        out[picked] = rng.choice(np.asarray(special, dtype), int(picked.sum()))
    return out


def _integer_values(rng, shape, dtype, domain):
    if dtype.kind == "b":
        return np.asarray(rng.random(shape) < 0.5)
    info = np.iinfo(dtype)
    low = max(info.min, -3 if domain not in ("positive", "nonzero") else 1)
    out = rng.integers(low, 4, shape, dtype=np.int64)
    if domain == "nonzero":
        out = out * rng.choice([-1, 1] if info.min < 0 else [1], shape)
    out = np.asarray(out.astype(dtype))
    if domain == "extreme" and out.size:
        picked = np.asarray(rng.random(shape) < 0.4)
        out[picked] = rng.choice(np.asarray([info.min, info.max, 0, info.max // 2], dtype), int(picked.sum()))
    return out


@st.composite
def leaf(draw, shape, dtype, domain="real", layouts=("id", "transpose", "step", "flip", "expand"), grad=True):
    """A Leaf whose view has ``shape``; the layout (how the view is reached from the base) is drawn."""
    shape, ndim = tuple(shape), len(shape)
    usable = [
        k
        for k in layouts
        if k == "id"
        or (k == "transpose" and ndim >= 2)
        or (k in ("step", "flip") and ndim)
        or (k == "expand" and ndim and domain != "distinct")
    ]
    kind = draw(st.sampled_from(usable))
    view, base_shape = (kind,), shape
    if kind == "transpose":
        base_shape = shape[::-1]
    elif kind in ("step", "flip"):
        axis = draw(st.integers(0, ndim - 1))
        view = (kind, axis)
        if kind == "step":
            base_shape = shape[:axis] + (2 * shape[axis],) + shape[axis + 1 :]
    elif kind == "expand":
        kept = draw(st.integers(0, ndim))
        base_shape = tuple(n if draw(st.booleans()) else 1 for n in shape[ndim - kept :])
        view = ("expand", shape)
    seed = draw(st.integers(0, 2**32 - 1))
    return Leaf(values(seed, base_shape, dtype, domain), view, grad)


def float_dtypes():
    return st.sampled_from(FLOATS)


def any_dtypes(floats=3):
    """A float dtype ``floats`` times in (floats + 1), else an integer or boolean one."""
    return st.one_of(*([st.sampled_from(FLOATS)] * floats), st.sampled_from(INTEGERS))


def domains(base="real"):
    """``base`` mostly; sometimes the kinks (0, -0, ties) or the extremes (inf, NaN, subnormals, int min/max)."""
    return st.sampled_from([base] * 4 + ["kinks", "extreme"]) if base in ("real", "kinks") else st.just(base)


@st.composite
def aliased_pair(draw, shape, dtype, domain="real"):
    """Two arguments of ``shape`` sharing one leaf's memory: the same tensor twice, a tensor and its
    flip, or two overlapping slices (x[:n] and x[1:n + 1] along one axis)."""
    shape, seed = tuple(shape), draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["same", "flip", "overlap"] if shape else ["same"]))
    if kind == "overlap":
        axis = draw(st.integers(0, len(shape) - 1))
        n = shape[axis]
        base = values(seed, shape[:axis] + (n + 1,) + shape[axis + 1 :], dtype, domain)
        a = Leaf(base, ("slice", axis, 0, n))
        return a, Alias(a, ("slice", axis, 1, n + 1))
    a = Leaf(values(seed, shape, dtype, domain))
    if kind == "flip":
        return a, Alias(a, ("flip", draw(st.integers(0, len(shape) - 1))))
    return a, Alias(a)


def shapes(min_dims=0, max_dims=4, min_side=0, max_side=4):
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


def _view_index(ndim, axis, step):
    index = [slice(None)] * ndim
    index[axis] = slice(None, None, step)
    return tuple(index)


def view_ours(tensor, view):
    kind = view[0]
    if kind == "transpose":
        return tensor.permute(tuple(reversed(range(tensor.ndim))))
    if kind in ("step", "flip"):
        return tensor[_view_index(tensor.ndim, view[1], 2 if kind == "step" else -1)]
    if kind == "expand":
        return tensor.expand(view[1])
    if kind == "slice":
        return tensor[_slice_index(tensor.ndim, *view[1:])]
    return tensor


def _slice_index(ndim, axis, start, stop):
    index = [slice(None)] * ndim
    index[axis] = slice(start, stop)
    return tuple(index)


def view_torch(tensor, view):
    kind = view[0]
    if kind == "transpose":
        return tensor.permute(tuple(reversed(range(tensor.ndim))))
    if kind == "step":
        return tensor[_view_index(tensor.ndim, view[1], 2)]
    if kind == "flip":
        return tensor.flip(view[1])
    if kind == "expand":
        return tensor.expand(view[1])
    if kind == "slice":
        return tensor[_slice_index(tensor.ndim, *view[1:])]
    return tensor


# ---------------------------------------------------------------- running one case
def _leaf_tensor(value, side, leaves, made):
    """The one tensor of Leaf ``value`` on ``side`` (made once per case: an Alias reuses it)."""
    if id(value) not in made:
        grad = value.grad and value.base.dtype.kind == "f"
        if side == "ours":
            tensor = Tensor(value.base, requires_grad=grad, dtype=value.base.dtype)
        else:
            tensor = torch.from_numpy(value.base.copy()).requires_grad_(grad)
        leaves.append(tensor)
        made[id(value)] = tensor
    return made[id(value)]


def _convert(value, side, leaves, made=None):
    """A drawn argument as the ``side`` engine takes it ("ours" | "torch"); leaves collected in order."""
    made = {} if made is None else made
    if isinstance(value, (Leaf, Alias)):
        tensor = _leaf_tensor(value if isinstance(value, Leaf) else value.leaf, side, leaves, made)
        return (view_ours if side == "ours" else view_torch)(tensor, value.view)
    if isinstance(value, Raw):
        return value.array.copy() if side == "ours" else torch.from_numpy(value.array.copy())
    if isinstance(value, np.ndarray):
        return Tensor(value, dtype=value.dtype) if side == "ours" else torch.from_numpy(value.copy())
    if isinstance(value, (list, tuple)):
        return type(value)(_convert(v, side, leaves, made) for v in value)
    return value


def _as_numpy(out):
    return out.numpy() if isinstance(out, Tensor) else out.detach().numpy()


def _close(ours, theirs, what):
    if ours.shape != theirs.shape:
        raise Divergence(f"{what}: shape {ours.shape} != PyTorch's {theirs.shape}")
    if ours.dtype != theirs.dtype:
        raise Divergence(f"{what}: dtype {ours.dtype} != PyTorch's {theirs.dtype}")
    if ours.dtype.kind != "f":
        if not np.array_equal(ours, theirs):
            raise Divergence(f"{what}: values differ\n ours   {ours.tolist()}\n theirs {theirs.tolist()}")
        return
    if (
        not np.array_equal(np.isnan(ours), np.isnan(theirs))
        or not np.array_equal(np.isinf(ours), np.isinf(theirs))
        or not np.array_equal(ours[np.isinf(ours)], theirs[np.isinf(theirs)])
    ):
        raise Divergence(f"{what}: NaN/Inf positions differ\n ours   {ours.tolist()}\n theirs {theirs.tolist()}")
    finite = np.isfinite(theirs)
    a, b = ours[finite].astype(np.float64), theirs[finite].astype(np.float64)
    scale = max(np.abs(b).max(initial=0.0), 1.0)
    error = np.abs(a - b).max(initial=0.0) / scale
    if error > RTOL[ours.dtype]:
        raise Divergence(f"{what}: max error {error:.3g} (relative to max(|x|, 1)) > {RTOL[ours.dtype]}")


def _outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def run_case(spec, args, kwargs, seed=0, stricter=None):
    """Run one case on both engines; returns "raised" (both refused it), "refused" (we refused, on purpose,
    what PyTorch accepts: ``stricter`` gives the reason) or "ok"; raises Divergence otherwise."""
    ours_leaves, torch_leaves = [], []
    torch_args = _convert(args, "torch", torch_leaves)
    ours_args = _convert(args, "ours", ours_leaves)
    try:
        theirs, torch_error = spec.theirs(*torch_args, **kwargs), None
    except Exception as exc:  # PyTorch's refusal is the oracle's answer, whatever its type
        theirs, torch_error = None, exc
    try:
        ours, our_error = spec.ours(*ours_args, **kwargs), None
    except TinygradTxError as exc:
        ours, our_error = None, exc
    except Exception as exc:
        raise Divergence(
            f"{spec.name}: raised {type(exc).__name__} ({exc}), not a TinygradTxError "
            f"(PyTorch: {'raised ' + type(torch_error).__name__ if torch_error else 'a result'})"
        ) from exc
    if torch_error is not None or stricter is not None:
        if our_error is None and torch_error is None:
            raise Divergence(f"{spec.name}: returned a result where it must refuse ({stricter})")
        if our_error is None:
            raise Divergence(
                f"{spec.name}: PyTorch raised {type(torch_error).__name__} ({torch_error}) "
                "but tinygrad_tx returned a result"
            )
        if not any(name in str(our_error) for name in spec.error_names):
            raise Divergence(f"{spec.name}: the error does not name the op ({spec.error_names}): {our_error}")
        return "raised" if torch_error is not None else "refused"
    if our_error is not None:
        raise Divergence(f"{spec.name}: raised {type(our_error).__name__} ({our_error}) where PyTorch gives a result")
    ours, theirs = _outputs(ours), _outputs(theirs)
    if len(ours) != len(theirs):
        raise Divergence(f"{spec.name}: {len(ours)} outputs, PyTorch {len(theirs)}")
    for index, (a, b) in enumerate(zip(ours, theirs)):
        _close(_as_numpy(a), _as_numpy(b), f"{spec.name} output {index}")
    _compare_gradients(spec, ours, theirs, ours_leaves, torch_leaves, seed)
    return "ok"


def _compare_gradients(spec, ours, theirs, ours_leaves, torch_leaves, seed):
    rng = np.random.default_rng(seed)
    pairs = [(a, b) for a, b in zip(ours, theirs) if b.requires_grad]
    for a, b in zip(ours, theirs):
        if a.requires_grad != b.requires_grad:
            raise Divergence(f"{spec.name}: output requires_grad {a.requires_grad}, PyTorch {b.requires_grad}")
    if not pairs:
        return
    upstream = [np.asarray(rng.standard_normal(b.shape), _as_numpy(b).dtype) for _, b in pairs]
    torch.autograd.backward([b for _, b in pairs], [torch.from_numpy(g) for g in upstream])
    if len(pairs) == 1:
        pairs[0][0].backward(upstream[0])
    else:  # one backward over every output: sum_i <out_i, g_i>
        total = None
        for (a, _), g in zip(pairs, upstream):
            term = (a * Tensor(g, dtype=g.dtype)).sum()
            total = term if total is None else total + term
        total.backward()
    for index, (a, b) in enumerate(zip(ours_leaves, torch_leaves)):
        if not b.requires_grad:
            continue
        theirs = b.grad.numpy() if b.grad is not None else np.zeros(b.shape, b.detach().numpy().dtype)
        mine = a.grad.numpy() if a.grad is not None else np.zeros(a.shape, a.dtype)
        _close(mine, theirs, f"{spec.name} gradient of input {index}")


# ---------------------------------------------------------------- the table's row, and fuzzing one row
@dataclasses.dataclass
class Spec:
    """One public op: how to draw its arguments, how to call it here and in PyTorch.

    ``cases`` draws ``(args, kwargs)``; both callables get the converted args and the same kwargs.
    ``error_names``: words one of which our error message must contain (the op's name by default).
    ``stricter``: ``(args, kwargs) -> reason or None``; a reason means we refuse on purpose what
    PyTorch accepts (documented in docs/errors.md), so a TinygradTxError is required instead.
    """

    name: str
    cases: object
    ours: object
    theirs: object
    error_names: tuple = ()
    stricter: object = None

    def __post_init__(self):
        self.error_names = self.error_names or (self.name.rsplit(".", 1)[-1].strip("_"),)


def check(spec, case, seed=0):
    """One drawn case compared with PyTorch; where ``spec.stricter`` names a reason, a refusal is required
    if PyTorch gives a result."""
    args, kwargs = case
    return run_case(spec, args, kwargs, seed, spec.stricter(args, kwargs) if spec.stricter else None)


def fuzz(spec, examples, seed, on_case=None, derandomize=False):
    """Draw ``examples`` cases of ``spec`` with hypothesis (which shrinks a failure before raising it)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    @hypothesis_seed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=spec.cases)
    def body(case):
        outcome = None
        try:
            outcome = check(spec, case, seed)
        finally:
            if on_case is not None:
                on_case(case, outcome)

    body()
