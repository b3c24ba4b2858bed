"""Weights in safetensors, the format the ecosystem exchanges weights in without pickle.

    save_safetensors(model.state_dict(), "model.safetensors", {"model_args": json.dumps(args)})
    state, metadata = load_safetensors("model.safetensors")    # {name: NumPy array}, {str: str}
    model.load_state_dict(state)

A safetensors file is a JSON header (names, dtypes, shapes, offsets, and a string-to-string
``__metadata__``) followed by the raw little-endian bytes, so loading runs no code, and PyTorch
(``safetensors.torch.load_file``), JAX or Hugging Face tools read the same file. Written with the
``safetensors`` package's NumPy API to a temporary file that is renamed into place.

A file can lie about its tensors. ``safetensors_header`` and ``npz_headers`` read only the headers and check
each tensor's claimed size against the bytes the file really stores, so a 200-byte file that claims a
(200000, 200000) array is refused in microseconds, before anything is allocated; ``load_safetensors`` checks
the header first.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Mapping

import numpy as np

from . import backend
from .errors import TinygradTxError
from .tensor import Tensor


def save_safetensors(
    state: Mapping[str, object], path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``state`` ({name: Tensor or array}) to ``path`` atomically; ``metadata`` values must be strings."""
    from safetensors.numpy import save_file  # imported on use: ``import tinygrad_tx`` stays NumPy-only

    arrays = {
        name: np.ascontiguousarray(backend.to_numpy(value.data if isinstance(value, Tensor) else value))
        for name, value in state.items()
    }
    if metadata is not None and not all(isinstance(v, str) for v in metadata.values()):
        raise TinygradTxError("save_safetensors: metadata values must be strings (encode others as JSON)")
    tmp = f"{os.fspath(path)}.tmp"
    try:
        save_file(arrays, tmp, metadata=dict(metadata) if metadata is not None else None)
        os.replace(tmp, path)
    except BaseException:  # a full disk or Ctrl-C mid-write: leave no temporary file behind
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_safetensors(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """({name: NumPy array}, metadata) from a safetensors file; TinygradTxError when it cannot be read."""
    from safetensors import SafetensorError, safe_open

    safetensors_header(path, "load_safetensors")  # a lying header is refused before any tensor is read
    try:
        with safe_open(os.fspath(path), framework="numpy") as file:
            names = file.keys()  # noqa: SIM118  (safe_open is no dict: it has keys() but no __iter__)
            return {name: file.get_tensor(name) for name in names}, dict(file.metadata() or {})
    except (OSError, SafetensorError) as exc:
        raise TinygradTxError(f"load_safetensors: cannot read {os.fspath(path)!r}: {exc}") from None


# bytes per element of each safetensors dtype
SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit


def safetensors_header(path: str | os.PathLike[str], op: str) -> tuple[dict[str, tuple[str, tuple]], dict[str, str]]:
    """({name: (dtype, shape)}, metadata) from a safetensors file's header alone, after checking that it is
    well formed and that every tensor's claimed size is the size of the bytes it points to, inside the file.
    A one-line TinygradTxError naming ``op`` and the file otherwise."""
    where = f"{op}: {os.fspath(path)!r}"
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as file:
            prefix = file.read(8)
            length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if not 0 < length <= min(size - 8, MAX_HEADER_BYTES):
                raise TinygradTxError(
                    f"{op}: cannot read {os.fspath(path)!r}: not a safetensors file "
                    f"(its header length {length} does not fit its {size} bytes)"
                )
            text = file.read(length)
    except OSError as exc:
        raise TinygradTxError(f"{op}: cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from None
    try:
        header = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
        raise TinygradTxError(f"{where}: its header is not valid JSON ({reason})") from None
    if not isinstance(header, dict):
        raise TinygradTxError(f"{where}: its header must be a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise TinygradTxError(f"{where}: its __metadata__ must map names to strings")
    data_bytes, tensors = size - 8 - length, {}
    for name, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
            valid = dtype in SAFETENSORS_DTYPES and all(isinstance(n, int) and n >= 0 for n in (*shape, begin, end))
        except (TypeError, KeyError, ValueError):
            valid = False
        if not valid:
            raise TinygradTxError(f"{where}: tensor {name!r} has a malformed header entry {str(entry)[:100]}")
        claimed = math.prod(shape) * SAFETENSORS_DTYPES[dtype]
        if not begin <= end <= data_bytes or end - begin != claimed:
            raise TinygradTxError(
                f"{where}: tensor {name!r} claims shape {shape} {dtype} ({claimed} bytes) at bytes {begin}..{end}, "
                f"but the file stores {data_bytes} bytes of data"
            )
        tensors[name] = (dtype, shape)
    return tensors, metadata


def npz_headers(path: str | os.PathLike[str], op: str) -> dict[str, tuple[tuple, np.dtype]]:
    """{name: (shape, dtype)} of every array of an .npz, from the .npy headers alone, after checking that each
    header's claimed size is the size of the bytes stored for it. A one-line TinygradTxError naming ``op`` and
    the file otherwise (not a zip, an entry that is not .npy, a header that lies)."""
    try:
        return npz_headers_unchecked(path, op)
    except TinygradTxError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else text
        raise TinygradTxError(f"{op}: cannot read {os.fspath(path)!r}: not a readable .npz ({reason})") from None


def npz_headers_unchecked(path: str | os.PathLike[str], op: str) -> dict[str, tuple[tuple, np.dtype]]:
    """``npz_headers`` letting the zip and .npy readers' own errors through (BadZipFile, OSError, ValueError,
    for a caller that words them itself); a header that lies is still a TinygradTxError."""
    where = f"{op}: {os.fspath(path)!r}"
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            ratio_limit = 1 if info.compress_type == zipfile.ZIP_STORED else 1100  # deflate: at most ~1032:1
            if info.file_size > max(info.compress_size, 1) * ratio_limit:
                raise TinygradTxError(
                    f"{where}: entry {name!r} claims {info.file_size} bytes but stores {info.compress_size}"
                )
            with archive.open(info) as entry:
                version = np.lib.format.read_magic(entry)
                one_zero = version == (1, 0)
                read = np.lib.format.read_array_header_1_0 if one_zero else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(entry)
                header_bytes = entry.tell()
            if dtype.hasobject:
                raise TinygradTxError(f"{where}: entry {name!r} holds Python objects (a pickle), not numbers")
            claimed, stored = math.prod(shape) * dtype.itemsize, info.file_size - header_bytes
            if claimed != stored:
                raise TinygradTxError(
                    f"{where}: entry {name!r} claims shape {tuple(shape)} {dtype} ({claimed} bytes) "
                    f"but stores {stored} bytes"
                )
            arrays[name] = (tuple(shape), dtype)
    return arrays
