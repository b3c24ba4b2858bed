"""Language models built only on tinygrad_tx: the bigram baseline, the "Let's build GPT" attention
modules, and nanoGPT's GPT (parameter names and layouts identical, so weights move both ways).
"""
from .attention import CausalSelfAttention, Head, MultiHeadAttention
from .bigram import BigramLanguageModel
from .block import Block, FeedForward
from .generation import KVCache
from .gpt import GPT, GPTConfig

__all__ = ["BigramLanguageModel", "Head", "MultiHeadAttention", "CausalSelfAttention", "FeedForward", "Block",
           "GPT", "GPTConfig", "KVCache"]
