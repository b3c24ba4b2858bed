"""GPT2Tokenizer (train/gpt2_tokenizer.py) on a small hand-made vocab.json/merges.txt, and, where the ``tokenizers``
package is installed, against Hugging Face's byte-level BPE trained here and saved in GPT-2's format."""

import json

import pytest

from tinygrad_tx import TinygradTxError
from train.gpt2_tokenizer import GPT2_SPLIT, bytes_to_unicode
from train.tokenizers import GPT2Tokenizer, Tokenizer

from helpers.hf_gpt2 import MERGES, write_files, write_gpt2_directory
from helpers.optional import requires

STRESS = (
    "Hello world! I'm here, you're there; we'll see, they've gone, she'd know, it's 'quoted'.\n"
    "Café naïve résumé Ångström — ß Straße ÉCOLE\r\n"
    "数字 1234567 and 3.14159, ½ ² Ⅻ ٣٤٥\t\ttabs   and    spaces \n\n\n"
    "emoji 🙂👍🏽 🇫🇷 family 👨‍👩‍👧 and CJK 日本語のテキスト 한국어 текст\n"
    "code: def f(x):\n    return x**2  # comment\u00a0nbsp   \n"
    "<|endoftext|>Next document<|endoftext|> trailing spaces   "
)


def test_byte_table_is_gpt2s():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A" and table[0] == "Ā"


def test_pre_tokenization_uses_unicode_classes():
    import regex

    chunks = regex.findall(GPT2_SPLIT, "I'm 12½ ٣٤ Ⅻ naïve  \t x\r\n  y")
    assert chunks == ["I", "'m", " 12½", " ٣٤", " Ⅻ", " naïve", "  \t", " x", "\r\n ", " y"]


def test_hand_made_vocabulary(tmp_path):
    vocab = write_files(tmp_path)
    tok = GPT2Tokenizer.from_pretrained(str(tmp_path))
    assert tok.vocab_size == len(vocab) and tok.eot_token == vocab["<|endoftext|>"]
    assert tok.encode(" the and well") == [vocab["Ġthe"], vocab["Ġand"], vocab["Ġw"], vocab["ell"]]
    assert tok.encode("it's\n\n<|endoftext|>") == [vocab["i"], vocab["t"], vocab["'s"], vocab["ĊĊ"], tok.eot_token]
    plain = tok.encode("<|endoftext|>", allow_special=False)
    assert tok.eot_token not in plain and tok.decode(plain) == "<|endoftext|>"
    for text in (STRESS, "", " ", "\r\n", "🙂"):
        assert tok.decode(tok.encode(text)) == text
    assert tok.decode([vocab["ð"]]) == "\ufffd"  # a cut character, as Hugging Face's decode
    assert Tokenizer.from_dict(json.loads(json.dumps(tok.to_dict()))) == tok
    tok.save(tmp_path / "tok.json")
    assert Tokenizer.load(tmp_path / "tok.json").encode(STRESS) == tok.encode(STRESS)


def test_the_hub_cache_and_merges_without_header(tmp_path, monkeypatch):
    snapshot = tmp_path / "models--openai-community--gpt2" / "snapshots" / "abc"
    write_files(snapshot, header=False)
    (tmp_path / "models--openai-community--gpt2" / "refs").mkdir()
    (tmp_path / "models--openai-community--gpt2" / "refs" / "main").write_text("abc")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert GPT2Tokenizer.from_pretrained("gpt2").decode(GPT2Tokenizer.from_pretrained("gpt2").encode(STRESS)) == STRESS


def test_bad_files_are_one_line_errors(tmp_path):
    write_files(tmp_path)
    (tmp_path / "merges.txt").write_text("\n".join(["#version: 0.2", *MERGES, "q z"]), encoding="utf-8")
    with pytest.raises(TinygradTxError, match="merge 13 'q z' joins tokens not in the vocabulary"):
        GPT2Tokenizer.from_pretrained(str(tmp_path))
    (tmp_path / "merges.txt").write_text("#version: 0.2\nh e x\n", encoding="utf-8")
    with pytest.raises(TinygradTxError, match="line 2 is not 'first second'"):
        GPT2Tokenizer.from_pretrained(str(tmp_path))
    (tmp_path / "vocab.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(TinygradTxError, match="vocab.json"):
        GPT2Tokenizer.from_pretrained(str(tmp_path))
    with pytest.raises(TinygradTxError, match="lacks byte tokens"):
        GPT2Tokenizer({"a": 0}, [])
    with pytest.raises(TinygradTxError, match="has no vocab.json"):
        (tmp_path / "empty").mkdir()
        GPT2Tokenizer.from_pretrained(str(tmp_path / "empty"))


def _tokenizers_missing():
    import importlib.util

    return (
        ""
        if importlib.util.find_spec("tokenizers")
        else "the tokenizers package is not installed (pip install tokenizers)"
    )


@requires(_tokenizers_missing())
def test_equals_hugging_faces_byte_level_bpe(tmp_path):
    """A byte-level BPE trained with ``tokenizers`` (GPT-2's pre-tokenizer and decoder), saved as vocab.json and
    merges.txt, then encoded by both: token for token on the stress text, and decoded back exactly."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [STRESS * 3, "the quick brown fox jumps over the lazy dog " * 20, "naïve café 日本語 🙂 " * 10]
    hf.train_from_iterator(corpus, trainer)
    hf.model.save(str(tmp_path))
    tok = GPT2Tokenizer.from_pretrained(str(tmp_path))
    for text in (STRESS, STRESS.replace("<|endoftext|>", ""), "  leading", "x\r\n\r\n  \t", "don't DON'T 'll"):
        expected = hf.encode(text).ids
        assert tok.encode(text) == expected, text
        assert tok.decode(expected) == text


def test_sample_from_a_gpt2_directory(tmp_path, capsys):
    """python -m train.sample --init_from <directory>: GPT-2's model and tokenizer, the KV cache, top-k and top-p."""
    import io

    from train import sample

    directory = write_gpt2_directory(tmp_path / "gpt2")
    argv = ["--init_from", directory, "--prompt", "the well", "--num_samples", "1", "--max_new_tokens", "8"]
    out = io.StringIO()
    assert sample.main([*argv, "--top_k", "5", "--top_p", "0.9", "--temperature", "0.7"], out=out) == 0
    assert out.getvalue().startswith("the well")
    again = io.StringIO()
    sample.main([*argv, "--top_k", "5", "--top_p", "0.9", "--temperature", "0.7"], out=again)
    assert again.getvalue() == out.getvalue()  # the same seed, the same text
    assert sample.main(["--init_from", str(tmp_path / "missing")], out=io.StringIO()) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error and "missing" in error
