"""Tensor and the reverse-mode graph machinery. Knows no particular op.

A Tensor holds an array (NumPy or CuPy) in ``.data``. A Tensor made by an op remembers the op's
context (``_ctx``, a ``function.Context``), which holds the op's inputs and whatever the op saved for
its backward pass. ``backward()`` orders those contexts topologically (iteratively, so graphs
thousands of ops deep work), then calls each op's hand-written backward exactly once, after every
gradient flowing into its outputs has been summed. See docs/autograd.md.

The operator methods (``+``, ``@``, ``sum``, ``reshape`` ...) are attached by ``tinygrad_tx.ops``.
"""

import contextlib
import threading
import weakref

import numpy as np

from . import anomaly, backend
from .errors import DTypeError, GraphError, ShapeError
from .scoped import ScopedSetting

_grad_mode = ScopedSetting("grad mode", True)


def is_grad_enabled():
    """Whether ops record the graph in this thread (each thread starts with it on, as in PyTorch)."""
    return _grad_mode.get()


class _GradModeScope(contextlib.ContextDecorator):
    """Grad mode set to ``enabled`` for a block or a decorated function, in the calling thread only.

    The tokens of open scopes live per thread on the instance, so one decorator instance can be
    entered recursively and from several threads at once; each exit restores what its entry found.
    """

    enabled = False

    def __init__(self):
        self._open = threading.local()

    def __enter__(self):
        tokens = self._open.__dict__.setdefault("tokens", [])
        tokens.append(_grad_mode.push(self.enabled))
        return self

    def __exit__(self, *exc):
        _grad_mode.pop(self._open.tokens.pop())
        return False


class no_grad(_GradModeScope):
    """Context manager and decorator: ops inside record no graph (evaluation, sampling, updates)."""

    enabled = False


class enable_grad(_GradModeScope):
    """Turn graph recording back on inside a ``no_grad`` region."""

    enabled = True


class Tensor:
    """An n-dimensional array on a device, with an optional gradient."""

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_out_index", "_hooks", "__weakref__")
    __array_ufunc__ = None  # make NumPy defer to our reflected operators: np_array * tensor

    def __init__(self, data, requires_grad=False, device=None, dtype=None):
        """``device`` defaults to where ``data`` lives (CPU for scalars, lists and NumPy arrays).

        Float data becomes float32 unless ``dtype`` says otherwise (``dtype="float64"`` for
        gradchecks); integer data stays integer (indices), booleans stay boolean. Data is copied.
        """
        if isinstance(data, Tensor):
            data = data.data
        device = backend.device_of(data) if device is None else backend.normalize_device(device)
        xp = backend.array_module(device)
        if backend.device_of(data) != device:
            data = backend.as_array(data, device)
        try:
            array = xp.array(data, dtype=dtype, copy=True)
        except (ValueError, TypeError) as exc:
            raise DTypeError(
                f"Tensor: cannot make an array of numbers from {type(data).__name__} data ({exc})"
            ) from None
        if array.dtype.kind not in "biufc":
            raise DTypeError(f"Tensor: data must be numbers or booleans, got dtype {array.dtype}")
        if dtype is None and array.dtype.kind == "f" and array.dtype != backend.DEFAULT_FLOAT:
            array = array.astype(backend.DEFAULT_FLOAT)
        self.data = array
        self.grad = None
        self._ctx = None
        self._out_index = 0
        self._hooks = None  # a leaf's _LeafHooks once one is registered
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array, requires_grad=False):
        """Fast internal constructor around an array we already own (no copy, no checks)."""
        tensor = cls.__new__(cls)
        tensor.data = array
        tensor.grad = None
        tensor.requires_grad = requires_grad
        tensor._ctx = None
        tensor._out_index = 0
        tensor._hooks = None
        return tensor

    @classmethod
    def from_array(cls, array, requires_grad=False):
        """A leaf Tensor over a NumPy or CuPy array, without copying it: the two share memory.

        The public no-copy constructor. The device is where the array lives and the dtype is kept
        as it is (no float32 conversion). Writes through either are seen by both: an optimizer step
        on the tensor changes the array, and changing the array changes the next forward's result.
        ``Tensor(array)`` copies instead. ``tinygrad_tx.from_numpy`` is the NumPy-only spelling.
        """
        if not isinstance(array, backend.ARRAY_TYPES) and type(array).__module__.split(".")[0] == "cupy":
            backend.array_module("gpu")  # a CuPy array made before the engine loaded CuPy
        if not isinstance(array, backend.ARRAY_TYPES):
            raise DTypeError(
                f"Tensor.from_array: expected a NumPy or CuPy array, got {type(array).__name__} "
                "(Tensor(data) copies any array-like)"
            )
        if array.dtype.kind not in "biufc":
            raise DTypeError(f"Tensor.from_array: data must be numbers or booleans, got dtype {array.dtype}")
        tensor = cls._wrap(array)
        if requires_grad:
            tensor.requires_grad_(True)
        return tensor

    # ------------------------------------------------------------------ plain properties
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return int(self.data.size)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def grad_fn(self):
        """Name of the op that made this tensor (None for leaves)."""
        return None if self._ctx is None else self._ctx.function.__name__

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def numpy(self):
        """A NumPy ndarray of the values (copied from the GPU when needed)."""
        return backend.to_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise ShapeError(f"item: only a one-element tensor converts to a Python number, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device):
        """This tensor on ``device`` ('cpu' | 'gpu'); a new leaf unless it is already there."""
        device = backend.normalize_device(device)
        if device == self.device:
            return self
        moved = Tensor._wrap(backend.as_array(self.data, device), self.requires_grad)
        if self.grad is not None:
            moved.grad = self.grad.to(device)
        return moved

    def detach(self):
        """Same data, cut from the graph (no gradient flows through it)."""
        return Tensor._wrap(self.data)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind not in "fc":
            raise DTypeError(f"requires_grad: only float tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self):
        self.grad = None

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep theirs)."""
        if self._ctx is not None:
            self._ctx.retained[self._out_index] = weakref.ref(self)
        return self

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", precision=4, threshold=64, prefix="Tensor(")
        extras = [f"dtype={self.data.dtype}", f"device='{self.device}'"]
        if self._ctx is not None:
            extras.append(f"grad_fn={self.grad_fn}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"Tensor({body}, {', '.join(extras)})"

    # ------------------------------------------------------------------ hooks
    def register_hook(self, hook):
        """Call ``hook(grad)`` with this tensor's gradient during every backward that reaches it.

        ``grad`` is the full gradient (every contribution summed), as a Tensor; the hook returns None
        to leave it as it is, or a replacement of the same shape (do not change ``grad`` in place).
        On a leaf the hook runs before the gradient is added to ``.grad``; on an intermediate, the
        replacement is what flows on to the op's inputs. Several hooks run in the order registered.
        Returns a handle whose ``.remove()`` unregisters the hook. As ``torch.Tensor.register_hook``.
        """
        if not self.requires_grad:
            raise GraphError("register_hook: this tensor does not require grad, so no gradient will reach a hook")
        if self._ctx is None:
            hooks = self._leaf_hooks().grad
        else:
            if self._ctx.hooks is None:
                self._ctx.hooks = {}
            hooks = self._ctx.hooks.setdefault(self._out_index, [])
        hooks.append(hook)
        return RemovableHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` on this leaf once its ``.grad`` holds the final sum of a backward.

        Called once per backward that reaches the leaf, after the last op using it has contributed
        (a weight used twice, like GPT's tied embedding, after its second use). Data-parallel training
        starts sending a gradient then, while the rest of backward still runs. Leaves only; returns a
        handle with ``.remove()``. As ``torch.Tensor.register_post_accumulate_grad_hook``.
        """
        if not self.requires_grad:
            raise GraphError(
                "register_post_accumulate_grad_hook: this tensor does not require grad, so it never gets a .grad"
            )
        if self._ctx is not None:
            raise GraphError(
                f"register_post_accumulate_grad_hook: only leaf tensors accumulate a .grad, and this one was "
                f"made by {self.grad_fn} (use register_hook on an intermediate)"
            )
        hooks = self._leaf_hooks().post
        hooks.append(hook)
        return RemovableHandle(hooks, hook)

    def _leaf_hooks(self):
        if self._hooks is None:
            self._hooks = _LeafHooks()
        return self._hooks

    # ------------------------------------------------------------------ reverse mode
    def backward(self, gradient=None, retain_graph=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` that requires grad.

        ``gradient`` is the upstream gradient (same shape as self); it may be omitted only for a
        one-element tensor. The graph's saved arrays are freed afterwards unless ``retain_graph``.
        Tensor hooks (``register_hook``, ``register_post_accumulate_grad_hook``) run along the way.
        """
        if not self.requires_grad:
            raise GraphError(
                "backward: this tensor does not require grad (no input had requires_grad=True, "
                "or it was computed under no_grad)"
            )
        xp = backend.xp_of(self.data)
        if gradient is None:
            if self.data.size != 1:
                raise GraphError(
                    f"backward: a gradient is needed for a non-scalar output of shape {self.shape}; "
                    "call .backward(gradient) with a tensor of that shape, or reduce it (e.g. .sum()) first"
                )
            grad = xp.ones_like(self.data)
        else:
            grad = gradient.data if isinstance(gradient, Tensor) else gradient
            grad = backend.as_array(grad, self.device, self.data.dtype)
            if grad.shape != self.data.shape:
                raise ShapeError(
                    f"backward: gradient shape {tuple(grad.shape)} does not match tensor shape {self.shape}"
                )
        walk = _Walk(retain_graph=bool(retain_graph))
        if self._ctx is None:
            walk.leaf_uses = {id(self): 1} if self._hooks else {}
            walk.to_leaf(self, grad)
            walk.used((self,))
            return
        if self._ctx.released:
            raise GraphError(_FREED_MESSAGE)
        self._ctx.pending[self._out_index] = grad
        order = _topological_order(self._ctx, walk.leaf_uses)
        for node in reversed(order):
            inputs = node.inputs  # release() drops them
            walk.run_backward(node)
            if walk.leaf_uses:
                walk.used(inputs)


class RemovableHandle:
    """What ``register_hook`` returns: ``.remove()`` unregisters the hook (a second call does nothing)."""

    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        for index, hook in enumerate(self._hooks):
            if hook is self._hook:
                del self._hooks[index]
                return

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


class _LeafHooks:
    """A leaf's hooks: ``grad`` ones see (and may replace) its gradient, ``post`` ones its final ``.grad``."""

    __slots__ = ("grad", "post")

    def __init__(self):
        self.grad, self.post = [], []

    def __bool__(self):
        return bool(self.grad or self.post)


_FREED_MESSAGE = (
    "backward: the graph was already freed by a previous backward(); "
    "pass retain_graph=True to the first backward() to run it twice"
)


class _Walk:
    """One backward pass: the reverse topological walk, and where gradients wait on their way to leaves.

    Each op's backward runs once, on its outputs' summed gradients (``Context.pending``), and adds its
    input gradients to the pending sums of the ops that made those inputs, or to leaves' ``.grad``.
    A leaf with hooks instead collects its contributions here until the last op using it has run
    (``leaf_uses`` counts them down), then goes through its hooks once. Gradients are raw arrays;
    a later ``create_graph`` would carry recorded Tensors through the same steps.
    """

    def __init__(self, retain_graph):
        self.retain_graph = retain_graph
        self.leaf_uses = {}  # id(hooked leaf) -> ops still to run that take it as an input
        self.leaf_pending = {}  # id(hooked leaf) -> [summed gradient so far, whether we own that array]

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
                tensor.grad = Tensor._wrap(grads_out[index].copy())
        if len(grads_out) > 1:  # a multi-output op gets zeros for the outputs nobody used
            xp = backend.xp_of(next(g for g in grads_out if g is not None))
            grads_out = [
                g if g is not None else xp.zeros(shape, dtype) for g, (shape, dtype) in zip(grads_out, node.out_meta)
            ]
        name = node.function.__name__
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
                anomaly.check_finite(grad, name, "backward", node.call_site, "gradient of an input")
            if tensor._ctx is None:
                self.to_leaf(tensor, grad)
            else:
                _accumulate_pending(tensor._ctx, tensor._out_index, grad)
        if not self.retain_graph:
            node.release()

    def to_leaf(self, tensor, grad):
        """A gradient for a leaf: into ``.grad`` at once, or, for a hooked leaf, into its sum so far."""
        if id(tensor) not in self.leaf_uses:
            _accumulate_leaf(tensor, grad)
            return
        waiting = self.leaf_pending.get(id(tensor))
        if waiting is None:
            self.leaf_pending[id(tensor)] = [grad, False]
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
            if hooks.grad:
                grad = _run_grad_hooks(hooks.grad, grad)
            _accumulate_leaf(tensor, grad)
            for hook in list(hooks.post):
                hook(tensor)


def _topological_order(root, leaf_uses=None):
    """Contexts reachable from ``root``, inputs before outputs (iterative depth-first search).

    With ``leaf_uses`` (a dict), also counts into it how many of those ops take each leaf with hooks."""
    order, visited = [], set()
    stack = [(root, False)]
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
            elif tensor._hooks and leaf_uses is not None:
                leaf_uses[id(tensor)] = leaf_uses.get(id(tensor), 0) + 1
    return order


def _run_grad_hooks(hooks, grad):
    """``grad`` through ``hooks`` in order, each seeing the previous one's replacement."""
    for hook in list(hooks):
        result = hook(Tensor._wrap(grad))
        if result is None:
            continue
        replacement = result.data if isinstance(result, Tensor) else result
        replacement = backend.as_array(replacement, backend.device_of(grad), grad.dtype)
        if replacement.shape != grad.shape:
            raise ShapeError(
                f"register_hook: hook {getattr(hook, '__name__', hook)!r} returned a gradient of shape "
                f"{tuple(replacement.shape)} for a tensor of shape {tuple(grad.shape)}; return None or the same shape"
            )
        grad = replacement
    return grad


def _accumulate_pending(node, index, grad):
    """Sum gradients flowing into one output; the first is kept by reference, never written in place."""
    current = node.pending[index]
    if current is None:
        node.pending[index] = grad
    elif node.owned[index]:
        current += grad
    else:
        node.pending[index] = current + grad
        node.owned[index] = True


def _accumulate_leaf(tensor, grad):
    """Leaves own their gradient array: copied on first arrival, summed in place afterwards."""
    if tensor.grad is None:
        tensor.grad = Tensor._wrap(grad.copy())
    else:
        tensor.grad.data += grad
