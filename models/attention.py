"""Self-attention, twice: the per-head modules taught in "Let's build GPT", and nanoGPT's batched one.

- ``Head`` / ``MultiHeadAttention``: one module per head (key, query, value Linears without bias,
  a causal tril mask, scale ``head_size ** -0.5``), head outputs concatenated, then projected. Built
  from primitives so every step of attention is visible in the graph; slow (a Python loop over heads).
- ``CausalSelfAttention``: nanoGPT's layer. One ``c_attn`` Linear makes q, k and v for all heads in
  one GEMM, the heads are a batch axis, and the fused ``F.scaled_dot_product_attention`` does the
  rest; ``c_proj`` projects back. ``causal=False`` gives plain (encoder) self-attention. An optional
  ``kv_cache`` (``models.generation.LayerCache``) lets generation process only the new positions.

Every attention module can hand out its attention probabilities: inside ``record_attention(model)``
each one computes P = softmax(q k^T / sqrt(D), masked) as a Tensor, keeps it, and then computes its
output as dropout(P) @ v from that very P (without recording, the fused op never materialises P
outside itself). ``train/visualize.py`` draws them.
"""

import contextlib

import tinygrad_tx.nn.functional as F
from tinygrad_tx import concatenate, tril
from tinygrad_tx.errors import ShapeError
from tinygrad_tx.nn import Dropout, Linear, Module, ModuleList


def attention_probabilities(q, k, causal, attn_mask=None):
    """softmax(q k^T / sqrt(D)) over the keys for q (..., Tq, D) and k (..., Tk, D), masked as the fused op
    masks (``F.scaled_dot_product_attention``): causal aligned bottom-right, ``attn_mask`` True = may attend.
    A query whose keys are all masked gets all-zero probabilities."""
    queries, keys = q.shape[-2], k.shape[-2]
    scores = (q @ k.transpose(-2, -1)) * (1.0 / q.shape[-1] ** 0.5)
    if causal:
        scores = scores.masked_fill(~tril(queries, keys, keys - queries, dtype="bool", device=q.device), float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return F.softmax(scores, axis=-1)


class AttentionModule(Module):
    """Base of the modules that attend: ``keep_attention`` (set by ``record_attention``) makes ``forward``
    keep its probabilities in ``.attention``."""

    def __init__(self):
        super().__init__()
        self.keep_attention = False
        self.attention = None

    def attend(self, q, k, v, causal, dropout_p, attn_mask=None):
        """dropout(P) @ v: the fused op, or, while recording, P kept as ``.attention`` and used explicitly."""
        if not self.keep_attention:
            return F.scaled_dot_product_attention(q, k, v, causal=causal, dropout_p=dropout_p, attn_mask=attn_mask)
        self.attention = attention_probabilities(q, k, causal, attn_mask)
        return F.dropout(self.attention, dropout_p) @ v


@contextlib.contextmanager
def record_attention(model):
    """Record the attention probabilities of every attention module in ``model`` (itself included).

        with record_attention(model) as probabilities:
            model(idx)
        probabilities["transformer.h.0.attn"]     # (B, H, Tq, Tk) Tensor; (B, T, T) for a Head

    The dict, keyed by module name, is filled when the block ends, with each module's last forward.
    Recording costs memory and speed (P is materialised), so it is off outside the block.
    """
    modules = {name: module for name, module in model.named_modules() if isinstance(module, AttentionModule)}
    previous = {name: module.keep_attention for name, module in modules.items()}
    probabilities = {}
    for module in modules.values():
        module.keep_attention, module.attention = True, None
    try:
        yield probabilities
    finally:
        for name, module in modules.items():
            if module.attention is not None:
                probabilities[name] = module.attention
            module.keep_attention, module.attention = previous[name], None


class Head(AttentionModule):
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
        future = tril(time, time, device=x.device) == 0  # position t may not look at t' > t
        weights = F.softmax(scores.masked_fill(future, float("-inf")), axis=-1)
        if self.keep_attention:
            self.attention = weights
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


class CausalSelfAttention(AttentionModule):
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
        y = self.attend(q, k, v, self.causal, dropout_p)
        y = y.transpose(1, 2).reshape(batch, time, channels)
        return self.resid_dropout(self.c_proj(y))
