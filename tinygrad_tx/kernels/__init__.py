"""Kernels: the fused ops' implementations and the switches that pick among them.

- reference.py: each op as its derivation page's boxed formula (what a learner reads; docs/derivations
  quote it). Start here.
- cpu/: the same functions, fast on NumPy arrays: one file per op (cpu/layer_norm.py holds everything
  fast about layer norm: its NumPy path, its compiled loops, its team block functions).
- cuda/: the same functions on CuPy arrays: one file per op with its CUDA source and launcher.
- runtime/: the threads and native intrinsics under cpu/ (row blocks, the team, argument slots,
  OpenBLAS); it knows no op.
- dispatch.py: ``use("reference" | "fast")``, ``current()``, ``override(<kernel>=fn)`` and the
  ``pick(reference.<kernel>, array)`` every fused op calls.

Import order, bottom to top: reference and runtime <- cpu/*; reference <- cuda/*; both <- dispatch.
"""

from .dispatch import CHOICES, KERNEL_NAMES, KERNELS, current, override, pick, use

__all__ = ["CHOICES", "KERNELS", "KERNEL_NAMES", "current", "override", "pick", "use"]
