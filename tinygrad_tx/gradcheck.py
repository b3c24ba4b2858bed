"""Finite-difference gradient checks: the way to trust a hand-written backward.

Both checks contract the outputs with a random upstream gradient ``v`` and differentiate the scalar
``L(x) = <f(x), v>``. Never the plain sum of the outputs: softmax and an affine-free layernorm have a
constant sum, so any backward, however wrong, would "pass" against it.

- ``gradcheck``: every element of every input that requires grad, by central differences
  ``(L(x + eps e_i) - L(x - eps e_i)) / (2 eps)``. Exact but costs two forward passes per element.
- ``gradcheck_directional``: a few random directions ``d`` per input, comparing ``<grad, d>`` with
  ``(L(x + eps d) - L(x - eps d)) / (2 eps)``. Two forward passes per direction: for large inputs.

Inputs are copied to float64 first (float32 differences are too coarse to be useful). A function
that draws random numbers (dropout) must reseed inside ``fn`` so every call sees the same mask.
"""

import numpy as np

from . import backend
from .errors import GradcheckError, TinygradTxError
from .tensor import Tensor, no_grad


def _float64_copies(inputs):
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    copies = []
    for x in inputs:
        if isinstance(x, Tensor) and x.dtype.kind == "f":
            copies.append(Tensor(x.data, requires_grad=x.requires_grad, dtype="float64"))
        else:
            copies.append(x)
    checked = [i for i, x in enumerate(copies) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise TinygradTxError("gradcheck: no input requires grad; pass tensors made with requires_grad=True")
    return copies, checked


def _outputs(fn, inputs):
    out = fn(*inputs)
    outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    for o in outs:
        if not isinstance(o, Tensor):
            raise TinygradTxError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, got {type(o).__name__}")
    return outs


def _contracted(fn, inputs, upstream):
    """L = sum_j <f_j(inputs), v_j>, as a Python float, without recording a graph."""
    with no_grad():
        outs = _outputs(fn, inputs)
        return sum(float((backend.to_numpy(o.data).astype(np.float64) * v).sum()) for o, v in zip(outs, upstream))


def _analytic(fn, inputs, checked, rng):
    for i in checked:
        inputs[i].grad = None
    outs = _outputs(fn, inputs)
    upstream = [rng.standard_normal(o.shape) for o in outs]
    for o, v in zip(outs, upstream):
        if o.requires_grad:
            o.backward(backend.as_array(v, o.device, o.dtype), retain_graph=True)
    grads = {}
    for i in checked:
        g = inputs[i].grad
        grads[i] = np.zeros(inputs[i].shape) if g is None else backend.to_numpy(g.data).astype(np.float64)
    return grads, upstream


def _fail(index, shape, where, analytic, numeric, tolerance):
    error = abs(analytic - numeric) / max(abs(numeric), 1e-12)
    raise GradcheckError(
        f"gradcheck: input {index} (shape {tuple(shape)}) gradient mismatch at {where}: "
        f"analytic {analytic:.8g}, numeric {numeric:.8g}, relative error {error:.3g} ({tolerance})"
    )


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Compare every analytic input gradient of ``fn(*inputs)`` with central finite differences.

    Returns True, or raises ``GradcheckError`` naming the input, the worst element's index, the
    analytic and numeric values and the relative error. Elements pass when
    ``|analytic - numeric| <= atol + rtol * |numeric|``.
    """
    inputs, checked = _float64_copies(inputs)
    rng = np.random.default_rng(seed)
    analytic, upstream = _analytic(fn, inputs, checked, rng)
    for i in checked:
        data = inputs[i].data
        numeric = np.zeros(data.shape)
        for flat in range(data.size):
            position = np.unravel_index(flat, data.shape)
            original = data[position].item()
            data[position] = original + eps
            plus = _contracted(fn, inputs, upstream)
            data[position] = original - eps
            minus = _contracted(fn, inputs, upstream)
            data[position] = original
            numeric[position] = (plus - minus) / (2 * eps)
        excess = np.abs(analytic[i] - numeric) - (atol + rtol * np.abs(numeric))
        if excess.size and excess.max() > 0:
            worst = np.unravel_index(int(excess.argmax()), excess.shape)
            _fail(
                i,
                data.shape,
                f"index {tuple(int(k) for k in worst)}",
                float(analytic[i][worst]),
                float(numeric[worst]),
                f"atol={atol}, rtol={rtol}",
            )
    return True


def gradcheck_directional(fn, inputs, n_directions=4, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """The cheaper check for large inputs: directional derivatives along random unit directions.

    For each input that requires grad and each direction d, ``<analytic grad, d>`` must match
    ``(L(x + eps d) - L(x - eps d)) / (2 eps)``. Returns True or raises ``GradcheckError``.
    """
    inputs, checked = _float64_copies(inputs)
    rng = np.random.default_rng(seed)
    analytic, upstream = _analytic(fn, inputs, checked, rng)
    for i in checked:
        tensor = inputs[i]
        original = tensor.data.copy()
        for k in range(n_directions):
            direction = rng.standard_normal(tensor.shape)
            direction /= max(np.linalg.norm(direction), 1e-12)
            step = backend.as_array(direction * eps, tensor.device, tensor.dtype)
            tensor.data = original + step
            plus = _contracted(fn, inputs, upstream)
            tensor.data = original - step
            minus = _contracted(fn, inputs, upstream)
            tensor.data = original
            numeric = (plus - minus) / (2 * eps)
            predicted = float((analytic[i] * direction).sum())
            if abs(predicted - numeric) > atol + rtol * abs(numeric):
                _fail(i, tensor.shape, f"random direction {k}", predicted, numeric, f"atol={atol}, rtol={rtol}")
    return True


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Compare second derivatives of ``fn(*inputs)`` (a double backward) with finite differences of the first.

    With a random upstream gradient ``u`` and random directions ``w``, the first derivative contracted
    to a scalar is ``S(x, u) = <grad_x <f(x), u>, w>``. Its gradient with respect to every input
    element and every element of ``u`` comes from ``grad(..., create_graph=True)`` followed by a second
    ``grad``; each is compared with ``(S(x + eps e_i) - S(x - eps e_i)) / (2 eps)``, the first
    derivatives computed by plain backward passes. In float64. Returns True, or raises
    ``GradcheckError`` naming the worst element, as ``gradcheck`` does.
    """
    from .graph import grad

    inputs, checked = _float64_copies(inputs)
    rng = np.random.default_rng(seed)
    outs = [o for o in _outputs(fn, inputs) if o.requires_grad]
    upstream = [Tensor(rng.standard_normal(o.shape), requires_grad=True, dtype="float64") for o in outs]
    directions = [rng.standard_normal(inputs[i].shape) for i in checked]
    variables = [inputs[i] for i in checked] + upstream

    def first(create_graph):
        outs = [o for o in _outputs(fn, inputs) if o.requires_grad]
        grads = grad(outs, [inputs[i] for i in checked], upstream, create_graph=create_graph, allow_unused=True)
        terms = [(g * Tensor(w, dtype="float64")).sum() for g, w in zip(grads, directions) if g is not None]
        return sum(terms[1:], terms[0]) if terms else None

    total = first(create_graph=True)
    if total is None or not total.requires_grad:
        analytic = [np.zeros(v.shape) for v in variables]
    else:
        second = grad(total, variables, allow_unused=True)
        analytic = [np.zeros(v.shape) if g is None else backend.to_numpy(g.data) for g, v in zip(second, variables)]
    for index, (variable, expected) in enumerate(zip(variables, analytic)):
        data = variable.data
        numeric = np.zeros(data.shape)
        for flat in range(data.size):
            position = np.unravel_index(flat, data.shape)
            original = data[position].item()
            values = []
            for step in (eps, -eps):
                data[position] = original + step
                value = first(create_graph=False)
                values.append(0.0 if value is None else value.item())
            data[position] = original
            numeric[position] = (values[0] - values[1]) / (2 * eps)
        excess = np.abs(expected - numeric) - (atol + rtol * np.abs(numeric))
        if excess.size and excess.max() > 0:
            worst = np.unravel_index(int(excess.argmax()), excess.shape)
            what = f"input {checked[index]}" if index < len(checked) else f"upstream gradient {index - len(checked)}"
            error = abs(expected[worst] - numeric[worst]) / max(abs(numeric[worst]), 1e-12)
            raise GradcheckError(
                f"gradgradcheck: {what} (shape {tuple(data.shape)}) second derivative mismatch at index "
                f"{tuple(int(k) for k in worst)}: analytic {expected[worst]:.8g}, numeric {numeric[worst]:.8g}, "
                f"relative error {error:.3g} (atol={atol}, rtol={rtol})"
            )
    return True
