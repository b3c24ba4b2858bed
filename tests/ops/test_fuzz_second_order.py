"""The fuzzer's second order (bench/fuzzing/second_order.py): for every spec in bench/fuzzing/specs*.py, the
double backward (a Hessian-vector product under a random upstream gradient, and its derivative in that
gradient) against PyTorch's torch.autograd.grad(create_graph=True) in float64, and gradgradcheck on one small
case. ``FUZZ2_EXAMPLES`` cases per op (derandomized: the same ones every run)."""

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import tinygrad_tx as tx
from bench.fuzzing.second_order import _as_float64, as_function, compare
from bench.fuzzing.specs import SPECS

FUZZ2_EXAMPLES = int(os.environ.get("FUZZ2_EXAMPLES", "4"))
TOLERANCE = 1e-7
FLOAT32_TOLERANCE = 1e-5  # a cast to float32 inside the op (astype, float) rounds its derivatives there too
GRADGRADCHECK_ELEMENTS = 24  # gradgradcheck differentiates every element twice: small cases only


@pytest.mark.parametrize("name", sorted(SPECS))
def test_second_derivatives_agree_with_pytorch(name):
    spec, worst, checked = SPECS[name], [0.0], []

    @settings(
        max_examples=FUZZ2_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=spec.cases)
    def body(case):
        error = compare(spec, case)
        if error is None:
            return
        worst[0] = max(worst[0], error)
        casts = name in ("Tensor.astype", "Tensor.float")
        limit = FLOAT32_TOLERANCE if casts else TOLERANCE
        assert error < limit, f"{name}: double backward differs from PyTorch's by {error:.3g}"
        args, kwargs = case
        fn, leaves = as_function(spec, _as_float64(args), kwargs)
        size = sum(t.size for t in leaves) + sum(o.size for o in _outputs(fn, leaves))
        if not checked and not casts and leaves and size <= GRADGRADCHECK_ELEMENTS:
            checked.append(tx.gradgradcheck(fn, leaves, atol=1e-5, rtol=1e-4))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        body()


def _outputs(fn, leaves):
    out = fn(*leaves)
    return [o for o in (out if isinstance(out, (tuple, list)) else (out,)) if o.requires_grad]


def test_the_second_order_checker_catches_a_wrong_second_derivative():
    from bench.fuzzing.core import Leaf, Spec
    from tinygrad_tx import Function

    class Square(Function):  # first derivative right (2x), recorded as 3x - x.data: second derivative 3, not 2
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (3 * x - getattr(x, "data", x))

    spec = Spec("Tensor.square", None, Square.apply, lambda t: t * t)
    case = ((Leaf(np.linspace(-1.0, 1.0, 4)),), {})
    assert compare(spec, case) > 0.1
