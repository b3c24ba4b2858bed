"""Self-attention, twice: the per-head modules taught in "Let's build GPT", and nanoGPT's batched one.

- ``Head`` / ``MultiHeadAttention``: one module per head (key, query, value Linears without bias,
  a causal tril mask, scale ``head_size ** -0.5``), head outputs concatenated, then projected. Built
  from primitives so every step of attention is visible in the graph; slow (a Python loop over heads).
- ``CausalSelfAttention``: nanoGPT's layer. One ``c_attn`` Linear makes q, k and v for all heads in
  one GEMM, the heads are a batch axis, and the fused ``F.scaled_dot_product_attention`` does the
  rest; ``c_proj`` projects back. ``causal=False`` gives plain (encoder) self-attention. An optional
  ``kv_cache`` (``models.generation.LayerCache``) lets generation process only the new positions.
"""
import tinygrad_tx.nn.functional as F
from tinygrad_tx import concatenate
from tinygrad_tx.backend import xp_of
from tinygrad_tx.errors import ShapeError
from tinygrad_tx.nn import Dropout, Linear, Module, ModuleList


class Head(Module):
    """One head of causal self-attention: (B, T, n_embd) -> (B, T, head_size)."""

    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__()
        self.key = Linear(n_embd, head_size, bias=False)
        self.query = Linear(n_embd, head_size, bias=False)
        self.value = Linear(n_embd, head_size, bias=False)
        self.dropout = Dropout(dropout)
        self.block_size = block_size

    def forward(self, x):
        batch, time, _ = x.shape
        if time > self.block_size:
            raise ShapeError(f"Head: sequence length {time} exceeds block_size {self.block_size}")
        k, q, v = self.key(x), self.query(x), self.value(x)
        scores = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5
        xp = xp_of(x.data)
        future = ~xp.tril(xp.ones((time, time), dtype=bool))  # position t may not look at t' > t
        weights = F.softmax(scores.masked_fill(future, float("-inf")), axis=-1)
        return self.dropout(weights) @ v


class MultiHeadAttention(Module):
    """``n_head`` Heads side by side, outputs concatenated then projected back to n_embd."""

    def __init__(self, n_embd, n_head, head_size, block_size, dropout=0.0):
        super().__init__()
        self.heads = ModuleList([Head(n_embd, head_size, block_size, dropout) for _ in range(n_head)])
        self.proj = Linear(head_size * n_head, n_embd)
        self.dropout = Dropout(dropout)

    def forward(self, x):
        out = concatenate([head(x) for head in self.heads], axis=-1)
        return self.dropout(self.proj(out))


class CausalSelfAttention(Module):
    """nanoGPT's attention layer over (B, T, C), all heads at once; parameter names as nanoGPT."""

    def __init__(self, config, causal=True):
        super().__init__()
        if config.n_embd % config.n_head != 0:
            raise ShapeError(f"CausalSelfAttention: n_embd {config.n_embd} is not divisible by n_head {config.n_head}")
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = Dropout(config.dropout)  # its p is handed to the fused attention op
        self.resid_dropout = Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.causal = causal

    def forward(self, x, kv_cache=None):
        """With ``kv_cache``, x holds only the new positions; their keys and values join the cache and
        the queries attend to every cached position (causal mask aligned bottom-right)."""
        batch, time, channels = x.shape
        heads, head_dim = self.n_head, channels // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, axis=2)
        q, k, v = (t.reshape(batch, time, heads, head_dim).transpose(1, 2) for t in (q, k, v))
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)
        dropout_p = self.attn_dropout.p if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, causal=self.causal, dropout_p=dropout_p)
        y = y.transpose(1, 2).reshape(batch, time, channels)
        return self.resid_dropout(self.c_proj(y))
