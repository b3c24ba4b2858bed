"""Module, Parameter and the containers: the bookkeeping that turns a model into named parameters.

Sub-modules and parameters register themselves by attribute assignment, as in PyTorch:

    class Net(Module):
        def __init__(self):
            super().__init__()
            self.fc = Linear(4, 3)          # registered as "fc"; its weight is "fc.weight"

A parameter assigned under two names (nanoGPT ties ``lm_head.weight`` to ``transformer.wte.weight``)
is one object: ``parameters()`` yields it once, ``state_dict()`` lists it under every name, and
``load_state_dict``/``to`` write into it in place, so the tie survives both.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np

from .. import backend
from ..errors import TinygradTxError
from ..tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
ModuleT = TypeVar("ModuleT", bound="Module")  # what train(), eval(), to() and apply() return: the module itself


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable (``requires_grad=True`` unless told otherwise).

    Built like ``Tensor(data)``: the data is copied, float data becomes float32 unless ``dtype`` says.
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, dtype: Any = None) -> None:
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model: override ``forward``; call the module to run it."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: a Module subclass must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ registration by assignment
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise TinygradTxError(
                f"{type(self).__name__}: call super().__init__() before assigning "
                f"{name!r} (Module.__init__ sets up parameter registration)"
            )
        params, modules = self._parameters, self._modules
        if isinstance(value, Parameter):
            self._forget(name, keep=params)
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name, keep=modules)
            modules[name] = value
        elif value is None and (name in params or name in modules):
            (params if name in params else modules)[name] = None  # an optional part, e.g. bias=False
        elif name in params and isinstance(value, Tensor):
            raise TinygradTxError(
                f"{type(self).__name__}: cannot assign a plain Tensor to parameter {name!r}; "
                "wrap it in Parameter(...) or assign None"
            )
        else:
            self._forget(name)
            object.__setattr__(self, name, value)

    def _forget(self, name, keep=None):
        """Drop ``name`` from the registries other than ``keep`` (whose entry, replaced, keeps its place)."""
        for registry in (self._parameters, self._modules, self.__dict__):
            if registry is not keep:
                registry.pop(name, None)

    def __getattr__(self, name: str) -> Any:  # only reached when ordinary lookup fails
        for registry in ("_parameters", "_modules"):
            entries = self.__dict__.get(registry, {})
            if name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        if name in self._parameters or name in self._modules:
            self._forget(name)
        else:
            object.__delattr__(self, name)

    # ------------------------------------------------------------------ walking the tree
    def named_children(self) -> Iterator[tuple[str, Module]]:
        return ((name, module) for name, module in self._modules.items() if module is not None)

    def children(self) -> Iterator[Module]:
        return (module for _, module in self.named_children())

    def named_modules(self, prefix="", remove_duplicate=True, _seen=None):
        """(dotted name, module) for this module and every descendant, parents first."""
        seen = set() if _seen is None else _seen
        if remove_duplicate:
            if id(self) in seen:
                return
            seen.add(id(self))
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name, remove_duplicate, seen)

    def modules(self) -> Iterator[Module]:
        return (module for _, module in self.named_modules())

    def named_parameters(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs; a shared parameter comes once, under its first name."""
        seen = set()
        for module_name, module in self.named_modules(prefix, remove_duplicate):
            for name, param in module._parameters.items():
                if param is None or (remove_duplicate and id(param) in seen):
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self) -> Iterator[Parameter]:
        return (param for _, param in self.named_parameters())

    def apply(self: ModuleT, fn: Callable[[Module], None]) -> ModuleT:
        """Call ``fn(module)`` on every descendant, then on this module (how models run custom init)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes, gradients, devices
    def train(self: ModuleT, mode: bool = True) -> ModuleT:
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self: ModuleT) -> ModuleT:
        return self.train(False)

    def zero_grad(self) -> None:
        for param in self.parameters():
            param.grad = None

    def to(self: ModuleT, device: str) -> ModuleT:
        """Move every parameter (and its gradient) to ``device`` in place; shared parameters stay shared."""
        device = backend.normalize_device(device)
        for param in self.parameters():
            param.data = backend.as_array(param.data, device)
            if param.grad is not None:
                param.grad.data = backend.as_array(param.grad.data, device)
        return self

    # ------------------------------------------------------------------ saving and loading
    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter name (shared ones under each name) -> a NumPy copy of its values."""
        return {
            name: np.array(backend.to_numpy(param.data), copy=True)
            for name, param in self.named_parameters(remove_duplicate=False)
        }

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy arrays into the existing parameters (casting dtype, keeping ties).

        Every missing, unexpected or mis-shaped key is reported in one TinygradTxError; missing and
        unexpected keys are allowed when ``strict=False`` (shapes must always match). Nothing is
        written unless everything checks out. Returns (missing_keys, unexpected_keys).
        """
        own = dict(self.named_parameters(remove_duplicate=False))
        missing = [name for name in own if name not in state_dict]
        unexpected = [name for name in state_dict if name not in own]
        mismatched = []
        for name, param in own.items():
            if name in state_dict:
                shape = tuple(np.shape(_array_of(state_dict[name])))
                if shape != param.shape:
                    mismatched.append(f"{name!r} expects {param.shape}, got {shape}")
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        if mismatched:
            problems.append(f"shape mismatch: {', '.join(mismatched)}")
        if problems:
            raise TinygradTxError(f"{type(self).__name__}.load_state_dict: {'; '.join(problems)}")
        for name, param in own.items():
            if name in state_dict:
                param.data[...] = backend.as_array(_array_of(state_dict[name]), param.device, param.dtype)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """The settings shown between the parentheses, e.g. ``in_features=4, out_features=3``."""
        return ""

    def __repr__(self):
        lines = [f"({name}): {_indent(repr(child))}" for name, child in self.named_children()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = ([extra] if extra else []) + lines
        return f"{type(self).__name__}(\n  " + "\n  ".join(body) + "\n)"


def _array_of(value):
    return value.data if isinstance(value, Tensor) else value


def _indent(text):
    return text.replace("\n", "\n  ")


# ---------------------------------------------------------------------------- containers
class ModuleList(Module):
    """A list of modules, registered under the names "0", "1", ... (as PyTorch's ``nn.ModuleList``)."""

    def __init__(self, modules=()):
        super().__init__()
        self.extend(modules)

    @classmethod
    def _of(cls, modules):
        return cls(modules)

    def append(self, module):
        if not isinstance(module, Module):
            raise TinygradTxError(f"{type(self).__name__}: can only hold Modules, got {type(module).__name__}")
        self._modules[str(len(self._modules))] = module
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def __getitem__(self, index):
        items = list(self._modules.values())
        if isinstance(index, slice):
            return type(self)._of(items[index])
        if not -len(items) <= index < len(items):
            raise IndexError(f"{type(self).__name__}: index {index} out of range for length {len(items)}")
        return items[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(ModuleList):
    """Modules applied one after the other: ``Sequential(a, b)(x) == b(a(x))``."""

    def __init__(self, *modules):
        super().__init__(modules)

    @classmethod
    def _of(cls, modules):
        return cls(*modules)

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


class ModuleDict(Module):
    """Named sub-modules, registered under their keys (nanoGPT's ``transformer = ModuleDict(wte=..., h=...)``)."""

    def __init__(self, modules=None):
        super().__init__()
        for name, module in dict(modules or {}).items():
            self[name] = module

    def __setitem__(self, name, module):
        if not isinstance(module, Module):
            raise TinygradTxError(f"{type(self).__name__}: can only hold Modules, got {type(module).__name__}")
        setattr(self, name, module)

    def __getitem__(self, name):
        return self._modules[name]

    def __contains__(self, name):
        return name in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()
