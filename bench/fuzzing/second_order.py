"""The fuzzer's second order: each spec's double backward against PyTorch's, and gradgradcheck.

For a drawn case (inputs as float64 leaves), with a random upstream gradient ``u`` (itself a leaf)
and a random direction ``w`` per input, both engines compute the first derivatives with
``create_graph=True``, contract them to ``S = sum_i <grad_i, w_i>``, and differentiate ``S`` again
with respect to every input and to ``u``: a Hessian-vector product under a random upstream
gradient, plus the derivative of the backward in its upstream gradient. ``compare`` returns the
worst relative difference (relative to max(|PyTorch's|, 1)).
"""

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import tinygrad_tx as tx
from tinygrad_tx import Tensor, TinygradTxError

from .core import Leaf, _convert, _outputs, view_ours


def _as_float64(value):
    if isinstance(value, Leaf) and value.base.dtype.kind == "f":
        return Leaf(value.base.astype(np.float64), value.view, value.grad)
    if isinstance(value, (list, tuple)):
        return type(value)(_as_float64(v) for v in value)
    return value


def _contract(grads, directions, zero):
    total = zero
    for g, w in zip(grads, directions):
        if g is not None:
            total = total + (g * w).sum()
    return total


def _ours(spec, args, kwargs, rng):
    leaves = []
    out = [o for o in _outputs(spec.ours(*_convert(args, "ours", leaves), **kwargs)) if o.requires_grad]
    leaves = [t for t in leaves if t.requires_grad]
    if not out or not leaves:
        return None
    upstream = [Tensor(rng.standard_normal(o.shape), requires_grad=True, dtype="float64") for o in out]
    grads = tx.grad(out, leaves, upstream, create_graph=True, allow_unused=True)
    directions = [Tensor(rng.standard_normal(t.shape), dtype="float64") for t in leaves]
    total = _contract(grads, directions, Tensor(0.0, dtype="float64"))
    variables = leaves + upstream
    if not total.requires_grad:
        return [np.zeros(v.shape) for v in variables], leaves
    second = tx.grad(total, variables, allow_unused=True)
    return [np.zeros(v.shape) if g is None else g.numpy() for g, v in zip(second, variables)], leaves


def _theirs(spec, args, kwargs, rng):
    leaves = []
    with sdpa_kernel(SDPBackend.MATH):  # PyTorch's CPU flash attention has no double backward
        out = [o for o in _outputs(spec.theirs(*_convert(args, "torch", leaves), **kwargs)) if o.requires_grad]
        leaves = [t for t in leaves if t.requires_grad]
        upstream = [torch.tensor(rng.standard_normal(o.shape), requires_grad=True) for o in out]
        grads = torch.autograd.grad(out, leaves, upstream, create_graph=True, allow_unused=True)
        directions = [torch.tensor(rng.standard_normal(tuple(t.shape))) for t in leaves]
        total = _contract(grads, directions, torch.zeros((), dtype=torch.float64))
        variables = leaves + upstream
        if not total.requires_grad:
            return [np.zeros(tuple(v.shape)) for v in variables]
        second = torch.autograd.grad(total, variables, allow_unused=True)
    return [np.zeros(tuple(v.shape)) if g is None else g.numpy() for g, v in zip(second, variables)]


def compare(spec, case, seed=0):
    """Worst relative difference of the double backward, or None when the case has nothing to compare
    (refused by either engine, an integer op, or no input requiring grad)."""
    args, kwargs = case
    args = _as_float64(args)
    try:  # forwards only: a refusal here is the first-order fuzzer's business
        if not any(o.requires_grad for o in _outputs(spec.theirs(*_convert(args, "torch", []), **kwargs))):
            return None
        spec.ours(*_convert(args, "ours", []), **kwargs)
    except (TinygradTxError, RuntimeError, ValueError, IndexError, TypeError):
        return None
    ours = _ours(spec, args, kwargs, np.random.default_rng(seed))  # any error from here on is a failure
    if ours is None:
        return None
    try:
        theirs = _theirs(spec, args, kwargs, np.random.default_rng(seed))
    except RuntimeError:  # PyTorch has no double backward for this case (embedding of no indices)
        return None
    worst = 0.0
    for a, b in zip(ours[0], theirs):
        finite = np.isfinite(b)
        if not np.isfinite(a[finite]).all():
            return float("inf")
        scale = max(float(np.abs(b[finite]).max(initial=0.0)), 1.0)
        worst = max(worst, float(np.abs(a[finite] - b[finite]).max(initial=0.0)) / scale)
    return worst


def as_function(spec, args, kwargs):
    """(fn, leaves): the case as a function of its float leaves (views applied inside), for gradgradcheck."""
    leaves = []

    def collect(value):
        if isinstance(value, Leaf) and value.grad and value.base.dtype.kind == "f":
            leaves.append(Tensor(value.base, requires_grad=True, dtype="float64"))
        elif isinstance(value, (list, tuple)):
            for v in value:
                collect(v)

    collect(args)

    def fn(*tensors):
        remaining = iter(tensors)

        def substitute(value):
            if isinstance(value, Leaf) and value.grad and value.base.dtype.kind == "f":
                return view_ours(next(remaining), value.view)
            if isinstance(value, (list, tuple)):
                return type(value)(substitute(v) for v in value)
            return _convert(value, "ours", [])

        return spec.ours(*substitute(args), **kwargs)

    return fn, leaves
