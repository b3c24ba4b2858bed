"""tinygrad_tx: a from-scratch reverse-mode autograd engine for learning backpropagation in transformers.

    from tinygrad_tx import Tensor, Function, no_grad, gradcheck

Importing it loads NumPy only; CuPy is imported when a GPU tensor is first asked for.
"""
from . import ops as _ops  # attaches the operators and methods to Tensor
from .anomaly import detect_anomaly
from .backend import gpu_available, manual_seed
from .errors import (AnomalyError, DeviceError, DTypeError, GradcheckError, GraphError, IndexOutOfRangeError,
                     ShapeError, TinygradTxError)
from .function import Context, Function
from .gradcheck import gradcheck, gradcheck_directional
from .ops import concatenate, maximum, split, stack, where
from .tensor import Tensor, enable_grad, is_grad_enabled, no_grad

__version__ = "0.1.0"

__all__ = ["Tensor", "Function", "Context", "no_grad", "enable_grad", "is_grad_enabled", "gradcheck",
           "gradcheck_directional", "detect_anomaly", "manual_seed", "gpu_available", "concatenate", "stack",
           "split", "where", "maximum", "TinygradTxError", "ShapeError", "DTypeError", "DeviceError",
           "GraphError", "GradcheckError", "AnomalyError", "IndexOutOfRangeError"]
