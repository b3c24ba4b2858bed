"""The differential fuzzer: every public op of tinygrad_tx against PyTorch on hypothesis-drawn hard inputs.

- core.py: the machinery (inputs in odd layouts as ``Leaf``s, one case run on both engines, ``fuzz``);
- specs.py: the one table ``SPECS`` (public name -> Spec) and ``NOT_OPS`` (public names that are not ops),
  joined from specs_ops.py (elementwise and reductions), specs_movement.py and specs_nn.py (nn.functional).

tests/ops/test_fuzz.py runs the table under a time budget; ``python -m bench.fuzz`` sweeps it for minutes.
"""
