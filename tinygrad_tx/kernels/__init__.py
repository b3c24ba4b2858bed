"""Kernels: the fused ops' implementations and the one switch that picks among them.

- reference.py: each op as its derivation page's boxed formula (what a learner reads);
- cpu.py, cpu_elementwise.py: the same ops, fast (NumPy ``out=`` chains, and compiled loops from
  cpu_loops.py, over the row blocks of row_blocks.py on every core);
- cuda.py: the CUDA kernels, and cuda_fast.py, which routes CuPy arrays to them where they apply;
- dispatch.py: ``use("reference" | "fast")``, ``current()`` and the ``pick`` every fused op calls.
"""

from .dispatch import CHOICES, current, pick, use

__all__ = ["CHOICES", "current", "pick", "use"]
