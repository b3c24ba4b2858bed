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

from . import backend
from .errors import DTypeError, GraphError, ShapeError
from .scoped import ScopedSetting

_grad_mode = ScopedSetting("grad mode", True)
_walk = None  # graph.backward, the walk behind Tensor.backward (graph.py, a layer above, sets it)


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
    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` that requires grad.

        ``gradient`` is the upstream gradient (same shape as self); it may be omitted only for a
        one-element tensor. The graph's saved arrays are freed afterwards unless ``retain_graph``
        (which defaults to ``create_graph``). With ``create_graph=True`` the backward is itself
        recorded: gradients are Tensors with a graph, so they can be differentiated again
        (docs/derivations/second_order.md). Tensor hooks (``register_hook``,
        ``register_post_accumulate_grad_hook``) run along the way. As ``torch.Tensor.backward``.
        """
        _walk((self,), (gradient,), retain_graph, create_graph)


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
