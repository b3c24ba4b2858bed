"""Function: the one way an op enters the graph, for built-in ops and for users' own.

    class Cube(Function):
        @staticmethod
        def forward(ctx, x):                 # raw arrays in (NumPy or CuPy) ...
            ctx.save_for_backward(x)
            return x * x * x                 # ... raw array out
        @staticmethod
        def backward(ctx, grad_output):      # d(loss)/d(output), same shape as the output
            (x,) = ctx.saved_tensors
            return grad_output * 3 * x * x   # one gradient per forward argument (None allowed)

    y = Cube.apply(t)                        # Tensors in, Tensor out, graph recorded

Positional arguments that are Tensors reach ``forward`` as arrays; anything else (Python numbers,
axes) is passed through unchanged and gets ``None`` as its gradient. Keyword arguments go to
``forward`` only. ``ctx.needs_input_grad[i]`` says whether argument i needs a gradient, so forward
can skip saving what backward will not use. A forward that returns a tuple makes one Tensor per
element, and its backward then receives one gradient per output. See docs/experimenting.md.
"""

from __future__ import annotations

from typing import Any

from . import anomaly, backend
from . import tensor as _tensor_module
from .errors import DeviceError
from .tensor import Tensor


class Context:
    """What one op call remembers for its backward; also the graph node that links its inputs."""

    saved_outputs: tuple[tuple[int, int], ...] = ()  # (saved position, output index) of saved outputs

    def __init__(self, function: type[Function], needs_input_grad: tuple[bool, ...]) -> None:
        self.function = function
        self.needs_input_grad = needs_input_grad
        self.saved_tensors: tuple[Any, ...] = ()
        self.inputs: tuple[Tensor | None, ...] = ()
        self.pending: list[Any] = [None]  # summed gradients of the outputs, filled during backward
        self.owned = [False]  # whether each pending array is ours to update in place
        self.retained: dict[int, Any] = {}  # output index -> weakref of a tensor that asked retain_grad()
        self.hooks: dict[int, list[Any]] | None = None  # output index -> its tensor's register_hook functions
        self.out_meta: list[tuple[Any, Any]] | None = None  # (shape, dtype) per output, for multi-output ops
        self.call_site: str | None = None  # user file:line, recorded in anomaly mode
        self.released = False

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved_tensors = arrays

    def release(self) -> None:
        """Drop everything backward needed: saved arrays, user attributes and the links to inputs."""
        keep = ("function", "needs_input_grad", "pending", "owned", "retained", "hooks", "out_meta", "call_site")
        for name in [n for n in self.__dict__ if n not in keep]:
            delattr(self, name)
        self.saved_tensors = ()
        self.inputs = ()
        self.released = True


class Function:
    """Subclass with static ``forward(ctx, *arrays, **kwargs)`` and ``backward(ctx, grad_output)``."""

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a Function subclass must define forward(ctx, *arrays)")

    @staticmethod
    def backward(ctx: Context, *grad_outputs: Any) -> Any:
        raise NotImplementedError("a Function subclass must define backward(ctx, grad_output)")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Run forward on the arrays of the Tensor arguments and record the call in the graph."""
        arrays: list[Any] = []
        device: str | None = None
        needs_grad: list[bool] = []
        for arg in args:
            if isinstance(arg, Tensor):
                array = arg.data
                arg_device = backend.device_of(array)
                if device is None:
                    device = arg_device
                elif arg_device != device:
                    raise DeviceError(
                        f"{cls.__name__}: tensors on different devices ({device} and {arg_device}); "
                        f"move them with .to('{device}') first"
                    )
                arrays.append(array)
                needs_grad.append(arg.requires_grad)
            else:
                arrays.append(arg)
                needs_grad.append(False)
        record = any(needs_grad) and _tensor_module.is_grad_enabled()
        ctx = Context(cls, tuple(needs_grad) if record else (False,) * len(args))
        check = anomaly.is_anomaly_enabled()
        if check:
            ctx.call_site = anomaly.user_call_site()
        result = cls.forward(ctx, *arrays, **kwargs)
        results = result if isinstance(result, tuple) else (result,)
        outputs = []
        for array in results:
            if not isinstance(array, backend.ARRAY_TYPES):
                array = backend.xp_of(arrays[0] if arrays else array).asarray(array)
            if check:
                anomaly.check_finite(array, cls.__name__, "forward", ctx.call_site or "<unknown>", "output")
            # an integer or boolean output carries no gradient (as in PyTorch)
            outputs.append(Tensor._wrap(array, record and array.dtype.kind in "fc"))
        if record:
            ctx.inputs = tuple(arg if isinstance(arg, Tensor) and arg.requires_grad else None for arg in args)
            if len(outputs) > 1:
                ctx.pending = [None] * len(outputs)
                ctx.owned = [False] * len(outputs)
                ctx.out_meta = [(o.data.shape, o.data.dtype) for o in outputs]
            for index, out in enumerate(outputs):
                out._ctx = ctx
                out._out_index = index
            for position, item in enumerate(ctx.saved_tensors):  # create_graph hands these back as outputs
                for index, array in enumerate(results):
                    if item is array:
                        ctx.saved_outputs += ((position, index),)
        return tuple(outputs) if isinstance(result, tuple) else outputs[0]
