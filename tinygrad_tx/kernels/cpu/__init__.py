"""The fused ops, fast on the CPU: one file per op, each holding everything fast about it.

Each op module has the same function names and signatures as kernels/reference.py, and the same
results up to float32 rounding (tests/kernels/test_kernels*.py prove it). Inside one file: the entry points
(NumPy ``out=`` chains), the op's compiled loops (numba, cached on disk), and its team block
functions with their launchers (runtime/team.py runs them once tune_for_training() started it).

- linear.py: linear_forward / linear_backward, and the team's GEMMs (``matmuls``)
- softmax.py: softmax and log-softmax (``softmax_into``, used by attention too)
- cross_entropy.py: cross-entropy over (N, C) logits
- layer_norm.py: layer norm, one compiled pass per row
- gelu.py: GELU and the fast float32 ``erf``
- dropout.py: dropout and its mask (``dropout_mask``, used by attention too)
- attention.py: attention's entry points and NumPy path; attention_heads.py: its per-head compiled
  loops, row loops and team blocks (split in two to keep each file under 400 lines)
- embedding.py: embedding's backward (one-hot matmul or sorted runs)
- adamw.py: the AdamW update, one compiled pass
- common.py: what several ops share (compile settings, float64 row sums, a vectorizable float32 exp,
  ``flat``, ``same_float_dtype``, ``row_dots``)

Importing this package imports numba (~0.3 s); kernels/dispatch.py imports it on the first fast
kernel call, so ``import tinygrad_tx`` stays light.
"""

from . import adamw, attention, attention_heads, cross_entropy, dropout, embedding, gelu, layer_norm, linear, softmax

OPS = (linear, softmax, cross_entropy, layer_norm, gelu, dropout, attention, embedding, adamw)


def warm_up() -> None:
    """Compile (or load from numba's on-disk cache) the loops for the float32 arrays training uses,
    so the first training step does not pay for it. ``tune_for_training()`` calls it."""
    for module in (gelu, layer_norm, adamw, attention_heads):
        module.warm_up()
