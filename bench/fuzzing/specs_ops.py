"""Fuzz specs of the engine's ops: Tensor operators and methods, and tinygrad_tx's top-level functions.

Each entry of ``SPECS`` is one public name; bench/fuzzing/specs.py joins this table with the
functional one. Argument strategies draw float32/float64 data in every layout core.leaf
knows, broadcasting on either side, negative/tuple/out-of-range axes, keepdims, and empty dims.
"""

import numpy as np
import torch
from hypothesis import strategies as st

import tinygrad_tx as tx

from .core import FLOATS, Leaf, Raw, Spec, float_dtypes, leaf, shapes, values

INT_TENSOR_REFUSED = "float ops refuse integer tensors (docs/errors.md: integer inputs)"


def _integer_input(args, kwargs):
    return INT_TENSOR_REFUSED if isinstance(args[0], np.ndarray) else None


# ---------------------------------------------------------------- strategies
@st.composite
def unary(draw, domain="real", ints=True):
    """One float leaf in any layout (or, sometimes, an integer array: refused by float-only ops)."""
    shape = draw(shapes())
    if ints and draw(st.integers(0, 9)) == 0:
        return (values(draw(st.integers(0, 99)), shape, np.int64, "integer"),), {}
    return (draw(leaf(shape, draw(float_dtypes()), domain)),), {}


@st.composite
def two_shapes(draw, max_dims=4):
    """Two shapes that broadcast together (mostly), or two independent ones (which may not)."""
    if draw(st.integers(0, 5)) == 0:
        return draw(shapes(max_dims=max_dims)), draw(shapes(max_dims=max_dims))
    from hypothesis.extra.numpy import mutually_broadcastable_shapes

    drawn = draw(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=max_dims, min_side=0, max_side=4))
    return drawn.input_shapes


@st.composite
def scalar(draw, domain="real"):
    value = draw(st.sampled_from([0.5, 2.0, -1.5, 3, -2, 1e-3, np.float64(0.25), np.float32(1.5)]))
    if domain == "nonzero" or domain == "positive":
        value = abs(value) if domain == "positive" else value
    return value


@st.composite
def binary(draw, domain_b="real", scalar_other=True, raw_other=False):
    """(self leaf, other): other a leaf broadcasting on either side, a Python/NumPy scalar, or a raw array."""
    dtype = draw(float_dtypes())
    shape_a, shape_b = draw(two_shapes())
    a = draw(leaf(shape_a, dtype))
    choice = draw(st.integers(0, 3))
    if scalar_other and choice == 0:
        return (a, draw(scalar(domain_b))), {}
    if raw_other and choice == 1:
        return (a, Raw(values(draw(st.integers(0, 99)), shape_b, dtype, domain_b))), {}
    if draw(st.integers(0, 4)) == 0:  # mixed precision: the other float dtype
        dtype = FLOATS[1 - FLOATS.index(dtype)]
    return (a, draw(leaf(shape_b, dtype, domain_b))), {}


def _promoted(function, a, b):
    """NumPy's promotion, which we keep: a 0-d float64 tensor with a float32 one computes in float64
    (PyTorch: float32, as 0-d tensors do not promote); both sides are cast up first (docs/errors.md)."""
    if isinstance(b, torch.Tensor) and a.dtype != b.dtype and a.dtype.is_floating_point and b.dtype.is_floating_point:
        return function(a.to(torch.float64), b.to(torch.float64))
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
    x = draw(leaf(shape, draw(float_dtypes()), domain))
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
            return x * 1
        return getattr(x, method)(dim=_torch_axis(axis, x.ndim), keepdim=keepdims)

    return twin


# ---------------------------------------------------------------- elementwise operators
def _torch_operand(value, like):
    return torch.as_tensor(value, dtype=like.dtype) if isinstance(value, (np.floating, np.integer)) else value


BINARY = {  # name: (our call, PyTorch's, divisor domain, error word)
    "__add__": (lambda a, b: a + b, lambda a, b: a + b, "real", "add"),
    "__sub__": (lambda a, b: a - b, lambda a, b: a - b, "real", "sub"),
    "__mul__": (lambda a, b: a * b, lambda a, b: a * b, "real", "mul"),
    "__truediv__": (lambda a, b: a / b, lambda a, b: a / b, "nonzero", "div"),
}
REFLECTED = {  # other (a scalar or raw array) on the left: other OP self
    "__radd__": (lambda a, b: a.__radd__(b), lambda a, b: b + a, "add"),
    "__rsub__": (lambda a, b: a.__rsub__(b), lambda a, b: b - a, "sub"),
    "__rmul__": (lambda a, b: a.__rmul__(b), lambda a, b: b * a, "mul"),
    "__rtruediv__": (lambda a, b: a.__rtruediv__(b), lambda a, b: b / a, "div"),
}


@st.composite
def reflected(draw, domain_self="real"):
    dtype = draw(float_dtypes())
    shape_a, shape_b = draw(two_shapes())
    a = draw(leaf(shape_a, dtype, domain_self))
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
        domain = "nonzero" if name == "__rtruediv__" else "real"
        specs.append(
            Spec(
                f"Tensor.{name}",
                reflected(domain),
                ours,
                lambda a, b, theirs=theirs: theirs(a, _torch_operand(b, a)),
                (word,),
            )
        )
    specs.append(Spec("Tensor.__neg__", unary(ints=False), lambda a: -a, lambda a: -a, ("neg",)))
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
    x = draw(leaf(shape, draw(float_dtypes()), "distinct"))
    axis = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1))) if shape else None
    return (x,), {"axis": axis, "keepdims": draw(st.booleans()) if axis is not None else False}


def _torch_maximum(a, b):
    return _promoted(torch.maximum, a, b if isinstance(b, torch.Tensor) else torch.as_tensor(b, dtype=a.dtype))


def _tensor_exponent(args, kwargs):
    if isinstance(args[1], Leaf):
        return "a tensor exponent is refused: exp(b log a) is wrong for negative bases (docs/errors.md)"
    return _integer_input(args, kwargs)


@st.composite
def power(draw):
    """x ** p: integer exponents (Python or NumPy int64) on any base, fractional ones on positive bases."""
    exponent = draw(st.sampled_from([2, 3, 0, 1, -1, -2, np.int64(2), np.int64(3), 0.5, 1.5, -0.5, 2.0]))
    fractional = isinstance(exponent, float) and not float(exponent).is_integer()
    domain = "positive" if fractional else ("nonzero" if exponent < 0 else "real")
    (x,), _ = draw(unary(domain))
    if draw(st.integers(0, 9)) == 0:
        exponent = draw(leaf(draw(shapes(max_dims=2)), draw(float_dtypes())))
    return (x, exponent), {}


def _torch_exponent(p):
    return int(p) if isinstance(p, np.integer) else p


@st.composite
def rpower(draw):
    base = draw(st.sampled_from([2, 2.0, 0.5, np.e, 10.0, np.float64(3.0)]))
    return (draw(leaf(draw(shapes()), draw(float_dtypes()))), base), {}


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
    dtype = draw(float_dtypes())
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
        # distinct values: PyTorch's amax splits ties evenly, we give the first (documented in Max)
        Spec(
            "Tensor.max",
            reduction("distinct"),
            lambda x, **kw: x.max(**kw),
            _reduce_twin("amax"),
            stricter=_zero_d_axis,
        ),
        Spec(
            "Tensor.min",
            reduction("distinct"),
            lambda x, **kw: x.min(**kw),
            _reduce_twin("amin"),
            ("max", "min"),
            _zero_d_axis,
        ),
    ]


SPECS = _specs_elementwise() + _specs_matmul() + _specs_reduce()
