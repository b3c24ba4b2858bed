"""OpenAI GPT-2's tokenizer: byte-level BPE with the merges and vocabulary of its vocab.json and merges.txt.

    tok = GPT2Tokenizer.from_pretrained("gpt2")       # a directory, or the Hugging Face cache (models/pretrained.py)
    tok = GPT2Tokenizer.from_files("vocab.json", "merges.txt")
    ids = tok.encode("Hello world<|endoftext|>")      # [15496, 995, 50256]; tok.decode(ids) gives the text back

The algorithm is the project's byte-level BPE (train/tokenizers.py): UTF-8 bytes, then the earliest-ranked merge
present replayed until none applies. GPT-2 differs in three bookkeeping details, all read from the files:
- its vocabulary is written in printable characters: ``bytes_to_unicode`` maps each of the 256 bytes to one
  (a space is "Ġ", a newline "Ċ"), so the byte tokens' ids are vocab.json's, not 0..255;
- a merge's rank is its line in merges.txt, and the id of what it makes is vocab.json's entry for the joined text;
- the text is first cut with GPT-2's pattern, whose letter and number classes are Unicode's (``\\p{L}``,
  ``\\p{N}``: the ``regex`` package), and ``<|endoftext|>`` is one special token wherever it appears.
"""

from __future__ import annotations

import functools
import json
import os

import regex

from tinygrad_tx.errors import TinygradTxError
from train.tokenizers import Tokenizer, _merge

GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ENDOFTEXT = "<|endoftext|>"
_CACHE_LIMIT = 200_000


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> character table: printable Latin-1 bytes stand for themselves, the other 68 bytes
    (controls, space, ...) take the characters from U+0100 on, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


class GPT2Tokenizer(Tokenizer):
    """GPT-2's byte-level BPE from its vocabulary ({token text: id}) and merges ([(first, second), ...])."""

    kind = "gpt2"

    def __init__(self, encoder: dict, merges: list, special_tokens=(ENDOFTEXT,)) -> None:
        where = "GPT2Tokenizer"
        if not isinstance(encoder, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in encoder.items()
        ):
            raise TinygradTxError(f"{where}: the vocabulary must map token strings to integer ids")
        ids = sorted(encoder.values())
        if ids != list(range(len(ids))):
            raise TinygradTxError(f"{where}: the vocabulary's ids must be 0..{len(ids) - 1}, each once")
        self.encoder, self.merges = dict(encoder), [tuple(pair) for pair in merges]
        byte_chars = bytes_to_unicode()
        missing = [f"{char!r} (byte {byte})" for byte, char in byte_chars.items() if char not in encoder]
        if missing:
            raise TinygradTxError(f"{where}: the vocabulary lacks byte tokens {', '.join(missing[:3])}")
        self.byte_ids = [encoder[byte_chars[byte]] for byte in range(256)]
        self.ranks: dict[tuple[int, int], tuple[int, int]] = {}
        for line, pair in enumerate(self.merges, 1):
            if len(pair) != 2 or any(part not in encoder for part in pair) or pair[0] + pair[1] not in encoder:
                raise TinygradTxError(f"{where}: merge {line} {' '.join(pair)!r} joins tokens not in the vocabulary")
            self.ranks[encoder[pair[0]], encoder[pair[1]]] = (
                line,
                encoder[pair[0] + pair[1]],
            )  # a repeat: the last wins
        self.special = {token: encoder[token] for token in special_tokens if token in encoder}
        byte_of = {char: byte for byte, char in byte_chars.items()}
        self.decoder: list[bytes] = [b""] * len(encoder)
        for token, index in encoder.items():
            if token in self.special:
                self.decoder[index] = token.encode("utf-8")
            elif all(char in byte_of for char in token):
                self.decoder[index] = bytes(byte_of[char] for char in token)
            else:
                raise TinygradTxError(f"{where}: vocabulary token {token!r} (id {index}) is not byte-level text")
        self._splitter = regex.compile(GPT2_SPLIT)
        names = sorted(self.special, key=len, reverse=True)
        self._special_splitter = regex.compile("(" + "|".join(map(regex.escape, names)) + ")") if names else None
        self._cache: dict[str, list[int]] = {}

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_files(cls, vocab, merges) -> GPT2Tokenizer:
        """From a vocab.json ({token: id}) and a merges.txt (an optional '#version' line, then 'first second')."""
        try:
            with open(vocab, encoding="utf-8") as file:
                encoder = json.load(file)
        except (OSError, ValueError) as exc:
            raise TinygradTxError(f"GPT2Tokenizer: cannot read {os.fspath(vocab)!r} as JSON ({exc})") from None
        try:
            with open(merges, encoding="utf-8") as file:
                lines = file.read().split("\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise TinygradTxError(f"GPT2Tokenizer: cannot read {os.fspath(merges)!r} ({exc})") from None
        pairs = []
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\r")
            if not line or (number == 1 and line.startswith("#version")):
                continue
            pair = line.split(" ")
            if len(pair) != 2:
                raise TinygradTxError(f"GPT2Tokenizer: {os.fspath(merges)!r} line {number} is not 'first second'")
            pairs.append(tuple(pair))
        return cls(encoder, pairs)

    @classmethod
    def from_pretrained(cls, name_or_path) -> GPT2Tokenizer:
        """vocab.json and merges.txt from a directory, or of a GPT-2 name in the Hugging Face cache."""
        from models.pretrained import locate_files

        vocab, merges = locate_files(name_or_path, [("vocab.json",), ("merges.txt",)], "GPT2Tokenizer.from_pretrained")
        return cls.from_files(vocab, merges)

    # ---------------------------------------------------------------- encoding
    @property
    def vocab_size(self):
        return len(self.encoder)

    @property
    def eot_token(self):
        """The id of <|endoftext|>, GPT-2's document separator (None if the vocabulary has none)."""
        return self.special.get(ENDOFTEXT)

    def encode(self, text, allow_special=True):
        """Token ids of ``text``; with ``allow_special`` each <|endoftext|> in it is that one token, else plain text."""
        pieces = self._special_splitter.split(text) if allow_special and self._special_splitter else [text]
        ids: list[int] = []
        for index, piece in enumerate(pieces):
            if index % 2:  # the splitter's capture group: a special token
                ids.append(self.special[piece])
                continue
            for chunk in self._splitter.findall(piece):
                chunk_ids = self._cache.get(chunk)
                if chunk_ids is None:
                    chunk_ids = self._encode_chunk(chunk, text)
                    if len(self._cache) < _CACHE_LIMIT:
                        self._cache[chunk] = chunk_ids
                ids.extend(chunk_ids)
        return ids

    def _encode_chunk(self, chunk, text):
        try:
            data = chunk.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = chunk[exc.start]
            raise TinygradTxError(
                f"GPT2Tokenizer.encode: character U+{ord(bad):04X} at position {text.index(bad)} "
                "is a lone surrogate and has no UTF-8 encoding"
            ) from None
        ids, ranks, never = [self.byte_ids[byte] for byte in data], self.ranks, (float("inf"), 0)
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, never))
            if pair not in ranks:
                break
            ids = _merge(ids, pair, ranks[pair][1])
        return ids

    def decode(self, ids):
        """The ids' bytes joined and read as UTF-8 (a character cut mid-way becomes U+FFFD, as Hugging Face's)."""
        decoder = self.decoder
        return b"".join(decoder[i] for i in self._check_ids(ids)).decode("utf-8", errors="replace")

    def to_dict(self):
        return {
            "type": self.kind,
            "vocab": self.encoder,
            "merges": [" ".join(pair) for pair in self.merges],
            "special": sorted(self.special),
        }

    @classmethod
    def _from_state(cls, state):
        return cls(state["vocab"], [tuple(line.split(" ")) for line in state["merges"]], state["special"])
