"""tinygrad_tx: a from-scratch reverse-mode autograd engine for learning backpropagation in transformers.

    from tinygrad_tx import Tensor, Function, no_grad, gradcheck

Importing it loads NumPy only and changes no process-wide state; CuPy is imported when a GPU tensor
is first asked for, and programs that train call ``tune_for_training()`` for the allocator setting.
Everything in ``__all__`` is the public API that models/ and train/ are written against (enforced by
tests/engine/test_public_api.py); ``tinygrad_tx.backend`` is the engine's own plumbing.
"""

from . import autograd  # noqa: F401  (tinygrad_tx.autograd: vjp, jvp, hvp, jacobian, hessian)
from . import ops as _ops  # noqa: F401  (attaches the operators and methods to Tensor)
from .anomaly import detect_anomaly
from .backend import (
    get_rng_state,
    gpu_available,
    manual_seed,
    normalize_device,
    require_device,
    rng,
    set_rng_state,
    synchronize,
)
from .differentiable import once_differentiable
from .errors import (
    AnomalyError,
    DeviceError,
    DTypeError,
    GradcheckError,
    GraphError,
    IndexOutOfRangeError,
    ShapeError,
    TinygradTxError,
)
from .factories import arange, from_numpy, full, ones, randn, tril, zeros
from .function import Context, Function
from .gradcheck import gradcheck, gradcheck_directional, gradgradcheck
from .graph import grad
from .ops import concatenate, isfinite, isinf, isnan, maximum, minimum, split, stack, where
from .serialization import load_safetensors, save_safetensors
from .tensor import Tensor, enable_grad, is_grad_enabled, no_grad
from .tuning import tune_for_training

__version__ = "0.1.0"

__all__ = [
    "Tensor",
    "Function",
    "Context",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "gradcheck",
    "grad",
    "once_differentiable",
    "gradcheck_directional",
    "gradgradcheck",
    "detect_anomaly",
    "concatenate",
    "stack",
    "split",
    "where",
    "maximum",
    "minimum",
    "isnan",
    "isinf",
    "isfinite",
    "arange",
    "zeros",
    "ones",
    "full",
    "tril",
    "randn",
    "from_numpy",
    "manual_seed",
    "rng",
    "get_rng_state",
    "set_rng_state",
    "synchronize",
    "gpu_available",
    "normalize_device",
    "require_device",
    "tune_for_training",
    "save_safetensors",
    "load_safetensors",
    "TinygradTxError",
    "ShapeError",
    "DTypeError",
    "DeviceError",
    "GraphError",
    "GradcheckError",
    "AnomalyError",
    "IndexOutOfRangeError",
]
