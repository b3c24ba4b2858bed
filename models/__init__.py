"""Language models built only on tinygrad_tx: the bigram baseline, the "Let's build GPT" attention
modules, nanoGPT's GPT (parameter names and layouts identical, so weights move both ways), and a small
encoder-decoder with cross-attention.
"""

from typing import TYPE_CHECKING, Any

from .attention import CausalSelfAttention, Head, MultiHeadAttention
from .bigram import BigramLanguageModel
from .block import Block, FeedForward
from .generation import KVCache
from .gpt import GPT, GPTConfig

if TYPE_CHECKING:
    from .encoder_decoder import CrossAttention, DecoderBlock, EncoderBlock, EncoderDecoder

_ENCODER_DECODER = ("CrossAttention", "EncoderBlock", "DecoderBlock", "EncoderDecoder")


def __getattr__(name: str) -> Any:
    """models.encoder_decoder is also a program (python -m models.encoder_decoder), so it is imported on first use:
    imported here eagerly, runpy found it already in sys.modules and printed a RuntimeWarning."""
    if name in _ENCODER_DECODER:
        from . import encoder_decoder

        return getattr(encoder_decoder, name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")


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
