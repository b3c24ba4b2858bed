"""Data loading rules (never touching the network), file errors, splits and batches."""

import hashlib
import os
import urllib.error

import numpy as np
import pytest

from tinygrad_tx.errors import ShapeError, TinygradTxError
from train import data
from train.data import Dataset, TinyShakespeare, get_batch, iter_batches, read_text, resolve_text_path, split_data
from train.tokenizers import CharTokenizer

from helpers import DEVICES, shakespeare_path

FAKE_CORPUS = b"To be, or not to be, that is the question.\n"


def _offline(url, timeout=None):
    raise urllib.error.URLError("no network in tests")


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No path variable, a private cache, no network, and FAKE_CORPUS standing in for the real file."""
    monkeypatch.delenv(data.PATH_ENV, raising=False)
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(data, "download_bytes", _offline)
    monkeypatch.setattr(data, "TINYSHAKESPEARE_SHA256", hashlib.sha256(FAKE_CORPUS).hexdigest())
    return tmp_path


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _serve(content, calls):
    def fake_download(url, timeout=None):
        calls.append(url)
        return content

    return fake_download


# ---------------------------------------------------------------- where the text comes from
def test_path_argument_beats_environment_variable(env, monkeypatch):
    own = _write(env / "own.txt", b"my own corpus, any text\n")  # no checksum on a user's file
    monkeypatch.setenv(data.PATH_ENV, str(_write(env / "other.txt", FAKE_CORPUS)))
    assert resolve_text_path(own) == str(own)
    assert TinyShakespeare(own).text == "my own corpus, any text\n"


def test_environment_variable_beats_cache(env, monkeypatch):
    _write(env / "cache" / "tinyshakespeare" / "input.txt", FAKE_CORPUS)
    from_env = _write(env / "from_env.txt", b"from the environment")
    monkeypatch.setenv(data.PATH_ENV, str(from_env))
    assert TinyShakespeare().text == "from the environment"


def test_environment_variable_naming_a_missing_file(env, monkeypatch):
    monkeypatch.setenv(data.PATH_ENV, str(env / "nowhere.txt"))
    with pytest.raises(TinygradTxError, match=r"TINYSHAKESPEARE_PATH names '.*nowhere.txt', which is not a file"):
        TinyShakespeare()


def test_cache_beats_download(env):
    cached = _write(env / "cache" / "tinyshakespeare" / "input.txt", FAKE_CORPUS)
    assert resolve_text_path() == str(cached)  # download_bytes would raise


def test_default_cache_is_under_home(env, monkeypatch):
    monkeypatch.delenv(data.CACHE_ENV)
    monkeypatch.setenv("HOME", str(env))
    assert data.cached_tinyshakespeare_path() == str(env / ".cache" / "tinygrad_tx" / "tinyshakespeare" / "input.txt")


UMASK = os.umask(0o022)
os.umask(UMASK)


def test_download_is_verified_written_atomically_and_then_cached(env, monkeypatch):
    calls = []
    monkeypatch.setattr(data, "download_bytes", _serve(FAKE_CORPUS, calls))
    dataset = TinyShakespeare()
    folder = env / "cache" / "tinyshakespeare"
    assert dataset.path == str(folder / "input.txt") and dataset.text == FAKE_CORPUS.decode()
    assert calls == [data.TINYSHAKESPEARE_URL]
    assert os.listdir(folder) == ["input.txt"]  # no temporary file left behind
    assert os.stat(folder / "input.txt").st_mode & 0o777 == 0o666 & ~UMASK  # 0644, as any file (issue 24: was 0600)
    TinyShakespeare()
    assert len(calls) == 1


def test_download_of_the_real_file(tmp_path, monkeypatch):
    path = shakespeare_path()
    assert path, "Tiny Shakespeare not found: set TINYSHAKESPEARE_PATH or put it at ../shared/data/tinyshakespeare/"
    with open(path, "rb") as f:
        monkeypatch.setattr(data, "download_bytes", _serve(f.read(), []))
    monkeypatch.delenv(data.PATH_ENV, raising=False)
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path))
    dataset = TinyShakespeare()  # checked against the real TINYSHAKESPEARE_SHA256
    assert len(dataset) == 1115394 and dataset.text.startswith("First Citizen:")


def test_download_with_wrong_checksum_writes_nothing(env, monkeypatch):
    monkeypatch.setattr(data, "download_bytes", _serve(b"tampered", []))
    actual = hashlib.sha256(b"tampered").hexdigest()
    with pytest.raises(
        TinygradTxError,
        match=f"download {data.TINYSHAKESPEARE_URL} .* expected sha256 "
        f"{data.TINYSHAKESPEARE_SHA256}, got {actual}; nothing was written",
    ):
        TinyShakespeare()
    assert not (env / "cache" / "tinyshakespeare" / "input.txt").exists()


def test_unwritable_cache(env, monkeypatch):
    blocker = _write(env / "a_file", b"")  # the cache folder would have to live inside a file
    monkeypatch.setenv(data.CACHE_ENV, str(blocker / "cache"))
    monkeypatch.setattr(data, "download_bytes", _serve(FAKE_CORPUS, []))
    with pytest.raises(
        TinygradTxError,
        match=r"cannot write the downloaded Tiny Shakespeare to '.*a_file/cache/"
        r"tinyshakespeare/input.txt' .*set TINYGRAD_TX_CACHE",
    ):
        TinyShakespeare()


def test_cached_file_with_wrong_checksum(env):
    cached = _write(env / "cache" / "tinyshakespeare" / "input.txt", b"not shakespeare")
    actual = hashlib.sha256(b"not shakespeare").hexdigest()
    with pytest.raises(
        TinygradTxError,
        match=f"data file '{cached}' has the wrong checksum: expected sha256 "
        f"{data.TINYSHAKESPEARE_SHA256}, got {actual}; delete it",
    ):
        TinyShakespeare()


def test_offline_without_a_copy_says_where_to_put_it(env):
    cached = env / "cache" / "tinyshakespeare" / "input.txt"
    with pytest.raises(TinygradTxError) as info:
        TinyShakespeare()
    message = str(info.value)
    assert "no local copy of Tiny Shakespeare" in message and "no network in tests" in message
    assert f"put a copy at '{cached}'" in message and "--data PATH" in message and "TINYSHAKESPEARE_PATH" in message


# ---------------------------------------------------------------- file errors
@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"data file '.*corpus.txt' does not exist"),
        (b"", r"data file '.*corpus.txt' is empty"),
        (
            b"caf\xc3\xa9 ok, then \xff bad",
            r"data file '.*corpus.txt' is not UTF-8 text: invalid byte 0xff at byte offset 15",
        ),
    ],
)
def test_file_errors(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TinygradTxError, match=message):
        Dataset(path)


def test_directory_is_not_a_text_file(tmp_path):
    with pytest.raises(TinygradTxError, match=r"data file '.*' is a directory"):
        read_text(tmp_path)


def test_any_utf8_file_is_a_dataset(tmp_path):
    path = _write(tmp_path / "poem.txt", "Ünïcode ☃ lines\n".encode())
    dataset = Dataset(path)
    ids = dataset.encode(CharTokenizer.from_text(dataset.text))
    assert ids.dtype == np.uint16 and len(ids) == len(dataset) == 16


def test_large_vocabularies_are_stored_as_int32(tmp_path):
    class HugeVocabulary:
        vocab_size = 70_000

        def encode(self, text):
            return [69_999] * len(text)

    ids = Dataset(_write(tmp_path / "a.txt", b"abc")).encode(HugeVocabulary())
    assert ids.dtype == np.int32 and ids.tolist() == [69_999] * 3


# ---------------------------------------------------------------- splits and batches
def test_split_is_ninety_ten_in_order():
    ids = np.arange(1000, dtype=np.uint16)
    train, val = split_data(ids)
    assert len(train) == 900 and len(val) == 100
    assert np.array_equal(np.concatenate([train, val]), ids)
    with pytest.raises(TinygradTxError, match="split_data: train_fraction must be between 0 and 1 .*got 1.5"):
        split_data(ids, 1.5)


@pytest.mark.parametrize("device", DEVICES)
def test_batch_shapes_dtypes_and_shift(device):
    ids = np.arange(500, dtype=np.uint16)  # token value == position, so windows are easy to check
    x, y = get_batch(ids, 8, 16, device, np.random.default_rng(0))
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == np.int64
    assert x.device == y.device == ("cpu" if device == "cpu" else "gpu")
    x, y = x.numpy(), y.numpy()
    assert np.array_equal(y, x + 1)  # y is x shifted by one token
    assert np.array_equal(x, x[:, :1] + np.arange(16))  # each row is a contiguous window
    assert x.min() >= 0 and y.max() <= 499


def test_batches_are_deterministic_for_a_seed():
    ids = np.arange(10_000, dtype=np.int32)
    first = [get_batch(ids, 4, 32, "cpu", np.random.default_rng(7)) for _ in range(2)]
    assert np.array_equal(first[0][0].numpy(), first[1][0].numpy())
    other = get_batch(ids, 4, 32, "cpu", np.random.default_rng(8))
    assert not np.array_equal(first[0][0].numpy(), other[0].numpy())


def test_batch_errors():
    ids = np.arange(100)
    with pytest.raises(
        TinygradTxError, match="get_batch: block_size 100 needs at least 101 tokens, but the split has only 100"
    ):
        get_batch(ids, 2, 100, "cpu", np.random.default_rng(0))
    with pytest.raises(ShapeError, match=r"get_batch: data must be a 1-D integer array .*shape \(10, 10\)"):
        get_batch(ids.reshape(10, 10), 2, 4, "cpu", np.random.default_rng(0))
    with pytest.raises(TinygradTxError, match="get_batch: batch_size and block_size must be positive, got 0 and 4"):
        get_batch(ids, 0, 4, "cpu", np.random.default_rng(0))
    with pytest.raises(TinygradTxError, match="iter_batches: block_size 200 needs at least 201 tokens"):
        next(iter_batches(ids, 2, 200))


@pytest.mark.parametrize("length", [101, 105])
def test_iter_batches_scores_every_target_once(length):
    ids = np.arange(length, dtype=np.uint16)
    batches = list(iter_batches(ids, 3, 10))
    shapes = [x.shape for x, _ in batches]
    assert shapes == [(3, 10)] * 3 + [(1, 10)] + ([(1, 4)] if length == 105 else [])
    assert np.array_equal(np.concatenate([y.numpy().ravel() for _, y in batches]), np.arange(1, length))
    assert np.array_equal(np.concatenate([x.numpy().ravel() for x, _ in batches]), np.arange(length - 1))
