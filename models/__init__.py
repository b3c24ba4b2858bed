"""Language models built only on tinygrad_tx: the bigram baseline, the "Let's build GPT" attention
modules, nanoGPT's GPT (parameter names and layouts identical, so weights move both ways), and a small
encoder-decoder with cross-attention.
"""

from .attention import CausalSelfAttention, Head, MultiHeadAttention
from .bigram import BigramLanguageModel
from .block import Block, FeedForward
from .encoder_decoder import CrossAttention, DecoderBlock, EncoderBlock, EncoderDecoder
from .generation import KVCache
from .gpt import GPT, GPTConfig

__all__ = [
    "BigramLanguageModel",
    "Head",
    "MultiHeadAttention",
    "CausalSelfAttention",
    "FeedForward",
    "Block",
    "GPT",
    "GPTConfig",
    "KVCache",
    "CrossAttention",
    "EncoderBlock",
    "DecoderBlock",
    "EncoderDecoder",
]
