"""Tokenizers: text <-> lists of integer ids, saved as JSON.

    tok = CharTokenizer.from_text(text)          # one id per distinct character (sorted)
    tok = BPETokenizer.train(text, vocab_size=512)  # byte-level BPE, like GPT-2's but trained here
    ids = tok.encode("To be"); tok.decode(ids) == "To be"
    tok.save("tok.json"); Tokenizer.load("tok.json")   # gives back the right subclass
    tok = GPT2Tokenizer.from_pretrained("gpt2")  # OpenAI GPT-2's own (train/gpt2_tokenizer.py)

Byte-level BPE in brief: every string is UTF-8 bytes, so ids 0..255 are the 256 bytes and any
text at all is encodable (characters never seen in training fall back to their bytes). Training
repeatedly merges the most frequent adjacent pair of ids into a new id; encoding replays those
merges, earliest-learned first. Text is first cut into chunks (words with their leading space,
number runs, punctuation runs, whitespace) so that no merge spans two words.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections import Counter

from tinygrad_tx.errors import TinygradTxError

# GPT-2 pre-splits with the `regex` package:
#     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# The stdlib `re` has no \p{..} classes, so letters are [^\W\d_] (word characters minus decimal
# digits and "_") and numbers are \d (decimal digits only). Differences from GPT-2: non-decimal
# numerals (², ½, Ⅻ) count as letters here, not numbers; and `re`'s \s also matches the control
# characters \x1c-\x1f. On English text such as Tiny Shakespeare the two patterns split identically.
# Every character falls in exactly one class, so the chunks always join back to the input.
GPT2_LIKE_SPLIT = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""

BYTE_VOCAB = 256
_ENCODE_CACHE_LIMIT = 200_000  # distinct chunks remembered by BPETokenizer.encode


class Tokenizer:
    """Base class: ``encode(str) -> list[int]``, ``decode(list[int]) -> str``, ``vocab_size``, JSON save/load.

    A subclass sets ``kind`` (the "type" written to JSON) and implements ``encode``, ``decode``,
    ``vocab_size``, ``to_dict`` and ``_from_state`` (the inverse of ``to_dict``).
    """

    kind: str | None = None
    _kinds: dict[str, type[Tokenizer]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Tokenizer._kinds[cls.kind] = cls

    @property
    def vocab_size(self):
        raise NotImplementedError

    def encode(self, text):
        raise NotImplementedError

    def decode(self, ids):
        raise NotImplementedError

    def to_dict(self):
        """The tokenizer as plain JSON-able values (checkpoints embed this)."""
        raise NotImplementedError

    @staticmethod
    def from_dict(state):
        """Rebuild any tokenizer from ``to_dict()``'s output; its "type" picks the subclass."""
        import train.gpt2_tokenizer  # noqa: F401  (registers GPT2Tokenizer, which imports this module)

        kind = state.get("type") if isinstance(state, dict) else None
        if kind not in Tokenizer._kinds:
            raise TinygradTxError(f"tokenizer: unknown type {kind!r}; known types: {sorted(Tokenizer._kinds)}")
        try:
            return Tokenizer._kinds[kind]._from_state(state)
        except (KeyError, TypeError) as exc:
            raise TinygradTxError(
                f"tokenizer: the saved {kind!r} tokenizer is incomplete or malformed ({exc!r})"
            ) from None

    @classmethod
    def _from_state(cls, state):
        raise NotImplementedError

    def save(self, path):
        """Write the tokenizer as JSON, atomically (temporary file in the same folder, then rename)."""
        path = os.fspath(path)
        temporary = f"{path}.{os.getpid()}.tmp"  # open(), not NamedTemporaryFile: the run's files are 0644, not 0600
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f)
        os.replace(temporary, path)

    @staticmethod
    def load(path):
        """The tokenizer saved at ``path``, as the subclass that saved it."""
        try:
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
        except FileNotFoundError:
            raise TinygradTxError(f"tokenizer file {os.fspath(path)!r} does not exist") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TinygradTxError(f"tokenizer file {os.fspath(path)!r} is not valid JSON ({exc})") from None
        return Tokenizer.from_dict(state)

    def _check_ids(self, ids):
        ids = list(ids)
        for position, token in enumerate(ids):
            if not 0 <= token < self.vocab_size:
                raise TinygradTxError(
                    f"{type(self).__name__}.decode: id {token} at position {position} "
                    f"is outside the vocabulary [0, {self.vocab_size})"
                )
        return ids

    def __eq__(self, other):
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class CharTokenizer(Tokenizer):
    """One id per distinct character of the training text, in sorted (code point) order."""

    kind = "char"

    def __init__(self, chars):
        self.chars = "".join(chars)
        self.char_to_id = {c: i for i, c in enumerate(self.chars)}
        if len(self.char_to_id) != len(self.chars):
            raise TinygradTxError("CharTokenizer: the character list has duplicates")

    @classmethod
    def from_text(cls, text):
        if not text:
            raise TinygradTxError("CharTokenizer.from_text: the text is empty, so there is no vocabulary to build")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        char_to_id = self.char_to_id
        try:
            return [char_to_id[c] for c in text]
        except KeyError as exc:
            unknown = exc.args[0]
            raise TinygradTxError(
                f"CharTokenizer.encode: character {unknown!r} (U+{ord(unknown):04X}) at position "
                f"{text.index(unknown)} is not in the vocabulary of {self.vocab_size} "
                "characters learned from the training text"
            ) from None

    def decode(self, ids):
        return "".join(self.chars[i] for i in self._check_ids(ids))

    def to_dict(self):
        return {"type": self.kind, "chars": self.chars}

    @classmethod
    def _from_state(cls, state):
        return cls(state["chars"])


class BPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding: ids 0..255 are bytes, each later id merges an earlier pair.

    Ties in training (pairs with the same count) go to the smallest pair of ids, compared as
    (first id, second id), so the merges depend only on the text.
    """

    kind = "bpe"

    def __init__(self, merges, pattern=GPT2_LIKE_SPLIT):
        self.merges = [tuple(pair) for pair in merges]  # merges[k] made id 256 + k
        self.pattern = pattern
        self._splitter = re.compile(pattern)
        self.rank = {pair: BYTE_VOCAB + k for k, pair in enumerate(self.merges)}
        self.vocab = [bytes([b]) for b in range(BYTE_VOCAB)]
        for first, second in self.merges:
            if not (0 <= first < len(self.vocab) and 0 <= second < len(self.vocab)):
                raise TinygradTxError(
                    f"BPETokenizer: merge {len(self.vocab) - BYTE_VOCAB} joins ({first}, {second}), "
                    f"but only ids below {len(self.vocab)} exist at that point"
                )
            self.vocab.append(self.vocab[first] + self.vocab[second])
        self._chunk_ids = {}

    @classmethod
    def train(cls, text, vocab_size, pattern=GPT2_LIKE_SPLIT):
        """Learn ``vocab_size - 256`` merges from ``text`` (fewer if the text runs out of pairs)."""
        if vocab_size < BYTE_VOCAB:
            raise TinygradTxError(
                f"BPETokenizer.train: vocab_size {vocab_size} is below {BYTE_VOCAB}; "
                f"byte-level BPE needs the {BYTE_VOCAB} byte tokens plus the merges"
            )
        if not text:
            raise TinygradTxError("BPETokenizer.train: the text is empty, so there are no pairs to merge")
        chunk_counts = Counter(re.findall(pattern, text))
        return cls(_learn_merges(chunk_counts, vocab_size - BYTE_VOCAB), pattern)

    @property
    def vocab_size(self):
        return len(self.vocab)

    def encode(self, text):
        ids = []
        cache = self._chunk_ids
        for chunk in self._splitter.findall(text):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = self._encode_chunk(chunk, text)
                if len(cache) < _ENCODE_CACHE_LIMIT:
                    cache[chunk] = chunk_ids
            ids.extend(chunk_ids)
        return ids

    def _encode_chunk(self, chunk, text):
        try:
            ids = list(chunk.encode("utf-8"))
        except UnicodeEncodeError as exc:  # lone surrogates cannot be written as UTF-8
            bad = chunk[exc.start]
            raise TinygradTxError(
                f"BPETokenizer.encode: character U+{ord(bad):04X} at position {text.index(bad)} "
                "is a lone surrogate and has no UTF-8 encoding"
            ) from None
        rank = self.rank
        while len(ids) > 1:
            # replay the earliest-learned merge present; later merges may be built on it
            pair = min(zip(ids, ids[1:]), key=lambda p: rank.get(p, float("inf")))
            if pair not in rank:
                break
            ids = _merge(ids, pair, rank[pair])
        return ids

    def decode(self, ids):
        """Bytes of the ids joined and read as UTF-8; sequences cut mid-character become U+FFFD."""
        vocab = self.vocab
        return b"".join(vocab[i] for i in self._check_ids(ids)).decode("utf-8", errors="replace")

    def to_dict(self):
        return {"type": self.kind, "pattern": self.pattern, "merges": [list(pair) for pair in self.merges]}

    @classmethod
    def _from_state(cls, state):
        return cls(state["merges"], state["pattern"])


def __getattr__(name):
    """``train.tokenizers.GPT2Tokenizer``, imported on first use (train/gpt2_tokenizer.py builds on this module)."""
    if name == "GPT2Tokenizer":
        from train.gpt2_tokenizer import GPT2Tokenizer

        return GPT2Tokenizer
    raise AttributeError(f"module 'train.tokenizers' has no attribute {name!r}")


def _merge(ids, pair, new_id):
    """``ids`` with every non-overlapping occurrence of ``pair`` (left to right) replaced by ``new_id``."""
    merged, i, n = [], 0, len(ids)
    first, second = pair
    while i < n:
        if i + 1 < n and ids[i] == first and ids[i + 1] == second:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


def _learn_merges(chunk_counts, num_merges):
    """Greedy BPE over distinct chunks weighted by their counts, with incrementally updated pair counts.

    ``pair_counts`` holds each adjacent pair's total count; ``chunks_with`` the chunks where it may
    occur. A heap of (-count, pair) finds the best pair; entries whose count has since changed are
    stale and skipped when popped, which keeps each merge proportional to the chunks it touches.
    """
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    counts = list(chunk_counts.values())
    pair_counts, chunks_with = Counter(), {}
    for index, (word, count) in enumerate(zip(words, counts)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += count
            chunks_with.setdefault(pair, set()).add(index)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(merges) < num_merges and heap:
        negative_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -negative_count:
            continue
        new_id = BYTE_VOCAB + len(merges)
        merges.append(pair)
        changed = set()
        for index in chunks_with.pop(pair):
            old = words[index]
            new = _merge(old, pair, new_id)
            if len(new) == len(old):
                continue
            count = counts[index]
            for old_pair in zip(old, old[1:]):
                pair_counts[old_pair] -= count
                changed.add(old_pair)
            for new_pair in zip(new, new[1:]):
                pair_counts[new_pair] += count
                chunks_with.setdefault(new_pair, set()).add(index)
                changed.add(new_pair)
            words[index] = new
        for changed_pair in changed:
            count = pair_counts[changed_pair]
            if count > 0:
                heapq.heappush(heap, (-count, changed_pair))
            else:
                del pair_counts[changed_pair]
                chunks_with.pop(changed_pair, None)
    return merges
