"""A tiny GPT to test with: 1 layer, 2 heads, 8 wide, 8 positions and 11 tokens unless told otherwise."""

from models.gpt import GPT, GPTConfig
from tinygrad_tx import backend

TINY = dict(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8)


def tiny_gpt(seed=None, **overrides):
    """``GPT(GPTConfig(**TINY, **overrides))``, its weights drawn after ``manual_seed(seed)`` when a seed is given."""
    if seed is not None:
        backend.manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, **overrides}))
