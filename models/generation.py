"""Token sampling and the key/value cache shared by the language models' ``generate``.

Sampling draws exactly one uniform number per sequence per new token from
``tinygrad_tx.backend.rng(device)``, so ``backend.manual_seed(s)`` makes generation reproducible, and
the cached and cache-free paths of ``GPT.generate`` consume the random stream identically (they
differ only by float rounding in the logits, which cannot move a draw unless it lands within ~1e-6 of
a boundary between two tokens' probability intervals).

``KVCache`` keeps, per layer, the keys and values of every position seen so far in arrays
preallocated to ``block_size`` positions, so a new token attends to the cached prefix and costs one
position's work instead of re-running the whole context. Absolute position embeddings make the
cached keys valid only while the window does not slide: see ``GPT.generate`` for what happens when
the cache is full.
"""
import numbers

import numpy as np

from tinygrad_tx import Tensor, backend, no_grad
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
    array = idx.data if isinstance(idx, Tensor) else backend.as_array(idx, device)
    if array.dtype.kind not in "iu":
        raise DTypeError(f"{op}: token ids must be integers, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[1] < 1:
        raise ShapeError(f"{op}: token ids must have shape (B, T) with T >= 1, got {tuple(array.shape)}")
    if backend.device_of(array) != device:
        array = backend.as_array(array, device)
    return Tensor._wrap(array)


def sample_next(logits, rng, temperature=1.0, top_k=None, top_p=None):
    """Draw one token per row of ``logits`` (B, V) (a raw array); returns int64 ids of shape (B, 1).

    The logits are divided by ``temperature``; ``top_k`` keeps the k largest (ties at the k-th value
    included, as nanoGPT); ``top_p`` then keeps the smallest set of most probable tokens whose total
    probability reaches ``top_p`` (nucleus sampling). The draw is by inverting the cumulative
    distribution with one uniform number per row.
    """
    xp = backend.xp_of(logits)
    vocab = logits.shape[-1]
    scores = logits.astype(xp.float64) / temperature  # float64 so the cumulative sums stay exact enough
    if top_k is not None and top_k < vocab:
        kth_largest = xp.partition(scores, vocab - top_k, axis=-1)[:, vocab - top_k:vocab - top_k + 1]
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
    uniform = rng.random((logits.shape[0], 1))
    # the token whose interval [cdf[i-1], cdf[i]) holds the draw; empty intervals (probability 0) are skipped
    return (cumulative <= uniform).sum(axis=-1, keepdims=True).astype(np.int64)


def iter_tokens(next_logits, idx, max_new_tokens, device, temperature, top_k, top_p, op):
    """The sampling loop of every model: ``next_logits(tokens)`` maps the int array (B, T) so far to the
    next position's logits (B, V). Returns an iterator over the new tokens, each an int array (B, 1)
    yielded as soon as it is drawn; bad arguments raise here, before the first draw."""
    check_sampling_args(temperature, top_k, top_p)
    return _sampling_loop(next_logits, as_token_ids(idx, device, op).data, max_new_tokens, device,
                          temperature, top_k, top_p)


def _sampling_loop(next_logits, tokens, max_new_tokens, device, temperature, top_k, top_p):
    xp, generator = backend.array_module(device), backend.rng(device)
    for _ in range(max_new_tokens):
        with no_grad():
            next_token = sample_next(next_logits(tokens), generator, temperature, top_k, top_p).astype(tokens.dtype)
        tokens = xp.concatenate([tokens, next_token], axis=1)
        yield next_token


def generate_tokens(next_logits, idx, max_new_tokens, device, temperature, top_k, top_p, op):
    """``iter_tokens`` run to the end: an int Tensor (B, T + max_new_tokens)."""
    tokens = as_token_ids(idx, device, op).data
    new = list(iter_tokens(next_logits, tokens, max_new_tokens, device, temperature, top_k, top_p, op))
    if not new:
        return Tensor._wrap(tokens.copy())
    return Tensor._wrap(backend.array_module(device).concatenate([tokens] + new, axis=1))


class LayerCache:
    """One layer's keys and values (B, H, max_len, D), filled left to right."""

    def __init__(self, max_len):
        self.max_len = max_len
        self.length = 0
        self.keys = self.values = None

    def append(self, keys, values):
        """Store (B, H, T, D) keys and values after the cached ones; return all of them as Tensors."""
        start, end = self.length, self.length + keys.shape[2]
        if end > self.max_len:
            raise ShapeError(f"KVCache: {end} positions do not fit a cache of {self.max_len} (block_size)")
        if self.keys is None:
            xp = backend.xp_of(keys.data)
            batch, heads, _, head_dim = keys.shape
            self.keys = xp.empty((batch, heads, self.max_len, head_dim), keys.dtype)
            self.values = xp.empty_like(self.keys)
        self.keys[:, :, start:end] = keys.data
        self.values[:, :, start:end] = values.data
        self.length = end
        return Tensor._wrap(self.keys[:, :, :end]), Tensor._wrap(self.values[:, :, :end])


class KVCache:
    """The per-layer caches of a whole model; ``length`` is the number of positions already cached."""

    def __init__(self, n_layer, max_len):
        self.layers = [LayerCache(max_len) for _ in range(n_layer)]
        self.max_len = max_len

    @property
    def length(self):
        return self.layers[0].length
