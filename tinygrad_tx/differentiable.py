"""Running an op's backward on Tensors, so that ``create_graph=True`` records it (DeZero's design).

A primitive's backward is written with operators that work on arrays and on Tensors alike
(``grad * out``, ``grad.sum(axis)``, ``xp_of(grad).matmul``: ``xp_of`` of a Tensor is
``tinygrad_tx.ops.tensor_module``). Under ``create_graph`` the walk calls it with Tensor gradients,
under grad mode, and with ``ctx.saved_tensors`` handed back as the Tensors the saved arrays came from:

- a saved input is that input Tensor;
- a saved output is a Tensor of this very op (so d(output)/d(input) goes back through it again);
- anything else (a mask, indices, an intermediate) is a constant.

A backward written on arrays cannot be recorded. Mark it ``@once_differentiable`` (as in PyTorch),
or leave it unmarked: when it raises TypeError/AttributeError on Tensors (``np.exp(tensor)``,
``grad.copy()``, ``out[...] = ...``) or returns something that is not a Tensor, it is run again on
arrays. Either way its gradients are correct, and a second derivative through them raises
``GraphError`` naming the op: never a silent zero.
"""

import functools

from . import backend
from .errors import GraphError
from .function import Function
from .tensor import Tensor


def once_differentiable(backward):
    """Mark a Function's ``backward`` that works on arrays only (``torch.autograd.function.once_differentiable``).

    Under ``create_graph=True`` it still runs (on arrays), and differentiating its result again
    raises ``GraphError`` naming the op, instead of a wrong (constant) second derivative."""

    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        return backward(ctx, *grads)

    wrapper.once_differentiable = True
    return wrapper


def saved_as_tensors(node):
    """``node.saved_tensors`` with each array replaced by the Tensor it came from (or a constant Tensor)."""
    inputs = [t for t in node.inputs if t is not None]
    outputs = dict(node.saved_outputs)  # saved position -> output index, recorded by Function.apply
    result = []
    for position, item in enumerate(node.saved_tensors):
        if position in outputs:  # (NumPy returns a 0-d result as a scalar: np.exp(0-d array))
            tensor = Tensor._wrap(backend.xp_of(item).asarray(item), True)
            tensor._ctx, tensor._out_index = node, outputs[position]
        elif isinstance(item, backend.ARRAY_TYPES):
            tensor = next((t for t in inputs if t.data is item), None)
            tensor = Tensor._wrap(item) if tensor is None else tensor
        else:
            tensor = item  # a number, None, a NumPy scalar that is no output
        result.append(tensor)
    return tuple(result)


def backward_on_tensors(node, grads_out):
    """``node.function.backward`` recorded: on Tensor gradients and saved Tensors, under grad mode."""
    function = node.function
    if getattr(function.backward, "once_differentiable", False):
        return _on_arrays(node, grads_out)
    arrays = node.saved_tensors
    node.saved_tensors = saved_as_tensors(node)
    try:
        grads_in = function.backward(node, *grads_out)
    except (TypeError, AttributeError):  # array-only code met a Tensor: np.exp(t), t.copy(), t[i] = ...
        grads_in = None
    finally:
        node.saved_tensors = arrays
    results = grads_in if isinstance(grads_in, (tuple, list)) else (grads_in,)
    if grads_in is None or any(g is not None and not isinstance(g, Tensor) for g in results):
        return _on_arrays(node, grads_out)
    return grads_in


def _on_arrays(node, grads_out):
    """Run an array-only backward, and return its gradients as Tensors whose own backward raises."""
    grads_in = node.function.backward(node, *[g.data for g in grads_out])
    results = grads_in if isinstance(grads_in, (tuple, list)) else (grads_in,)
    depends = [t for t in (*grads_out, *node.inputs) if isinstance(t, Tensor) and t.requires_grad]
    wrapped = tuple(
        None if g is None else _NotDifferentiable.apply(Tensor._wrap(g), node.function.__name__, *depends)
        for g in results
    )
    return wrapped if isinstance(grads_in, (tuple, list)) else wrapped[0]


class _NotDifferentiable(Function):
    """Stands for the gradient an array-only backward returned: differentiating it raises."""

    @staticmethod
    def forward(ctx, gradient, op, *depends):
        ctx.op = op
        return gradient

    @staticmethod
    def backward(ctx, grad):
        raise GraphError(
            f"{ctx.op}: its backward works on arrays only (once_differentiable), so it cannot be differentiated "
            "again; write it with Tensor operations (docs/experimenting.md) to get second derivatives"
        )
