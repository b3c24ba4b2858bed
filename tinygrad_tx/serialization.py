"""Weights in safetensors, the format the ecosystem exchanges weights in without pickle.

    save_safetensors(model.state_dict(), "model.safetensors", {"model_args": json.dumps(args)})
    state, metadata = load_safetensors("model.safetensors")    # {name: NumPy array}, {str: str}
    model.load_state_dict(state)

A safetensors file is a JSON header (names, dtypes, shapes, offsets, and a string-to-string
``__metadata__``) followed by the raw little-endian bytes, so loading runs no code, and PyTorch
(``safetensors.torch.load_file``), JAX or Hugging Face tools read the same file. Written with the
``safetensors`` package's NumPy API to a temporary file that is renamed into place.
"""

from __future__ import annotations

import os
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

    try:
        with safe_open(os.fspath(path), framework="numpy") as file:
            names = file.keys()  # noqa: SIM118  (safe_open is no dict: it has keys() but no __iter__)
            return {name: file.get_tensor(name) for name in names}, dict(file.metadata() or {})
    except (OSError, SafetensorError) as exc:
        raise TinygradTxError(f"load_safetensors: cannot read {os.fspath(path)!r}: {exc}") from None
