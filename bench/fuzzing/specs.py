"""The fuzzer's one table: every public op of tinygrad_tx, Tensor and nn.functional, with its PyTorch twin.

``SPECS`` maps a public name to its Spec (bench/fuzzing/core.py). ``NOT_OPS`` names the public
callables that are not ops (accessors, graph and mode controls) with the reason they have no spec;
tests/ops/test_fuzz.py fails when a public name is in neither, so a new op cannot go unfuzzed.
"""

import inspect

import tinygrad_tx
import tinygrad_tx.nn.functional as F
from tinygrad_tx import Tensor

from .specs_additions import SPECS as ADDITIONS
from .specs_movement import SPECS as MOVEMENT
from .specs_nn import SPECS as FUNCTIONAL
from .specs_ops import SPECS as ELEMENTWISE

SPECS = {spec.name: spec for spec in ELEMENTWISE + MOVEMENT + FUNCTIONAL + ADDITIONS}

_ACCESSOR = "reads the tensor or its metadata; no computation to compare"
_GRAPH = "graph or mode control, tested in tests/engine/test_tensor.py / test_modes.py"
NOT_OPS = {
    **{
        f"Tensor.{name}": _ACCESSOR
        for name in (
            "shape",
            "ndim",
            "size",
            "dtype",
            "device",
            "is_leaf",
            "grad_fn",
            "numpy",
            "item",
            "tolist",
            "to",
            "data",
            "grad",
            "requires_grad",
        )
    },
    **{f"Tensor.{name}": _GRAPH for name in ("backward", "detach", "requires_grad_", "zero_grad", "retain_grad")},
    **{
        f"Tensor.{name}": "graph machinery: hooks on gradients, no computation (tests/engine/test_hooks.py)"
        for name in ("register_hook", "register_post_accumulate_grad_hook")
    },
    **{f"tinygrad_tx.{name}": _GRAPH for name in ("no_grad", "enable_grad", "is_grad_enabled", "detect_anomaly")},
    "Tensor.array_module": "NumPy's function names over Tensor ops (what xp_of gives for a Tensor); no op of its own",
    "tinygrad_tx.grad": (
        "gradients without .grad (tests/engine/test_grad.py; second order: tests/ops/test_fuzz_second_order.py)"
    ),
    "tinygrad_tx.once_differentiable": "marks an array-only backward (tests/engine/test_double_backward.py)",
    "tinygrad_tx.gradgradcheck": "the finite-difference checker of second derivatives (tests/engine/test_gradcheck.py)",
    "tinygrad_tx.gradcheck": "the finite-difference checker itself (tests/engine/test_gradcheck.py)",
    "tinygrad_tx.gradcheck_directional": "the finite-difference checker itself (tests/engine/test_gradcheck.py)",
    "tinygrad_tx.manual_seed": "seeds the generators (tests/nn/test_nn.py)",
    "tinygrad_tx.gpu_available": "reports the device (tests/engine/test_tensor.py)",
    "F.set_default_impl": "picks fused or composed; every spec draws impl per call (tests/engine/test_modes.py)",
    "F.get_default_impl": "reads the default impl (tests/engine/test_modes.py)",
    **{
        f"tinygrad_tx.{name}": "a factory: builds a tensor from plain arguments, nothing to differentiate "
        "(tests/engine/test_public_api.py)"
        for name in ("arange", "zeros", "ones", "full", "tril", "randn", "from_numpy")
    },
    "Tensor.from_array": "the no-copy constructor (tests/engine/test_public_api.py)",
    **{
        f"tinygrad_tx.{name}": "device, generator or process control, no computation (tests/engine/test_backend.py)"
        for name in (
            "rng",
            "get_rng_state",
            "set_rng_state",
            "synchronize",
            "normalize_device",
            "require_device",
            "tune_for_training",
        )
    },
    **{
        f"tinygrad_tx.{name}": "weights to and from a file (tests/engine/test_serialization.py)"
        for name in ("save_safetensors", "load_safetensors")
    },
}


def public_names():
    """Every public op-like name: Tensor's public attributes and the operators tinygrad_tx.ops attaches,
    tinygrad_tx's top-level functions, and nn.functional's functions."""
    names = set()
    for name in dir(Tensor):
        attribute = inspect.getattr_static(Tensor, name)
        function = attribute.fget if isinstance(attribute, property) else attribute
        module = getattr(function, "__module__", "") or ""
        if not name.startswith("_") or (name.startswith("__") and module.startswith("tinygrad_tx.ops")):
            names.add(f"Tensor.{name}")
    for name in tinygrad_tx.__all__:
        value = getattr(tinygrad_tx, name)
        if (
            callable(value)
            and not (inspect.isclass(value) and issubclass(value, (Exception, Tensor)))
            and name not in ("Function", "Context")
        ):
            names.add(f"tinygrad_tx.{name}")
    for name, value in vars(F).items():
        if inspect.isfunction(value) and value.__module__ == F.__name__ and not name.startswith("_"):
            names.add(f"F.{name}")
    return names
