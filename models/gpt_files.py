"""GPT weights in files: the .npz interchange format (nanoGPT's names, plus the GPTConfig as JSON) and safetensors.

    write_npz("model.npz", model.state_dict(), dataclasses.asdict(model.config))
    state, config = read_npz("model.npz")                 # {name: NumPy array}, a checked GPTConfig
    state, config = read_safetensors("model.safetensors")

Files can lie. Both readers look at the headers first: each tensor's claimed size against the bytes stored
for it (tinygrad_tx.serialization), the model arguments' types (models/gpt_config.py), and every tensor's
name and shape against the config; only then do they read a tensor, and a GPT is built only after that.
A lying file is a one-line TinygradTxError within milliseconds, with nothing big allocated.
"""

import json

import numpy as np

from tinygrad_tx.errors import TinygradTxError
from tinygrad_tx.serialization import load_safetensors, npz_headers, safetensors_header

from .gpt_config import GPTConfig, check_state_shapes, config_from_model_args

MODEL_ARGS_KEY = "__model_args__"  # the .npz entry holding the GPTConfig as JSON
SAFETENSORS_ARGS_KEY = "model_args"  # the safetensors metadata entry holding it


def write_npz(path, state, model_args):
    """The interchange format: one float32 array per parameter name, plus the model arguments as JSON."""
    arrays = {name: np.asarray(value, dtype=np.float32) for name, value in state.items()}
    arrays[MODEL_ARGS_KEY] = np.array(json.dumps(model_args))
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def read_npz(path, op: str = "GPT.from_npz") -> tuple[dict, GPTConfig]:
    """(state dict of NumPy arrays, GPTConfig) from an .npz of ``write_npz``, the file checked before it is read."""
    headers = npz_headers(path, op)
    where = f"{op}: {str(path)!r}"
    if MODEL_ARGS_KEY not in headers:
        raise TinygradTxError(
            f"{where} has no {MODEL_ARGS_KEY} entry; write it with GPT.save_npz or python -m train.convert_nanogpt"
        )
    shape, dtype = headers.pop(MODEL_ARGS_KEY)
    if shape != () or dtype.kind != "U":
        raise TinygradTxError(f"{where}: {MODEL_ARGS_KEY} must be one JSON string, got {dtype} {shape}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            config = config_from_model_args(str(archive[MODEL_ARGS_KEY]), where)
            check_tensors(headers, config, where)
            state = {name: archive[name] for name in headers}
    except (OSError, ValueError, EOFError) as exc:
        if isinstance(exc, TinygradTxError):
            raise
        raise TinygradTxError(f"{where}: cannot read it ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None
    return state, config


def read_safetensors(path, op: str = "GPT.from_safetensors") -> tuple[dict, GPTConfig]:
    """(state dict of NumPy arrays, GPTConfig) from a file of ``GPT.save_safetensors``, checked before it is read."""
    tensors, metadata = safetensors_header(path, op)
    where = f"{op}: {str(path)!r}"
    if SAFETENSORS_ARGS_KEY not in metadata:
        raise TinygradTxError(
            f"{where} has no {SAFETENSORS_ARGS_KEY!r} metadata; build the GPT from its GPTConfig and "
            "call model.load_safetensors(path) instead"
        )
    config = config_from_model_args(metadata[SAFETENSORS_ARGS_KEY], where)
    check_state_shapes({name: shape for name, (_, shape) in tensors.items()}, config, where)
    not_float = [
        f"{name} {dtype}" for name, (dtype, _) in tensors.items() if dtype not in ("F16", "BF16", "F32", "F64")
    ]
    if not_float:
        raise TinygradTxError(f"{where}: weights must be floating point, got {', '.join(not_float[:3])}")
    state, _ = load_safetensors(path)
    return state, config


def check_tensors(headers: dict, config: GPTConfig, where: str) -> None:
    """The .npz headers' names, shapes and dtypes against ``config`` (models/gpt_config.check_state_shapes)."""
    check_state_shapes({name: shape for name, (shape, _) in headers.items()}, config, where)
    not_float = [f"{name} {dtype}" for name, (_, dtype) in headers.items() if dtype.kind != "f"]
    if not_float:
        raise TinygradTxError(f"{where}: weights must be floating point, got {', '.join(not_float[:3])}")
