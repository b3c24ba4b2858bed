"""Functional derivatives built on ``grad``: vjp, jvp, hvp, jacobian, hessian (as ``torch.autograd.functional``).

    from tinygrad_tx import autograd
    out, vjp = autograd.vjp(f, x, v)          # v^T J
    out, jvp = autograd.jvp(f, x, v)          # J v, by differentiating a vjp (the double-vjp trick)
    out, hvp = autograd.hvp(f, x, v)          # H v of a scalar f, by differentiating its gradient
    autograd.jacobian(f, x), autograd.hessian(f, x)

``inputs`` is a Tensor or a tuple of Tensors (``v`` matches it); a tuple gives a tuple back. The
inputs are detached copies, so nothing here touches the caller's graph or ``.grad``.
docs/derivations/second_order.md derives the tricks.
"""

import numpy as np

from .graph import grad
from .tensor import Tensor

__all__ = ["grad", "vjp", "jvp", "hvp", "jacobian", "hessian"]


def _as_tuple(inputs):
    return (inputs, False) if isinstance(inputs, (tuple, list)) else ((inputs,), True)


def _fresh(inputs):
    return tuple(Tensor._wrap(x.data, True) for x in inputs)


def _zeros_for_unused(grads, like):
    return tuple(Tensor._wrap(x.data * 0) if g is None else g for g, x in zip(grads, like))


def _single(values, single):
    return values[0] if single else values


def vjp(f, inputs, v, create_graph=False):
    """(f(inputs), v^T J): the vector-Jacobian product, one backward pass."""
    inputs, single = _as_tuple(inputs)
    xs = _fresh(inputs)
    out = f(*xs)
    grads = grad(out, xs, v, create_graph=create_graph, allow_unused=True) if out.requires_grad else (None,) * len(xs)
    return out, _single(_zeros_for_unused(grads, xs), single)


def jvp(f, inputs, v):
    """(f(inputs), J v): differentiate u -> u^T J (linear in u) with respect to u, along v."""
    inputs, single = _as_tuple(inputs)
    directions, _ = _as_tuple(v)
    xs = _fresh(inputs)
    out = f(*xs)
    dummy = Tensor._wrap(out.data * 0, True)  # any value: u^T J is linear in u
    grads = grad(out, xs, dummy, create_graph=True, allow_unused=True)
    total = None
    for g, d in zip(grads, directions):
        if g is not None:
            term = (g * d).sum()
            total = term if total is None else total + term
    if total is None or not total.requires_grad:
        return out, Tensor._wrap(out.data * 0)
    (result,) = grad(total, dummy, allow_unused=True)
    return out, Tensor._wrap(out.data * 0) if result is None else result


def hvp(f, inputs, v):
    """(f(inputs), H v) for a scalar f: the gradient of <grad f, v>, two backward passes."""
    inputs, single = _as_tuple(inputs)
    directions, _ = _as_tuple(v)
    xs = _fresh(inputs)
    out = f(*xs)
    grads = grad(out, xs, create_graph=True, allow_unused=True)
    total = None
    for g, d in zip(grads, directions):
        if g is not None:
            term = (g * d).sum()
            total = term if total is None else total + term
    if total is None or not total.requires_grad:
        return out, _single(tuple(Tensor._wrap(x.data * 0) for x in xs), single)
    return out, _single(_zeros_for_unused(grad(total, xs, allow_unused=True), xs), single)


def jacobian(f, x):
    """The Jacobian of f at one Tensor x, shape ``out.shape + x.shape``: one vjp per output element."""
    out = f(Tensor._wrap(x.data))
    rows = []
    for flat in range(out.size):
        basis = np.zeros(out.size, dtype=out.dtype)
        basis[flat] = 1
        rows.append(vjp(f, x, Tensor._wrap(basis.reshape(out.shape)))[1].numpy())
    return Tensor(np.stack(rows).reshape(out.shape + x.shape), dtype=x.dtype)


def hessian(f, x):
    """The Hessian of a scalar f at one Tensor x, shape ``x.shape + x.shape``: one hvp per element of x."""
    rows = []
    for flat in range(x.size):
        basis = np.zeros(x.size, dtype=x.dtype)
        basis[flat] = 1
        rows.append(hvp(f, x, Tensor._wrap(basis.reshape(x.shape)))[1].numpy())
    return Tensor(np.stack(rows).reshape(x.shape + x.shape), dtype=x.dtype)
