"""The backward walk: ``Tensor.backward`` and ``tinygrad_tx.grad``. Knows no particular op.

``backward`` orders the contexts reachable from the outputs topologically (iteratively, so graphs
thousands of ops deep work), then calls each op's hand-written backward exactly once, after every
gradient flowing into its outputs has been summed. See docs/autograd.md.

Two kinds of walk share these steps (docs/derivations/second_order.md):
- ``create_graph=False`` (training): gradients are raw arrays and nothing is recorded.
- ``create_graph=True``: gradients are Tensors, and each backward runs under grad mode on Tensors
  (its saved arrays handed back as the Tensors they came from), so the backward is itself a graph
  that can be differentiated again. A backward that only works on arrays still gives first
  derivatives; a second derivative through it raises an error naming the op.
"""

from . import anomaly, backend
from . import tensor as _tensor_module
from .differentiable import backward_on_tensors
from .errors import GraphError, ShapeError
from .tensor import Tensor, enable_grad

_FREED_MESSAGE = (
    "backward: the graph was already freed by a previous backward(); "
    "pass retain_graph=True to the first backward() to run it twice"
)


def backward(outputs, gradients, retain_graph=None, create_graph=False, inputs=None, allow_unused=False):
    """The walk behind ``Tensor.backward`` (``inputs`` None: into leaves' ``.grad``) and ``grad`` (into a tuple)."""
    retain_graph = create_graph if retain_graph is None else retain_graph
    if create_graph:
        with enable_grad():
            return _backward(outputs, gradients, retain_graph, True, inputs, allow_unused)
    return _backward(outputs, gradients, retain_graph, False, inputs, allow_unused)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """d(outputs)/d(inputs) as a tuple of Tensors, one per input; no ``.grad`` is read or written.

    ``outputs`` and ``inputs`` are Tensors or sequences of them; ``grad_outputs`` gives each output's
    upstream gradient (None: ones, for one-element outputs only). ``inputs`` may be leaves or
    intermediates. An input the outputs do not depend on raises ``GraphError``, or gets None with
    ``allow_unused=True``. ``create_graph=True`` records the computation, so the results can be
    differentiated again (Hessian-vector products, gradient penalties); ``retain_graph`` defaults to
    it. As ``torch.autograd.grad``.
    """
    outputs = (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    elif isinstance(grad_outputs, Tensor) or not isinstance(grad_outputs, (tuple, list)):
        grad_outputs = (grad_outputs,)
    if len(grad_outputs) != len(outputs):
        raise GraphError(f"grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for position, tensor in enumerate(inputs):
        if not isinstance(tensor, Tensor) or not tensor.requires_grad:
            raise GraphError(f"grad: input {position} is not a Tensor that requires grad")
    return backward(outputs, grad_outputs, retain_graph, create_graph, inputs, allow_unused)


def _backward(outputs, gradients, retain_graph, create_graph, inputs, allow_unused):
    walk = _Walk(bool(retain_graph), create_graph, inputs)
    roots = []
    for output, gradient in zip(outputs, gradients):
        grad = _seed(output, gradient, create_graph)
        if output._ctx is None:  # a leaf as an output: its gradient is the seed itself
            if output._hooks or walk.capture is not None:
                walk.leaf_uses[id(output)] = walk.leaf_uses.get(id(output), 0) + 1
            walk.to_leaf(output, grad)
            continue
        if output._ctx.released:
            raise GraphError(_FREED_MESSAGE)
        _accumulate_pending(output._ctx, output._out_index, grad, create_graph)
        roots.append(output._ctx)
    order = _topological_order(roots, walk.leaf_uses, walk.capture is not None)
    needed = walk.prune(order)
    walk.used([o for o in outputs if o._ctx is None])
    for node in reversed(order):
        node_inputs = node.inputs  # release() drops them
        if needed is None or id(node) in needed:
            walk.run_backward(node)
        else:
            walk.capture_outputs(node, node.pending)
            node.pending = [None] * len(node.pending)
        if walk.leaf_uses:
            walk.used(node_inputs)
    return walk.captured(allow_unused)


def _seed(output, gradient, create_graph):
    """The upstream gradient of one output: ones for a one-element output, else ``gradient`` checked."""
    if not output.requires_grad:
        raise GraphError(
            "backward: this tensor does not require grad (no input had requires_grad=True, "
            "or it was computed under no_grad)"
        )
    if gradient is None:
        if output.data.size != 1:
            raise GraphError(
                f"backward: a gradient is needed for a non-scalar output of shape {output.shape}; "
                "call .backward(gradient) with a tensor of that shape, or reduce it (e.g. .sum()) first"
            )
        grad = backend.xp_of(output.data).ones_like(output.data)
    elif create_graph and isinstance(gradient, Tensor):
        grad = gradient if gradient.dtype == output.dtype else gradient.astype(output.dtype)
    else:
        grad = gradient.data if isinstance(gradient, Tensor) else gradient
        grad = backend.as_array(grad, output.device, output.data.dtype)
    if tuple(grad.shape) != output.data.shape:
        raise ShapeError(f"backward: gradient shape {tuple(grad.shape)} does not match tensor shape {output.shape}")
    return Tensor._wrap(grad) if create_graph and not isinstance(grad, Tensor) else grad


class _Walk:
    """One backward pass: the reverse topological walk, and where gradients wait on their way to leaves.

    Each op's backward runs once, on its outputs' summed gradients (``Context.pending``), and adds its
    input gradients to the pending sums of the ops that made those inputs, or to leaves' ``.grad``.
    A leaf with hooks instead collects its contributions here until the last op using it has run
    (``leaf_uses`` counts them down), then goes through its hooks once. Gradients are raw arrays, or
    recorded Tensors under ``create_graph``. ``grad()`` passes ``inputs``: their gradients are
    collected (``capture``) and no leaf's ``.grad`` is touched.
    """

    def __init__(self, retain_graph, create_graph=False, inputs=None):
        self.retain_graph = retain_graph
        self.create_graph = create_graph
        self.leaf_uses = {}  # id(hooked or captured leaf) -> ops still to run that take it as an input
        self.leaf_pending = {}  # id(such a leaf) -> [summed gradient so far, whether we own that array]
        self.inputs = inputs
        self.capture = None if inputs is None else {_key(t): None for t in inputs}

    def prune(self, order):
        """For ``grad()``: the ids of the ops whose backward leads to a wanted input (None: run them all)."""
        if self.capture is None:
            return None
        needed = set()
        for node in order:  # inputs before outputs
            for t in node.inputs:
                if t is not None and (_key(t) in self.capture or (t._ctx is not None and id(t._ctx) in needed)):
                    needed.add(id(node))
                    break
        return needed

    def capture_outputs(self, node, grads_out):
        if self.capture is None:
            return
        for index, grad in enumerate(grads_out):
            key = (id(node), index)
            if key in self.capture and grad is not None:
                self.capture[key] = grad

    def run_backward(self, node):
        """Call one op's backward with its summed output gradients and route the results to its inputs."""
        grads_out = node.pending
        if all(g is None for g in grads_out):
            return
        if node.released:
            raise GraphError(_FREED_MESSAGE)
        node.pending = [None] * len(grads_out)
        node.owned = [False] * len(grads_out)
        if node.hooks:
            for index, hooks in node.hooks.items():
                if hooks and grads_out[index] is not None:
                    grads_out[index] = _run_grad_hooks(hooks, grads_out[index])
        for index, ref in node.retained.items():
            tensor = ref()
            if tensor is not None and grads_out[index] is not None:
                g = grads_out[index]
                tensor.grad = g if isinstance(g, Tensor) else Tensor._wrap(g.copy())
        self.capture_outputs(node, grads_out)
        if len(grads_out) > 1:  # a multi-output op gets zeros for the outputs nobody used
            first = next(g for g in grads_out if g is not None)
            xp = backend.xp_of(first.data if isinstance(first, Tensor) else first)
            grads_out = [
                g if g is not None else _like(first, xp.zeros(shape, dtype))
                for g, (shape, dtype) in zip(grads_out, node.out_meta)
            ]
        name = node.function.__name__
        if self.create_graph:
            grads_in = backward_on_tensors(node, grads_out)
        else:
            grads_in = node.function.backward(node, *grads_out)
        if not isinstance(grads_in, (tuple, list)):
            grads_in = (grads_in,)
        if len(grads_in) != len(node.inputs):
            raise GraphError(
                f"{name}.backward returned {len(grads_in)} gradients for {len(node.inputs)} inputs "
                "(return one per forward argument, None where there is none)"
            )
        for tensor, grad in zip(node.inputs, grads_in):
            if tensor is None or grad is None or not tensor.requires_grad:
                continue
            if tuple(grad.shape) != tensor.data.shape:
                raise ShapeError(
                    f"{name}.backward returned a gradient of shape {tuple(grad.shape)} for an input of shape "
                    f"{tensor.shape}"
                )
            if grad.dtype != tensor.data.dtype:
                grad = grad.astype(tensor.data.dtype)
            if anomaly.is_anomaly_enabled():
                array = grad.data if isinstance(grad, Tensor) else grad
                anomaly.check_finite(array, name, "backward", node.call_site, "gradient of an input")
            if tensor._ctx is None:
                self.to_leaf(tensor, grad)
            else:
                _accumulate_pending(tensor._ctx, tensor._out_index, grad, self.create_graph)
        if not self.retain_graph:
            node.release()

    def to_leaf(self, tensor, grad):
        """A gradient for a leaf: into ``.grad`` at once, or, for a hooked leaf, into its sum so far."""
        if id(tensor) not in self.leaf_uses:
            if self.capture is None:
                _accumulate_leaf(tensor, grad)
            return
        waiting = self.leaf_pending.get(id(tensor))
        if waiting is None:
            self.leaf_pending[id(tensor)] = [grad, False]
        elif self.create_graph:
            waiting[0] = waiting[0] + grad
        elif waiting[1]:
            waiting[0] += grad
        else:
            waiting[:] = [waiting[0] + grad, True]

    def used(self, inputs):
        """An op taking ``inputs`` has run: a hooked leaf with no use left gets its hooks and its ``.grad``."""
        for tensor in inputs:
            if tensor is None or id(tensor) not in self.leaf_uses:
                continue
            self.leaf_uses[id(tensor)] -= 1
            if self.leaf_uses[id(tensor)] or id(tensor) not in self.leaf_pending:
                continue
            grad = self.leaf_pending.pop(id(tensor))[0]
            hooks = tensor._hooks
            if hooks and hooks.grad:
                grad = _run_grad_hooks(hooks.grad, grad)
            if self.capture is not None:
                if id(tensor) in self.capture:
                    self.capture[id(tensor)] = grad
                continue
            _accumulate_leaf(tensor, grad)
            for hook in list(hooks.post):
                hook(tensor)

    def captured(self, allow_unused):
        """``grad()``'s answer: one gradient per input, as Tensors; None (or an error) for an unreached one."""
        if self.capture is None:
            return None
        results = []
        for position, tensor in enumerate(self.inputs):
            grad = self.capture[_key(tensor)]
            if grad is None and not allow_unused:
                raise GraphError(
                    f"grad: input {position} (shape {tensor.shape}) does not reach the outputs; "
                    "pass allow_unused=True to get None for it"
                )
            results.append(grad if grad is None or isinstance(grad, Tensor) else Tensor._wrap(grad))
        return tuple(results)


def _key(tensor):
    """How ``grad()`` finds an input: a leaf by identity, an intermediate by (its op, which output)."""
    return id(tensor) if tensor._ctx is None else (id(tensor._ctx), tensor._out_index)


def _like(first, array):
    return Tensor._wrap(array) if isinstance(first, Tensor) else array


def _topological_order(roots, leaf_uses=None, every_leaf=False):
    """Contexts reachable from ``roots`` (a Context or a list of them), inputs before outputs
    (iterative depth-first search).

    With ``leaf_uses`` (a dict), also counts into it how many of those ops take each leaf with hooks
    (each leaf at all with ``every_leaf``: ``grad()`` collects every leaf's sum before handing it out)."""
    order, visited = [], set()
    stack = [(root, False) for root in reversed(roots if isinstance(roots, (list, tuple)) else [roots])]
    while stack:
        node, finished = stack.pop()
        if finished:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for tensor in node.inputs:
            if tensor is None:
                continue
            if tensor._ctx is not None:
                if id(tensor._ctx) not in visited:
                    stack.append((tensor._ctx, False))
            elif (tensor._hooks or every_leaf) and leaf_uses is not None:
                leaf_uses[id(tensor)] = leaf_uses.get(id(tensor), 0) + 1
    return order


def _run_grad_hooks(hooks, grad):
    """``grad`` through ``hooks`` in order, each seeing the previous one's replacement."""
    recorded = isinstance(grad, Tensor)
    array = grad.data if recorded else grad
    for hook in list(hooks):
        result = hook(grad if recorded else Tensor._wrap(grad))
        if result is None:
            continue
        if recorded and isinstance(result, Tensor):
            replacement = result
        else:
            replacement = result.data if isinstance(result, Tensor) else result
            replacement = backend.as_array(replacement, backend.device_of(array), array.dtype)
        if tuple(replacement.shape) != tuple(array.shape):
            raise ShapeError(
                f"register_hook: hook {getattr(hook, '__name__', hook)!r} returned a gradient of shape "
                f"{tuple(replacement.shape)} for a tensor of shape {tuple(array.shape)}; return None or the same shape"
            )
        grad = Tensor._wrap(replacement) if recorded and not isinstance(replacement, Tensor) else replacement
        array = grad.data if recorded else grad
    return grad


def _accumulate_pending(node, index, grad, recorded=False):
    """Sum gradients flowing into one output; the first is kept by reference, never written in place
    (recorded Tensors are always summed out of place, so that the sum is recorded too)."""
    current = node.pending[index]
    if current is None:
        node.pending[index] = grad
    elif recorded:
        node.pending[index] = current + grad
    elif node.owned[index]:
        current += grad
    else:
        total = current + grad
        # NumPy sums two 0-d arrays into a scalar, which the next ``+=`` would not update in place
        node.pending[index] = total if total.ndim else backend.xp_of(current).asarray(total)
        node.owned[index] = True


def _accumulate_leaf(tensor, grad):
    """Leaves own their gradient array: copied on first arrival, summed in place afterwards.

    A recorded gradient (``create_graph``) is kept as the Tensor it is, and summed out of place."""
    if isinstance(grad, Tensor):
        tensor.grad = grad if tensor.grad is None else tensor.grad + grad
    elif tensor.grad is None:
        tensor.grad = Tensor._wrap(grad.copy())
    else:
        tensor.grad.data += grad


_tensor_module._walk = backward
