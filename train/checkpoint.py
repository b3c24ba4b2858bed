"""Checkpoints: a nested dict of NumPy arrays and plain Python values in one ``.npz``, written atomically.

    save_checkpoint("runs/x/ckpt_last.npz", {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                             "iter_num": 250, "config": {...}, "rng": {...}})
    payload = load_checkpoint("runs/x/ckpt_last.npz")      # the same nested dict back

Arrays become .npz entries named by their path in the tree (``model/transformer.wte.weight``,
``optimizer/state/3/exp_avg``), so ``np.load`` shows what is inside. Everything else goes into one
JSON entry, ``__tree__``, where each array is replaced by ``{"__array__": entry}``; dicts with
non-string keys and tuples are tagged so they come back as they went in. No pickle: loading a
checkpoint never runs code. Writing goes to a temporary file in the same folder, is fsync'ed, then
renamed over the old file, so a crash leaves either the old checkpoint or the new one, never half.

``export_safetensors(checkpoint, path)`` writes a checkpoint's model weights as safetensors (the
ecosystem's pickle-free weights format, which PyTorch loads directly); ``models.gpt.GPT.from_safetensors``
reads it back.
"""

import contextlib
import json
import os
import zipfile

import numpy as np

from models.gpt import GPT
from models.gpt_config import check_state_shapes, config_from_model_args
from tinygrad_tx.errors import TinygradTxError
from tinygrad_tx.serialization import npz_headers_unchecked

TREE_KEY = "__tree__"


class CheckpointError(TinygradTxError):
    """A missing, truncated or corrupted checkpoint file."""


def save_checkpoint(path, payload):
    """Write ``payload`` (nested dicts/lists/tuples of arrays, numbers, strings, None) to ``path`` atomically."""
    arrays = {}
    tree = _encode(payload, "", arrays)
    arrays[TREE_KEY] = np.array(json.dumps(tree))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp"
    f = open(tmp, "wb")  # noqa: SIM115  (if this fails there is nothing to clean up: its error is the one raised)
    try:
        with f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:  # Ctrl-C or a full disk mid-write: leave no temporary file behind
        with contextlib.suppress(OSError):  # the cleanup's own failure must not hide the write's error
            os.unlink(tmp)
        raise
    os.replace(tmp, path)


def load_checkpoint(path):
    """The payload saved at ``path``; CheckpointError when it is missing, truncated or corrupted."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    if not zipfile.is_zipfile(path):  # otherwise np.load would take it for a pickle and say so
        raise CheckpointError(
            f"checkpoint {path!r} is truncated or corrupted (not an .npz archive); delete it or train again"
        )
    try:
        npz_headers_unchecked(path, "checkpoint")  # each header's claimed size against its stored bytes, first
        # every entry is read here, inside the try: zipfile checks each entry's CRC as it reads it
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        tree = json.loads(str(arrays.pop(TREE_KEY)))
        return _decode(tree, arrays)
    except TinygradTxError as exc:  # a header that lies about its size
        raise CheckpointError(f"checkpoint {path!r} is corrupted or forged ({exc}); delete it or train again") from None
    except RecursionError:  # a forged tree: "[" * 200000
        raise CheckpointError(f"checkpoint {path!r} is corrupted (its {TREE_KEY} is nested too deeply)") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {path!r} is truncated or corrupted ({type(exc).__name__}: {exc}); delete it or train again"
        ) from None


def export_safetensors(checkpoint, path):
    """Write the model weights of a trainer checkpoint (``ckpt_best.npz``) to ``path`` as safetensors."""
    model_from_checkpoint(load_checkpoint(checkpoint), checkpoint).save_safetensors(path)
    return path


def model_from_checkpoint(payload, path):
    """The GPT of a trainer checkpoint's payload, its model_args and weights checked before anything is built."""
    where = f"checkpoint {path!r}"
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict) or "model_args" not in payload:
        raise CheckpointError(f"{where} is not a trainer checkpoint (it lacks 'model' or 'model_args')")
    config = config_from_model_args(payload["model_args"], where)
    check_state_shapes(payload["model"], config, where)
    model = GPT(config)
    model.load_state_dict(payload["model"])
    return model


def _encode(value, path, arrays):
    if isinstance(value, (np.ndarray, np.generic)):
        arrays[path] = np.asarray(value)
        return {"__array__": path, "scalar": isinstance(value, np.generic)}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: _encode(item, f"{path}/{key}" if path else key, arrays) for key, item in value.items()}
        return {"__items__": [[key, _encode(item, f"{path}/{key}", arrays)] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [_encode(item, f"{path}/{i}", arrays) for i, item in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"save_checkpoint: cannot store {type(value).__name__} at {path!r}; "
        "use arrays, numbers, strings, None, lists, tuples and dicts"
    )


def _decode(value, arrays):
    if isinstance(value, list):
        return [_decode(item, arrays) for item in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        array = arrays[value["__array__"]]
        return array[()] if value["scalar"] else array
    if "__items__" in value:
        return {key: _decode(item, arrays) for key, item in value["__items__"]}
    if "__tuple__" in value:
        return tuple(_decode(item, arrays) for item in value["__tuple__"])
    return {key: _decode(item, arrays) for key, item in value.items()}
