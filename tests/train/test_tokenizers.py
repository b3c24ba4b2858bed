"""Character and byte-level BPE tokenizers: round trips, deterministic merges, save/load, every error."""

import json
import os
import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_tx.errors import TinygradTxError
from train.tokenizers import GPT2_LIKE_SPLIT, BPETokenizer, CharTokenizer, Tokenizer

from helpers import shakespeare_path

SAMPLE = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n\n"
    "First Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n\n"
    "We'll have 1234 crowns -- and they're 'twas ours_2 naïve café 東京 ☃\n"
) * 3


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(SAMPLE, 320)


# ---------------------------------------------------------------- character tokenizer
@given(st.text(min_size=1))
def test_char_round_trip(text):
    tokenizer = CharTokenizer.from_text(text)
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert tokenizer.vocab_size == len(set(text))
    assert all(0 <= i < tokenizer.vocab_size for i in ids)


def test_char_ids_follow_sorted_characters():
    tokenizer = CharTokenizer.from_text("hello world")
    assert tokenizer.chars == " dehlorw"
    assert tokenizer.encode("rowel") == [6, 5, 7, 2, 4]


def test_char_unknown_character_is_named():
    tokenizer = CharTokenizer.from_text("abc")
    with pytest.raises(TinygradTxError, match=r"character 'z' \(U\+007A\) at position 2 is not in the vocabulary of 3"):
        tokenizer.encode("abz")


def test_char_errors():
    with pytest.raises(TinygradTxError, match="CharTokenizer.from_text: the text is empty"):
        CharTokenizer.from_text("")
    with pytest.raises(
        TinygradTxError, match=r"CharTokenizer.decode: id 3 at position 1 is outside the vocabulary \[0, 3\)"
    ):
        CharTokenizer.from_text("abc").decode([0, 3])
    with pytest.raises(TinygradTxError, match="duplicates"):
        CharTokenizer("aba")


# ---------------------------------------------------------------- save / load
def test_save_load_identity(tmp_path, bpe):
    for tokenizer in (CharTokenizer.from_text(SAMPLE), bpe):
        path = tmp_path / f"{tokenizer.kind}.json"
        tokenizer.save(path)
        loaded = Tokenizer.load(path)
        assert type(loaded) is type(tokenizer) and loaded == tokenizer
        assert loaded.encode(SAMPLE) == tokenizer.encode(SAMPLE)
        assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
        umask = os.umask(0o022)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # 0644 like every run file (issue 24: was 0600)


def test_load_errors(tmp_path):
    with pytest.raises(TinygradTxError, match=r"tokenizer file '.*missing.json' does not exist"):
        Tokenizer.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(TinygradTxError, match=r"tokenizer file '.*broken.json' is not valid JSON"):
        Tokenizer.load(broken)
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"type": "wordpiece"}))
    with pytest.raises(
        TinygradTxError, match=r"tokenizer: unknown type 'wordpiece'; known types: \['bpe', 'char', 'gpt2'\]"
    ):
        Tokenizer.load(unknown)
    with pytest.raises(TinygradTxError, match="tokenizer: the saved 'bpe' tokenizer is incomplete or malformed"):
        Tokenizer.from_dict({"type": "bpe", "merges": []})
    with pytest.raises(
        TinygradTxError, match=r"BPETokenizer: merge 1 joins \(256, 258\), but only ids below 257 exist"
    ):
        Tokenizer.from_dict({"type": "bpe", "pattern": GPT2_LIKE_SPLIT, "merges": [[97, 98], [256, 258]]})


# ---------------------------------------------------------------- byte-level BPE
@given(st.text())
def test_bpe_round_trip_any_unicode(bpe, text):
    # characters never seen in training still encode, byte by byte
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    assert all(0 <= i < bpe.vocab_size for i in ids)


@given(st.text())
def test_pre_split_keeps_every_character(text):
    assert "".join(re.findall(GPT2_LIKE_SPLIT, text)) == text


def test_pre_split_matches_gpt2_on_english():
    chunks = re.findall(GPT2_LIKE_SPLIT, "We'll see 42 dogs!!  Now\n\nok")
    assert chunks == ["We", "'ll", " see", " 42", " dogs", "!!", " ", " Now", "\n", "\n", "ok"]


def test_bpe_learns_the_frequent_pairs(bpe):
    assert bpe.vocab_size == 320
    assert len(bpe.encode(SAMPLE)) < 0.6 * len(SAMPLE.encode("utf-8"))
    assert b"First" in bpe.vocab and b" Citizen" in bpe.vocab


def test_bpe_merges_are_deterministic(bpe):
    assert BPETokenizer.train(SAMPLE, 320).merges == bpe.merges


def test_bpe_ties_go_to_the_smallest_pair():
    # every pair occurs once: the smallest (first id, second id) wins, here (" ", "c") = (32, 99)
    tokenizer = BPETokenizer.train("ab cd", 257)
    assert tokenizer.merges == [(32, 99)]


def _naive_merges(text, num_merges):
    """Reference: recount every pair from scratch before each merge, same tie-break."""
    chunk_counts = Counter(re.findall(GPT2_LIKE_SPLIT, text))
    words = {chunk: list(chunk.encode("utf-8")) for chunk in chunk_counts}
    merges = []
    for new_id in range(256, 256 + num_merges):
        pairs = Counter()
        for chunk, ids in words.items():
            for pair in zip(ids, ids[1:]):
                pairs[pair] += chunk_counts[chunk]
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        for chunk, ids in words.items():
            merged, i = [], 0
            while i < len(ids):
                if ids[i : i + 2] == list(best):
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(ids[i])
                    i += 1
            words[chunk] = merged
    return merges


def test_bpe_incremental_counts_match_a_full_recount():
    text = SAMPLE + "aaaa aaa aaaaaaa banana bandana"
    assert BPETokenizer.train(text, 256 + 150).merges == _naive_merges(text, 150)


def test_bpe_stops_when_the_text_runs_out_of_pairs():
    tokenizer = BPETokenizer.train("ab ab", 300)
    assert tokenizer.vocab == [bytes([b]) for b in range(256)] + [b"ab", b" ab"]
    assert tokenizer.encode("ab ab") == [256, 257]


def test_bpe_decode_of_a_cut_character_is_a_replacement_char():
    tokenizer = BPETokenizer.train("abc", 256)
    first_byte_of_snowman = "☃".encode()[0]
    assert tokenizer.decode([97, first_byte_of_snowman]) == "a\ufffd"


def test_bpe_errors(bpe):
    with pytest.raises(TinygradTxError, match="BPETokenizer.train: vocab_size 255 is below 256"):
        BPETokenizer.train(SAMPLE, 255)
    with pytest.raises(TinygradTxError, match="BPETokenizer.train: the text is empty"):
        BPETokenizer.train("", 300)
    with pytest.raises(
        TinygradTxError, match=r"BPETokenizer.decode: id 320 at position 0 is outside the vocabulary \[0, 320\)"
    ):
        bpe.decode([320])
    with pytest.raises(TinygradTxError, match=r"U\+D800 at position 1 is a lone surrogate"):
        bpe.encode("a\ud800")


def test_bpe_on_tiny_shakespeare_smoke():
    path = shakespeare_path()
    assert path, "Tiny Shakespeare not found: set TINYSHAKESPEARE_PATH or put it at ../shared/data/tinyshakespeare/"
    with open(path, encoding="utf-8") as f:
        text = f.read(100_000)
    tokenizer = BPETokenizer.train(text, 300)
    ids = tokenizer.encode(text)
    assert tokenizer.vocab_size == 300
    assert tokenizer.decode(ids) == text
    assert len(text) / len(ids) > 1.3  # 44 merges already shorten English text by a third
    assert b" the" in tokenizer.vocab
