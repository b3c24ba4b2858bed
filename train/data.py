"""Text data sets and the batches a language model trains on.

    dataset = TinyShakespeare(args.data)                # or Dataset("my_corpus.txt") for any UTF-8 file
    tokenizer = CharTokenizer.from_text(dataset.text)
    train_ids, val_ids = split_data(dataset.encode(tokenizer))   # 90% / 10%, in text order
    x, y = get_batch(train_ids, batch_size, block_size, device, rng)   # y is x shifted by one token
    for x, y in iter_batches(val_ids, batch_size, block_size, device): ...   # the whole split, once

Where Tiny Shakespeare comes from, first match wins: the ``path`` argument (the trainers' ``--data``),
the ``TINYSHAKESPEARE_PATH`` environment variable, the cache (``$TINYGRAD_TX_CACHE``, default
``~/.cache/tinygrad_tx``), then a download from ``TINYSHAKESPEARE_URL`` into the cache. A file the
user names is read as is; the cached or downloaded copy must match ``TINYSHAKESPEARE_SHA256``.
"""

import hashlib
import http.client
import os
import urllib.request

import numpy as np

import tinygrad_tx
from tinygrad_tx import Tensor, from_numpy
from tinygrad_tx.errors import ShapeError, TinygradTxError

TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
PATH_ENV = "TINYSHAKESPEARE_PATH"
CACHE_ENV = "TINYGRAD_TX_CACHE"
DOWNLOAD_TIMEOUT_S = 30


# ---------------------------------------------------------------- files
def read_text(path):
    """The UTF-8 text of ``path``; a missing, empty or non-UTF-8 file is a TinygradTxError naming it."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise TinygradTxError(f"data file {path!r} does not exist") from None
    except IsADirectoryError:
        raise TinygradTxError(f"data file {path!r} is a directory, not a text file") from None
    except OSError as exc:
        raise TinygradTxError(f"data file {path!r} cannot be read ({exc.strerror})") from None
    if not raw:
        raise TinygradTxError(f"data file {path!r} is empty")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TinygradTxError(
            f"data file {path!r} is not UTF-8 text: invalid byte 0x{raw[exc.start]:02x} at byte offset {exc.start}"
        ) from None


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def cache_dir():
    """Where downloads are kept: ``$TINYGRAD_TX_CACHE`` or ``~/.cache/tinygrad_tx``."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "tinygrad_tx")


def cached_tinyshakespeare_path():
    return os.path.join(cache_dir(), "tinyshakespeare", "input.txt")


def download_bytes(url, timeout=DOWNLOAD_TIMEOUT_S):
    """The body at ``url`` (tests replace this function, so they never touch the network)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def resolve_text_path(path=None):
    """The Tiny Shakespeare file to read, by the rules in the module docstring (downloading if needed)."""
    if path is not None:
        return os.fspath(path)
    from_env = os.environ.get(PATH_ENV)
    if from_env:
        if not os.path.isfile(from_env):
            raise TinygradTxError(f"{PATH_ENV} names {from_env!r}, which is not a file; fix or unset it")
        return from_env
    cached = cached_tinyshakespeare_path()
    if not os.path.exists(cached):
        _download_into_cache(cached)
    actual = sha256_of(cached)
    if actual != TINYSHAKESPEARE_SHA256:
        raise TinygradTxError(
            f"data file {cached!r} has the wrong checksum: expected sha256 "
            f"{TINYSHAKESPEARE_SHA256}, got {actual}; delete it to download it again"
        )
    return cached


def _download_into_cache(destination):
    try:
        body = download_bytes(TINYSHAKESPEARE_URL)
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, refusals are OSErrors
        raise TinygradTxError(
            f"no local copy of Tiny Shakespeare, and the download from "
            f"{TINYSHAKESPEARE_URL} failed ({exc}); put a copy at {destination!r}, or pass "
            f"--data PATH, or set {PATH_ENV}=PATH"
        ) from None
    actual = hashlib.sha256(body).hexdigest()
    if actual != TINYSHAKESPEARE_SHA256:
        raise TinygradTxError(
            f"download {TINYSHAKESPEARE_URL} (for {destination!r}) has the wrong checksum: "
            f"expected sha256 {TINYSHAKESPEARE_SHA256}, got {actual}; nothing was written"
        )
    folder, partial = os.path.dirname(destination), None
    try:
        os.makedirs(folder, exist_ok=True)
        # write beside the destination and rename, so an interrupted download never looks complete
        partial = f"{destination}.{os.getpid()}.part"  # open(): the umask's mode (0644), not NamedTemporaryFile's 0600
        with open(partial, "wb") as tmp:
            tmp.write(body)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(partial, destination)
    except OSError as exc:
        if partial and os.path.exists(partial):
            os.remove(partial)
        raise TinygradTxError(
            f"cannot write the downloaded Tiny Shakespeare to {destination!r} ({exc}); "
            f"set {CACHE_ENV} to a writable folder, or pass --data PATH"
        ) from None


# ---------------------------------------------------------------- data sets
class Dataset:
    """A corpus of UTF-8 text read from ``path`` (``.path``, ``.text``); any text file works."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.text = read_text(self.path)

    def encode(self, tokenizer):
        """The whole text as token ids: uint16 when the vocabulary fits in it (half the memory), else int32."""
        dtype = np.uint16 if tokenizer.vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32
        return np.array(tokenizer.encode(self.text), dtype=dtype)

    def __len__(self):
        return len(self.text)

    def __repr__(self):
        return f"{type(self).__name__}(path={self.path!r}, characters={len(self.text)})"


class TinyShakespeare(Dataset):
    """Karpathy's 1.1 MB Tiny Shakespeare, found or downloaded by ``resolve_text_path``."""

    def __init__(self, path=None):
        super().__init__(resolve_text_path(path))


# ---------------------------------------------------------------- splits and batches
def split_data(ids, train_fraction=0.9):
    """(train, val): the first ``train_fraction`` of the ids and the rest, in text order (no shuffling)."""
    if not 0.0 < train_fraction < 1.0:
        raise TinygradTxError(f"split_data: train_fraction must be between 0 and 1 (exclusive), got {train_fraction}")
    boundary = int(len(ids) * train_fraction)
    return ids[:boundary], ids[boundary:]


def get_batch(data, batch_size, block_size, device="cpu", rng=None):
    """Random (x, y) int64 Tensors of shape (batch_size, block_size) on ``device``; y[:, t] = x[:, t + 1].

    Window starts are drawn from ``rng`` (a numpy Generator; default ``tinygrad_tx.rng("cpu")``), so a
    seeded generator gives the same batches on every device.
    """
    data = _check_split(data, batch_size, block_size, "get_batch")
    rng = tinygrad_tx.rng("cpu") if rng is None else rng
    starts = rng.integers(0, len(data) - block_size, size=batch_size)
    return _windows(data, starts, block_size, device)


def iter_batches(data, batch_size, block_size, device="cpu"):
    """Every next-token target of ``data`` exactly once, as (x, y) batches in order.

    Windows of ``block_size`` tokens do not overlap; when ``len(data) - 1`` is not a multiple of
    ``block_size`` the last batch is one shorter window (shape (1, remainder)). Weight each batch's
    mean loss by ``y.size`` to get the mean over the split.
    """
    data = _check_split(data, batch_size, block_size, "iter_batches")
    num_targets = len(data) - 1
    full_starts = np.arange(0, num_targets - block_size + 1, block_size)
    for first in range(0, len(full_starts), batch_size):
        yield _windows(data, full_starts[first : first + batch_size], block_size, device)
    remainder = num_targets % block_size
    if remainder:
        yield _windows(data, np.array([num_targets - remainder]), remainder, device)


def _check_split(data, batch_size, block_size, op):
    data = np.asarray(data)
    if data.ndim != 1 or data.dtype.kind not in "iu":
        raise ShapeError(
            f"{op}: data must be a 1-D integer array of token ids, got shape {data.shape} and dtype {data.dtype}"
        )
    if batch_size < 1 or block_size < 1:
        raise TinygradTxError(f"{op}: batch_size and block_size must be positive, got {batch_size} and {block_size}")
    if block_size >= len(data):
        raise TinygradTxError(
            f"{op}: block_size {block_size} needs at least {block_size + 1} tokens, but the split has only {len(data)}"
        )
    return data


def _windows(data, starts, length, device):
    # gather (x and y together) on the host, then move once: x is the first `length` columns, y the last
    windows = data[starts[:, None] + np.arange(length + 1)].astype(np.int64)
    windows = from_numpy(windows, device)
    return Tensor(windows[:, :-1]), Tensor(windows[:, 1:])
