"""Fuzz specs of the engine's ops: Tensor operators and methods, and tinygrad_tx's top-level functions.

Each entry of ``SPECS`` is one public name; bench/fuzzing/specs.py joins this table with the
functional one. Argument strategies draw float32/float64 data in every layout core.leaf
knows, broadcasting on either side, negative/tuple/out-of-range axes, keepdims, and empty dims; and
int8/int32/int64/uint8/bool tensors (values and dtypes compared: PyTorch's type promotion), Python
scalars on either side of every operator (zero, -0.0, negative, huge, inf, NaN, bools), values on
the kinks (0, -0, ties) and extremes (int min/max, subnormals, +-inf, NaN), and aliased operands
(the same tensor twice, a tensor and its flip, overlapping slices: core.aliased_pair).
"""

import numpy as np
import torch
from hypothesis import strategies as st

import tinygrad_tx as tx

from .core import FLOATS, Leaf, Raw, Spec, aliased_pair, any_dtypes, domains, float_dtypes, leaf, shapes, values

INT_TENSOR_REFUSED = "float ops refuse integer tensors (docs/errors.md: integer inputs)"


def _integer_input(args, kwargs):
    x = args[0]
    array = x.base if isinstance(x, Leaf) else x
    return INT_TENSOR_REFUSED if isinstance(array, np.ndarray) and array.dtype.kind in "biu" else None


# ---------------------------------------------------------------- strategies
@st.composite
def unary(draw, domain="real", ints=True):
    """One leaf in any layout: float, or with ``ints`` sometimes integer or boolean (refused by float-only ops)."""
    dtype = draw(any_dtypes() if ints else float_dtypes())
    return (draw(leaf(draw(shapes()), dtype, draw(domains(domain)))),), {}


@st.composite
def two_shapes(draw, max_dims=4):
    """Two shapes that broadcast together (mostly), or two independent ones (which may not)."""
    if draw(st.integers(0, 5)) == 0:
        return draw(shapes(max_dims=max_dims)), draw(shapes(max_dims=max_dims))
    from hypothesis.extra.numpy import mutually_broadcastable_shapes

    drawn = draw(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=max_dims, min_side=0, max_side=4))
    return drawn.input_shapes


SCALARS = [0.5, 2.0, -1.5, 3, -2, 1e-3, np.float64(0.25), np.float32(1.5), np.int64(2)]
EXTREME_SCALARS = [0, 0.0, -0.0, 1, -1, True, False, 300, -129, 2**31, 2**40, 1e30, float("inf"), float("nan")]


@st.composite
def scalar(draw, domain="real"):
    value = draw(st.sampled_from(SCALARS + (EXTREME_SCALARS if domain == "real" else [])))
    if domain == "nonzero" or domain == "positive":
        value = abs(value) if domain == "positive" else value
    return value


@st.composite
def binary(draw, domain_b="real", scalar_other=True, raw_other=False):
    """(self leaf, other): other a leaf broadcasting on either side, a Python/NumPy scalar, a raw array,
    or the same memory as self (aliased); either may be integer or boolean."""
    dtype, domain = draw(any_dtypes()), draw(domains())
    shape_a, shape_b = draw(two_shapes())
    choice = draw(st.integers(0, 4))
    if choice == 4:
        return draw(aliased_pair(shape_a, dtype, domain)), {}
    a = draw(leaf(shape_a, dtype, domain))
    if scalar_other and choice == 0:
        return (a, draw(scalar(domain_b))), {}
    if raw_other and choice == 1:
        return (a, Raw(values(draw(st.integers(0, 99)), shape_b, dtype, domain_b))), {}
    if draw(st.integers(0, 2)) == 0:  # mixed dtypes: promotion
        dtype = draw(any_dtypes(floats=1))
    return (a, draw(leaf(shape_b, dtype, domain_b if domain_b != "real" else domain))), {}


def _promoted(function, a, b):
    """NumPy's promotion, which we keep: a 0-d float64 tensor with a float32 one computes in float64,
    a 0-d int32 one with int8 in int32 (PyTorch: float32, int8, as 0-d tensors do not promote within a
    category); both sides are cast up first (docs/errors.md)."""
    floats = a.dtype.is_floating_point
    if (
        isinstance(b, torch.Tensor)
        and a.dtype != b.dtype
        and floats == b.dtype.is_floating_point
        and (floats or (a.ndim == 0) != (b.ndim == 0) and torch.bool not in (a.dtype, b.dtype))
    ):
        common = torch.promote_types(a.dtype, b.dtype)  # also int8 with a 0-d int32 tensor: int32, as NumPy
        return function(a.to(common), b.to(common))
    return function(a, b)


def axes(ndim):
    """None, an int (negative too), a tuple (sometimes repeated) or an out-of-range axis."""
    ok = list(range(-ndim, ndim))
    return st.one_of(
        st.none(),
        st.sampled_from(ok or [0]),
        st.lists(st.sampled_from(ok), max_size=ndim, unique=True).map(tuple) if ok else st.just(()),
        st.sampled_from([ndim, -ndim - 1, (0, 0)]),
    )


@st.composite
def reduction(draw, domain="real", min_side=0):
    shape = draw(shapes(min_side=min_side))
    x = draw(leaf(shape, draw(any_dtypes()), draw(domains(domain))))
    return (x,), {"axis": draw(axes(len(shape))), "keepdims": draw(st.booleans())}


def _zero_d_axis(args, kwargs):
    """PyTorch lets axis 0 / -1 name a 0-d tensor's missing axis; we keep NumPy's rule (docs/errors.md)."""
    axis = kwargs.get("axis", None)
    if args[0].view == ("id",) and args[0].base.ndim == 0 and axis is not None and axis != ():
        return "a 0-d tensor has no axis 0 (NumPy's rule)"
    return None


def _torch_axis(axis, ndim):
    return tuple(range(ndim)) if axis is None else axis


def _reduce_twin(method):
    def twin(x, axis=None, keepdims=False):
        if axis == (0, 0):
            raise ValueError("repeated axis")
        if axis == ():  # NumPy: no axis reduced; PyTorch's dim=() reduces every axis (docs/errors.md)
            if method == "logsumexp":  # each element alone, as PyTorch computes it (inf - inf: a NaN gradient)
                return (x if x.dtype.is_floating_point else x.to(torch.float32)).unsqueeze(-1).logsumexp(-1)
            if method in ("amax", "amin") and x.dtype.is_floating_point:  # alone too: a NaN's gradient is NaN
                return getattr(x.unsqueeze(-1), method)(-1)
            if x.dtype.is_floating_point:
                return x * 1
            if method == "mean":
                return x.mean()  # PyTorch refuses integers whatever the axes
            return x.to(torch.int64) if method == "sum" else x.clone()
        return getattr(x, method)(dim=_torch_axis(axis, x.ndim), keepdim=keepdims)

    return twin


# ---------------------------------------------------------------- elementwise operators
def _torch_operand(value, like):
    """NumPy scalars are Python numbers to us (ops._operand), so to the twin too."""
    return value.item() if isinstance(value, np.generic) else value


BINARY = {  # name: (our call, PyTorch's, divisor domain, error word)
    "__add__": (lambda a, b: a + b, lambda a, b: a + b, "real", "add"),
    "__sub__": (lambda a, b: a - b, lambda a, b: a - b, "real", "sub"),
    "__mul__": (lambda a, b: a * b, lambda a, b: a * b, "real", "mul"),
    "__truediv__": (lambda a, b: a / b, lambda a, b: a / b, "real", "div"),
}
REFLECTED = {  # other (a scalar or raw array) on the left: other OP self
    "__radd__": (lambda a, b: a.__radd__(b), lambda a, b: b + a, "add"),
    "__rsub__": (lambda a, b: a.__rsub__(b), lambda a, b: b - a, "sub"),
    "__rmul__": (lambda a, b: a.__rmul__(b), lambda a, b: b * a, "mul"),
    # torch.div, not `b / a`: PyTorch computes number / tensor as reciprocal * number, NaN for a subnormal
    "__rtruediv__": (lambda a, b: a.__rtruediv__(b), lambda a, b: torch.div(b, a), "div"),
}


@st.composite
def reflected(draw, domain_self="real"):
    dtype = draw(any_dtypes())
    shape_a, shape_b = draw(two_shapes())
    a = draw(leaf(shape_a, dtype, draw(domains(domain_self))))
    other = draw(scalar()) if draw(st.booleans()) else Raw(values(draw(st.integers(0, 99)), shape_b, dtype))
    return (a, other), {}


def _specs_elementwise():
    specs = []
    for name, (ours, theirs, domain, word) in BINARY.items():
        specs.append(
            Spec(
                f"Tensor.{name}",
                binary(domain, raw_other=True),
                ours,
                lambda a, b, theirs=theirs: _promoted(theirs, a, _torch_operand(b, a)),
                (word,),
            )
        )
    for name, (ours, theirs, word) in REFLECTED.items():
        domain = "real"
        specs.append(
            Spec(
                f"Tensor.{name}",
                reflected(domain),
                ours,
                lambda a, b, theirs=theirs: theirs(a, _torch_operand(b, a)),
                (word,),
            )
        )
    specs.append(Spec("Tensor.__neg__", unary(), lambda a: -a, lambda a: -a, ("neg",)))
    for name, word in [
        ("exp", "exp"),
        ("log", "log"),
        ("sqrt", "sqrt"),
        ("tanh", "tanh"),
        ("relu", "relu"),
        ("erf", "erf"),
    ]:
        domain = "positive" if name in ("log", "sqrt") else "real"
        specs.append(
            Spec(
                f"Tensor.{name}",
                unary(domain),
                lambda a, name=name: getattr(a, name)(),
                lambda a, name=name: getattr(a, name)(),
                (word,),
                stricter=_integer_input,
            )
        )
    specs += [
        Spec(
            "Tensor.__pow__",
            power(),
            lambda a, p: a**p,
            lambda a, p: a ** _torch_exponent(p),
            ("pow",),
            stricter=_tensor_exponent,
        ),
        Spec("Tensor.__rpow__", rpower(), lambda a, base: a.__rpow__(base), lambda a, base: base**a, ("pow", "exp")),
        Spec("Tensor.maximum", binary(), lambda a, b: a.maximum(b), _torch_maximum, ("maximum",)),
        Spec("tinygrad_tx.maximum", binary(), tx.maximum, _torch_maximum, ("maximum",)),
    ]
    for name in ["__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"]:
        specs.append(
            Spec(
                f"Tensor.{name}",
                binary(raw_other=True),
                lambda a, b, name=name: getattr(a, name)(b),
                lambda a, b, name=name: _promoted(getattr(torch.Tensor, name), a, _torch_operand(b, a)),
                ("compare", "less", "greater", "equal"),
            )
        )
    specs += [
        Spec("Tensor.__invert__", logical(), lambda a: ~a, lambda a: ~a, ("invert",)),
        Spec(
            "Tensor.argmax",
            argmax_case(),
            lambda x, **kw: x.argmax(**kw),
            lambda x, axis=None, keepdims=False: x.argmax(dim=axis, keepdim=keepdims),
        ),
    ]
    return specs


@st.composite
def logical(draw):
    """A boolean or integer tensor (what ~ inverts) or, sometimes, a float one (refused by both)."""
    shape, seed = draw(shapes()), draw(st.integers(0, 99))
    kind = draw(st.sampled_from(["bool", "int", "float"]))
    if kind == "float":
        return (draw(leaf(shape, draw(float_dtypes()))),), {}
    array = values(seed, shape, np.int64, "integer")
    return (np.asarray(array > 0) if kind == "bool" else array,), {}


@st.composite
def argmax_case(draw):
    shape = draw(shapes())
    x = draw(leaf(shape, draw(any_dtypes()), draw(st.sampled_from(["distinct", "kinks", "extreme"]))))
    axis = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1))) if shape else None
    return (x,), {"axis": axis, "keepdims": draw(st.booleans()) if axis is not None else False}


def pytorch_scalar_operand(a, b):
    """``b`` as the tensor PyTorch's scalar promotion makes of it next to ``a`` (typed, then cast with wrapping),
    for the ops (maximum, minimum) whose torch twin takes tensors only."""
    if not isinstance(b, torch.Tensor):
        b = _torch_operand(b, a)
        exact = {bool: torch.bool, int: torch.int64}.get(type(b), torch.float64)
        b = torch.tensor(b, dtype=exact).to(torch.result_type(a, b))
    return b


def _torch_maximum(a, b):
    return _promoted(torch.maximum, a, pytorch_scalar_operand(a, b))


def _tensor_exponent(args, kwargs):
    if isinstance(args[1], Leaf):
        return "a tensor exponent is refused: exp(b log a) is wrong for negative bases (docs/errors.md)"
    return _integer_input(args, kwargs)


@st.composite
def power(draw):
    """x ** p: integer exponents (Python or NumPy int64) on any base, fractional ones on positive bases."""
    exponent = draw(st.sampled_from([2, 3, 0, 1, -1, -2, np.int64(2), np.int64(3), 0.5, 1.5, -0.5, 2.0, 0.0, -0.0]))
    fractional = isinstance(exponent, float) and not float(exponent).is_integer()
    domain = draw(st.sampled_from(["positive" if fractional else ("nonzero" if exponent < 0 else "real"), "kinks"]))
    (x,), _ = draw(unary(domain))
    if draw(st.integers(0, 9)) == 0:
        exponent = draw(leaf(draw(shapes(max_dims=2)), draw(float_dtypes())))
    return (x, exponent), {}


def _torch_exponent(p):
    return int(p) if isinstance(p, np.integer) else p


@st.composite
def rpower(draw):
    """base ** t: negative and zero bases too, on integer-valued exponents (finite there) and on any."""
    base = draw(st.sampled_from([2, 2.0, 0.5, np.e, 10.0, np.float64(3.0), -2.0, 0.0, -0.5, 0, 1, -1, -2]))
    dtype = draw(any_dtypes())
    domain = draw(st.sampled_from(["integer", "integer", "real", "kinks", "extreme"]))
    if np.dtype(dtype).kind in "iu" and isinstance(base, int):
        domain = "positive"  # PyTorch refuses integers to negative integer powers
    return (draw(leaf(draw(shapes()), dtype, domain)), base), {}


# ---------------------------------------------------------------- matmul
@st.composite
def matmul_shapes(draw):
    n, k, m = (draw(st.integers(0, 4)) for _ in range(3))
    kind = draw(st.sampled_from(["vv", "mv", "vm", "mm", "batched", "broadcast", "rows", "mismatch", "scalar"]))
    batch = (draw(st.integers(1, 3)),)
    return {
        "vv": ((k,), (k,)),
        "mv": ((n, k), (k,)),
        "vm": ((k,), (k, m)),
        "mm": ((n, k), (k, m)),
        "batched": (batch + (n, k), batch + (k, m)),
        "broadcast": ((1,) + batch + (n, k), (2, 1, k, m)),
        "rows": ((2, 3, n, k), (k, m)),
        "mismatch": ((n, k + 1), (k, m)),
        "scalar": ((), (k,)),
    }[kind]


@st.composite
def matmul_case(draw, raw_left=False):
    dtype = draw(st.sampled_from(FLOATS * 3 + (np.int32, np.int64)))
    if not raw_left and draw(st.integers(0, 5)) == 0:  # a @ a, a @ flip(a), overlapping slices: one memory
        k = draw(st.integers(0, 4))
        return draw(aliased_pair((k, k), dtype)), {}
    shape_a, shape_b = draw(matmul_shapes())
    b = draw(leaf(shape_b, dtype))
    if raw_left:
        return (b, Raw(values(draw(st.integers(0, 99)), shape_a, dtype))), {}
    return (draw(leaf(shape_a, dtype)), b), {}


def _specs_matmul():
    return [
        Spec("Tensor.__matmul__", matmul_case(), lambda a, b: a @ b, lambda a, b: a @ b, ("matmul",)),
        Spec(
            "Tensor.__rmatmul__",
            matmul_case(raw_left=True),
            lambda b, a: b.__rmatmul__(a),
            lambda b, a: a @ b,
            ("matmul",),
        ),
    ]


# ---------------------------------------------------------------- reductions
def _specs_reduce():
    return [
        Spec("Tensor.sum", reduction(), lambda x, **kw: x.sum(**kw), _reduce_twin("sum"), stricter=_zero_d_axis),
        Spec("Tensor.mean", reduction(), lambda x, **kw: x.mean(**kw), _reduce_twin("mean"), stricter=_zero_d_axis),
        # kinks: ties, where amax splits the gradient evenly (so does Max)
        Spec(
            "Tensor.max",
            reduction("kinks"),
            lambda x, **kw: x.max(**kw),
            _reduce_twin("amax"),
            stricter=_zero_d_axis,
        ),
        Spec(
            "Tensor.min",
            reduction("kinks"),
            lambda x, **kw: x.min(**kw),
            _reduce_twin("amin"),
            ("max", "min"),
            _zero_d_axis,
        ),
    ]


SPECS = _specs_elementwise() + _specs_matmul() + _specs_reduce()
