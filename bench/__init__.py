"""Same-run comparisons of tinygrad_tx with PyTorch: speed and memory (docs/performance.md), and
whole training runs on the same random draws (docs/nanogpt_parity.md).

    python -m bench.train_step --config small|baby --device cpu|gpu   # one GPT training step
    python -m bench.ops                                               # per-op forward + backward
    python -m bench.gpt2                                              # GPT-2 124M forward and sampling
    python -m bench.nanogpt_parity --seed 1337                        # nanoGPT's run and ours, same draws

PyTorch is imported only here (and by the tests): nothing in the engine, models/ or train/ imports it.
"""
