"""The transformer block: a pre-norm residual pair of attention and a feed-forward MLP.

``Block(config)`` computes ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))`` with nanoGPT's parameter
names (ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj). ``FeedForward`` is the MLP:
expand 4x, a nonlinearity (GELU: the exact erf form by default, as nanoGPT; the tanh form, OpenAI GPT-2's
gelu_new, with gelu_approximate="tanh"; or ReLU as in "Let's build GPT"), project back, dropout.
"""

import tinygrad_tx.nn.functional as F
from tinygrad_tx.errors import TinygradTxError
from tinygrad_tx.nn import Dropout, LayerNorm, Linear, Module

from .attention import CausalSelfAttention

ACTIVATIONS = ("gelu", "relu")


class FeedForward(Module):
    """(B, T, n_embd) -> Linear to 4 n_embd -> GELU or ReLU -> Linear back -> dropout."""

    def __init__(self, n_embd, dropout=0.0, bias=True, activation="gelu", gelu_approximate="none"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise TinygradTxError(f"FeedForward: activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.c_fc = Linear(n_embd, 4 * n_embd, bias=bias)
        self.c_proj = Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = Dropout(dropout)
        self.activation = activation
        self.gelu_approximate = gelu_approximate

    def forward(self, x):
        hidden = self.c_fc(x)
        hidden = F.gelu(hidden, approximate=self.gelu_approximate) if self.activation == "gelu" else F.relu(hidden)
        return self.dropout(self.c_proj(hidden))


class Block(Module):
    """One pre-norm transformer block over (B, T, n_embd); ``causal=False`` for an encoder block."""

    def __init__(self, config, causal=True):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, causal=causal)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = FeedForward(config.n_embd, config.dropout, config.bias, "gelu", config.gelu_approximate)

    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln_1(x), kv_cache=kv_cache)
        return x + self.mlp(self.ln_2(x))
