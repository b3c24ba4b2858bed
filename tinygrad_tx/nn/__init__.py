"""Neural-network building blocks: fused functional ops (``functional``), modules and containers.

import tinygrad_tx.nn as nn
import tinygrad_tx.nn.functional as F
"""

from . import functional
from .layers import Dropout, Embedding, LayerNorm, Linear
from .module import Module, ModuleDict, ModuleList, Parameter, Sequential

__all__ = [
    "functional",
    "Module",
    "Parameter",
    "ModuleList",
    "ModuleDict",
    "Sequential",
    "Linear",
    "Embedding",
    "LayerNorm",
    "Dropout",
]
