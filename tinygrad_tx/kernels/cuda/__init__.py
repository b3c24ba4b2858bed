"""The fused ops on CuPy arrays: one file per op holding its CUDA source, its launcher, and the
routing (same name and signature as kernels/reference.py) that sends an array to the kernel where
one applies and to the reference formula otherwise.

- softmax.py: softmax rows (log-softmax has no kernel: the reference runs)
- layer_norm.py: layer norm rows, forward and backward
- cross_entropy.py: the cross-entropy forward rows (its backward runs the reference)
- gelu.py: GELU, exact and tanh, forward and backward (elementwise, any float dtype)
- adamw.py: the AdamW update (elementwise, any float dtype)
- common.py: the device helpers every row kernel uses (``block_reduce``), the registry and the
  one-time compile (``kernels()``, ``row_source()``), ``launch``, ``rows``, ``fits_row_kernel``

The row kernels run one 256-thread block per row of a C-contiguous float32 (rows, cols) array and
reduce in shared memory. Dropout, attention, embedding and Linear run the reference (CuPy evaluates
it as it is). CuPy comes from ``tinygrad_tx.backend``; nothing compiles until a kernel first runs.
The import order below is the order of the row kernels in the one RawModule source.
"""

from . import softmax, layer_norm, cross_entropy, gelu, adamw  # noqa: I001  (registration order)
from .adamw import adamw_update
from .cross_entropy import cross_entropy_rows
from .gelu import gelu_backward_from_gate, gelu_with_gate
from .layer_norm import layer_norm_backward_rows, layer_norm_rows
from .softmax import softmax_backward_last_axis, softmax_last_axis

OPS = (softmax, layer_norm, cross_entropy, gelu, adamw)

__all__ = [
    "OPS",
    "adamw_update",
    "cross_entropy_rows",
    "gelu_backward_from_gate",
    "gelu_with_gate",
    "layer_norm_backward_rows",
    "layer_norm_rows",
    "softmax_backward_last_axis",
    "softmax_last_axis",
]
