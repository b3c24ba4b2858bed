"""Same-run performance comparisons of tinygrad_tx with PyTorch eager (see docs/performance.md).

    python -m bench.train_step --config small|baby --device cpu|gpu   # one GPT training step
    python -m bench.ops                                               # per-op forward + backward

PyTorch is imported only here, in the reference model and in the worker processes that time it.
"""
