"""Fixtures of the training tests: the texts a tiny run trains on (each written once per session)."""

import numpy as np
import pytest

from helpers import shakespeare_path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A small UTF-8 text (20000 characters over 12 symbols) to train on: its path, as a string."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "corpus.txt"
    path.write_text("".join(rng.choice(list("abcdefghij \n"), 20000)), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def small_text(tmp_path_factory):
    """The first 50k characters of Tiny Shakespeare (or, without the file, 50k characters of verse-like text)."""
    path = shakespeare_path()
    if path:
        with open(path, encoding="utf-8") as f:
            text = f.read()[:50_000]
    else:
        rng = np.random.default_rng(0)
        words = ["thou", "art", "my", "lord", "and", "the", "king", "shall", "not", "die", "ROMEO:", "JULIET:"]
        text = "\n".join(" ".join(rng.choice(words, size=8)) for _ in range(1200))[:50_000]
    file = tmp_path_factory.mktemp("data") / "small.txt"
    file.write_text(text, encoding="utf-8")
    return file
