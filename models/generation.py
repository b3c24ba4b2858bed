"""Token sampling and the key/value cache shared by the language models' ``generate``.

Sampling draws exactly one uniform number per sequence per new token from ``tinygrad_tx.rng(device)``,
so ``tinygrad_tx.manual_seed(s)`` makes generation reproducible, and the cached and cache-free paths
of ``GPT.generate`` consume the random stream identically (they differ only by float rounding in the
logits, which cannot move a draw unless it lands within ~1e-6 of a boundary between two tokens'
probability intervals).

``KVCache`` keeps, per layer, the keys and values of every position seen so far in arrays
preallocated to ``block_size`` positions, so a new token attends to the cached prefix and costs one
position's work instead of re-running the whole context. Absolute position embeddings make the
cached keys valid only while the window does not slide: see ``GPT.generate`` for what happens when
the cache is full.

Two public hooks here work on a Tensor's raw array (``.data``) rather than on Tensors, each saying
why in its docstring: ``sample_next`` and ``LayerCache.append`` (tests/engine/test_public_api.py lists them).
"""

import numbers

import numpy as np

from tinygrad_tx import Tensor, concatenate, from_numpy, no_grad, rng, zeros
from tinygrad_tx.backend import xp_of  # sample_next only: see its docstring
from tinygrad_tx.errors import DTypeError, ShapeError, TinygradTxError


def check_sampling_args(temperature, top_k, top_p):
    """Raise ``TinygradTxError`` for a temperature <= 0, a top_k < 1 or a top_p outside (0, 1]."""
    if not temperature > 0:
        raise TinygradTxError(f"generate: temperature must be > 0, got {temperature} (use top_k=1 for greedy decoding)")
    if top_k is not None and (not isinstance(top_k, numbers.Integral) or top_k < 1):
        raise TinygradTxError(f"generate: top_k must be an integer >= 1 or None, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise TinygradTxError(f"generate: top_p must be in (0, 1] or None, got {top_p!r}")


def as_token_ids(idx, device, op):
    """An int Tensor (B, T) on ``device`` from a Tensor, array or nested list of token ids."""
    if isinstance(idx, Tensor):
        tokens = idx
    elif isinstance(idx, np.ndarray):
        tokens = from_numpy(idx)  # no copy: token ids are only read
    else:
        tokens = Tensor(idx, device=device)
    if tokens.dtype.kind not in "iu":
        raise DTypeError(f"{op}: token ids must be integers, got dtype {tokens.dtype}")
    if tokens.ndim != 2 or tokens.shape[1] < 1:
        raise ShapeError(f"{op}: token ids must have shape (B, T) with T >= 1, got {tokens.shape}")
    return tokens.to(device)


def sample_next(logits, generator, temperature=1.0, top_k=None, top_p=None):
    """Draw one token per row of ``logits`` (B, V); returns int64 ids (B, 1) as an array of the logits' kind.

    ``logits`` is a Tensor or a raw NumPy/CuPy array and ``generator`` a seeded ``Generator`` of the same
    device (``tinygrad_tx.rng(device)``). A public hook on raw arrays: top-k, sorting and cumulative sums
    have no Tensor ops in the engine (nothing here needs a gradient), so it asks the array for its module.

    The logits are divided by ``temperature``; ``top_k`` keeps the k largest (ties at the k-th value
    included, as nanoGPT); ``top_p`` then keeps the smallest set of most probable tokens whose total
    probability reaches ``top_p`` (nucleus sampling). The draw is by inverting the cumulative
    distribution with one uniform number per row.
    """
    logits = logits.data if isinstance(logits, Tensor) else logits
    xp = xp_of(logits)
    vocab = logits.shape[-1]
    scores = logits.astype(xp.float64) / temperature  # float64 so the cumulative sums stay exact enough
    if top_k is not None and top_k < vocab:
        kth_largest = xp.partition(scores, vocab - top_k, axis=-1)[:, vocab - top_k : vocab - top_k + 1]
        scores = xp.where(scores < kth_largest, -xp.inf, scores)
    probs = xp.exp(scores - scores.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1:
        descending = xp.sort(probs, axis=-1)[:, ::-1]
        mass_before = xp.cumsum(descending, axis=-1) - descending
        kept = (mass_before < top_p).sum(axis=-1, keepdims=True)  # >= 1: the first token has nothing before it
        smallest_kept = xp.take_along_axis(descending, kept - 1, axis=-1)
        probs = xp.where(probs >= smallest_kept, probs, 0.0)
    cumulative = xp.cumsum(probs, axis=-1)
    cumulative /= cumulative[:, -1:]
    uniform = generator.random((logits.shape[0], 1))
    # the token whose interval [cdf[i-1], cdf[i]) holds the draw; empty intervals (probability 0) are skipped
    return (cumulative <= uniform).sum(axis=-1, keepdims=True).astype(np.int64)


def iter_tokens(next_logits, idx, max_new_tokens, device, temperature, top_k, top_p, op):
    """The sampling loop of every model: ``next_logits(tokens)`` maps the int Tensor (B, T) so far to the
    next position's logits (B, V). Returns an iterator over the new tokens, each a NumPy int array (B, 1)
    yielded as soon as it is drawn; bad arguments raise here, before the first draw."""
    check_sampling_args(temperature, top_k, top_p)
    tokens = as_token_ids(idx, device, op)
    return (token.numpy() for token in _sampling_loop(next_logits, tokens, max_new_tokens, temperature, top_k, top_p))


def _sampling_loop(next_logits, tokens, max_new_tokens, temperature, top_k, top_p):
    """Yield each new token as an int Tensor (B, 1) on the tokens' device."""
    generator = rng(tokens.device)
    for _ in range(max_new_tokens):
        with no_grad():
            drawn = sample_next(next_logits(tokens), generator, temperature, top_k, top_p)
            next_token = Tensor.from_array(drawn).astype(tokens.dtype)
            tokens = concatenate([tokens, next_token], axis=1)
        yield next_token


def generate_tokens(next_logits, idx, max_new_tokens, device, temperature, top_k, top_p, op):
    """The sampling loop run to the end: an int Tensor (B, T + max_new_tokens)."""
    check_sampling_args(temperature, top_k, top_p)
    tokens = as_token_ids(idx, device, op)
    new = list(_sampling_loop(next_logits, tokens, max_new_tokens, temperature, top_k, top_p))
    with no_grad():
        return concatenate([tokens] + new, axis=1) if new else Tensor(tokens)


class LayerCache:
    """One layer's keys and values (B, H, max_len, D), filled left to right."""

    def __init__(self, max_len):
        self.max_len = max_len
        self.length = 0
        self.keys = self.values = None

    def append(self, keys, values):
        """Store (B, H, T, D) keys and values after the cached ones; return all of them as Tensors.

        A public hook on raw arrays: it writes into its preallocated buffers in place (``.data``),
        which no Tensor op does (graph ops never write into an input), and hands out views of them
        with ``Tensor.from_array``. Generation runs under no_grad, so no graph sees the writes.
        """
        start, end = self.length, self.length + keys.shape[2]
        if end > self.max_len:
            raise ShapeError(f"KVCache: {end} positions do not fit a cache of {self.max_len} (block_size)")
        if self.keys is None:
            batch, heads, _, head_dim = keys.shape
            self.keys = zeros(batch, heads, self.max_len, head_dim, dtype=keys.dtype, device=keys.device).data
            self.values = zeros(batch, heads, self.max_len, head_dim, dtype=keys.dtype, device=keys.device).data
        self.keys[:, :, start:end] = keys.data
        self.values[:, :, start:end] = values.data
        self.length = end
        return Tensor.from_array(self.keys[:, :, :end]), Tensor.from_array(self.values[:, :, :end])


class KVCache:
    """The per-layer caches of a whole model; ``length`` is the number of positions already cached."""

    def __init__(self, n_layer, max_len):
        self.layers = [LayerCache(max_len) for _ in range(n_layer)]
        self.max_len = max_len

    @property
    def length(self):
        return self.layers[0].length
