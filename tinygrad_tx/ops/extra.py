"""The Tensor methods of the ops in unary.py, statistics.py and indexing.py (attached by ops/__init__.py).

Names and signatures are PyTorch's, with ``axis``/``keepdims`` as in the rest of this API.
"""

from ..tensor import Tensor
from . import indexing, statistics, unary


def _clamp(self, min=None, max=None):  # PyTorch's keyword names
    """Each element limited to [min, max] (either bound may be None); gradient 1 inside, boundaries included."""
    return unary.Clamp.apply(self, min=min, max=max)


def _var(self, axis=None, keepdims=False, *, correction=None, unbiased=None):
    """Variance over ``axis``, Bessel-corrected (correction=1) unless told otherwise, as PyTorch."""
    return statistics.Var.apply(
        self, axis=axis, keepdims=keepdims, correction=statistics.correction_of("var", correction, unbiased)
    )


def _std(self, axis=None, keepdims=False, *, correction=None, unbiased=None):
    """Standard deviation over ``axis``: sqrt(var) with the same correction rules."""
    return statistics.Std.apply(
        self, axis=axis, keepdims=keepdims, correction=statistics.correction_of("std", correction, unbiased)
    )


def _logsumexp(self, axis=None, keepdims=False):
    """log(sum(exp(x))) over ``axis``, computed stably (the maximum is taken out first).

    Integers and booleans are first promoted to float32, PyTorch's default dtype, as torch.logsumexp does."""
    if self.dtype.kind in "biu":
        self = self.astype("float32")
    return statistics.LogSumExp.apply(self, axis=axis, keepdims=keepdims)


def _cumsum(self, axis):
    """Running sum along ``axis`` (integers and booleans sum as int64, as PyTorch)."""
    return statistics.CumSum.apply(self, axis)


def _tril(self, diagonal=0):
    """Elements on and below the ``diagonal``-th diagonal of the last two axes; the rest 0."""
    return indexing.Triangle.apply(self, diagonal=diagonal, upper=False)


def _triu(self, diagonal=0):
    """Elements on and above the ``diagonal``-th diagonal of the last two axes; the rest 0."""
    return indexing.Triangle.apply(self, diagonal=diagonal, upper=True)


def _gather(self, axis, index):
    """PyTorch's gather: out[i][j] = self[index[i][j]][j] for axis 0 (and so on); out has index's shape."""
    if not isinstance(index, Tensor):
        index = Tensor(index, device=self.device)
    return indexing.Gather.apply(self, index, axis=axis)


def attach_methods(tensor_class, binary):
    """Attach the methods; ``binary(Function, a, b)`` applies a two-operand op after PyTorch's type promotion."""
    methods = {
        "abs": lambda self: unary.Abs.apply(self),
        "sign": lambda self: unary.Sign.apply(self),
        "sigmoid": lambda self: unary.Sigmoid.apply(self),
        "sin": lambda self: unary.Sin.apply(self),
        "cos": lambda self: unary.Cos.apply(self),
        "square": lambda self: unary.Square.apply(self),
        "rsqrt": lambda self: unary.Rsqrt.apply(self),
        "clamp": _clamp,
        "clip": _clamp,
        "minimum": lambda self, other: binary(unary.Minimum, self, other),
        "isnan": lambda self: unary.isnan(self),
        "isinf": lambda self: unary.isinf(self),
        "isfinite": lambda self: unary.isfinite(self),
        "var": _var,
        "std": _std,
        "logsumexp": _logsumexp,
        "cumsum": _cumsum,
        "argmin": statistics.argmin,
        "any": statistics.any_,
        "all": statistics.all_,
        "tril": _tril,
        "triu": _triu,
        "gather": _gather,
    }
    for name, method in methods.items():
        setattr(tensor_class, name, method)
