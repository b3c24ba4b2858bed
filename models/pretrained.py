"""OpenAI's GPT-2 from a Hugging Face checkpoint: finding the files, reading config.json, mapping the weights.

    model = GPT.from_pretrained("gpt2")                 # or gpt2-medium/-large/-xl, openai-community/gpt2, ...
    model = GPT.from_pretrained("path/to/checkpoint")   # a directory with config.json and model.safetensors

A name is looked up in the Hugging Face cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
``~/.cache/huggingface/hub``), in ``models--openai-community--<name>/`` and ``models--<name>/``, following
``refs/main`` to ``snapshots/<hash>/``. Files not cached are downloaded with ``huggingface_hub`` when it is
installed (``pip install -e ".[hub]"``); otherwise the error says how to fetch them on a connected machine.

The key mapping (docs/gpt2.md): Hugging Face's names drop nanoGPT's ``transformer.`` prefix in some files, so an
optional prefix is stripped and put back; ``attn.bias`` and ``attn.masked_bias`` are the causal mask buffers, not
weights, and are skipped; GPT-2's four projections are ``Conv1D`` modules storing the weight as (in, out), the
transpose of a Linear's (out, in), so they are transposed; ``lm_head.weight`` is the token embedding (tied).
"""

import importlib.util
import json
import os
from typing import Any

import numpy as np

from tinygrad_tx.errors import TinygradTxError
from tinygrad_tx.serialization import load_safetensors, safetensors_header

from .gpt_config import GPTConfig, parameter_shapes

GPT2_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
ORGANISATION = "openai-community"
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
SKIPPED = (".attn.bias", ".attn.masked_bias")
ACTIVATIONS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
FLOAT_DTYPES = ("F16", "F32", "F64")


def hub_cache_dir() -> str:
    """The Hugging Face hub cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")


def repo_ids(name: str) -> list:
    """The hub repositories that may hold a GPT-2 name: 'gpt2' -> openai-community/gpt2 and gpt2."""
    base = name.split("/", 1)[1] if name.startswith(ORGANISATION + "/") else name
    return [f"{ORGANISATION}/{base}", base]


def cached_snapshot(repo_id: str, cache: str):
    """The snapshot directory refs/main points to in ``cache`` for ``repo_id``, or None."""
    root = os.path.join(cache, "models--" + repo_id.replace("/", "--"))
    try:
        with open(os.path.join(root, "refs", "main"), encoding="utf-8") as ref:
            revision = ref.read().strip()
    except OSError:
        return None
    snapshot = os.path.join(root, "snapshots", revision)
    return snapshot if revision and os.path.isdir(snapshot) else None


def locate_files(name_or_path: Any, groups: list, op: str) -> list:
    """For each group of alternative file names (e.g. ("model.safetensors", "pytorch_model.bin")), the path of
    the first one present: in a local directory, the Hugging Face cache, or downloaded. One-line errors."""
    name = os.fspath(name_or_path) if isinstance(name_or_path, (str, os.PathLike)) else None
    if name is None:
        raise TinygradTxError(f"{op}: expected a GPT-2 name or a directory, got {type(name_or_path).__name__}")
    if os.path.isdir(name):
        return [_first_present([name], group, f"{op}: {name!r}") for group in groups]
    known = [*GPT2_NAMES, *(f"{ORGANISATION}/{n}" for n in GPT2_NAMES)]
    if name not in known:
        raise TinygradTxError(f"{op}: {name!r} is neither a directory nor a GPT-2 name ({', '.join(GPT2_NAMES)})")
    cache = hub_cache_dir()
    snapshots = [s for s in (cached_snapshot(repo, cache) for repo in repo_ids(name)) if s]
    found = [_first_present(snapshots, group) for group in groups]
    if all(found):
        return found
    missing = [group[0] for group, path in zip(groups, found) if not path]
    repo = repo_ids(name)[0]
    fetch = (
        f"on a connected machine run `huggingface-cli download {repo} config.json model.safetensors vocab.json "
        f"merges.txt` (pip install huggingface_hub) and copy {cache} here, or pass a directory holding the files"
    )
    if importlib.util.find_spec("huggingface_hub") is None:
        raise TinygradTxError(f"{op}: {', '.join(missing)} of {name!r} not in the Hugging Face cache {cache}; {fetch}")
    return [path or _download(repo, group, cache, op, fetch) for group, path in zip(groups, found)]


def _first_present(directories: list, group: tuple, where: str = ""):
    for filename in group:
        for directory in directories:
            path = os.path.join(directory, filename)
            if os.path.isfile(path):
                return path
    if where:
        raise TinygradTxError(f"{where} has no {' or '.join(group)}")
    return None


def _download(repo: str, group: tuple, cache: str, op: str, fetch: str) -> str:
    from huggingface_hub import hf_hub_download

    reasons = []
    for filename in group:
        try:
            return hf_hub_download(repo, filename, cache_dir=cache)
        except Exception as exc:  # offline, not found, ...: each of the library's many error types
            reasons.append(f"{filename}: {type(exc).__name__}")
    raise TinygradTxError(f"{op}: cannot download {' or '.join(group)} of {repo} ({'; '.join(reasons)}); {fetch}")


def load_pretrained(name_or_path: Any, op: str, dropout: float = 0.0) -> tuple:
    """(state dict of float32 NumPy arrays in nanoGPT's names and layouts, GPTConfig) of a GPT-2 checkpoint."""
    config_path, weights_path = locate_files(name_or_path, [("config.json",), WEIGHT_FILES], op)
    config = config_from_hf(config_path, op, dropout)
    return read_hf_weights(weights_path, config, op), config  # every name and shape checked before reading


def config_from_hf(path: str, op: str, dropout: float = 0.0) -> GPTConfig:
    """A GPTConfig from a Hugging Face GPT-2 config.json, refusing settings the model here cannot follow."""
    where = f"{op}: {path!r}"
    try:
        with open(path, encoding="utf-8") as file:
            hf = json.load(file)
    except (OSError, ValueError, RecursionError) as exc:
        raise TinygradTxError(f"{where} cannot be read as JSON ({type(exc).__name__})") from None
    if not isinstance(hf, dict):
        raise TinygradTxError(f"{where} must hold a JSON object, got {type(hf).__name__}")
    defaults = {"n_positions": 1024, "n_layer": 12, "n_head": 12, "n_embd": 768, "vocab_size": 50257}
    values = {key: hf.get(key, default) for key, default in defaults.items()}
    activation = hf.get("activation_function", "gelu_new")
    if activation not in ACTIVATIONS:
        raise TinygradTxError(f"{where}: activation_function {activation!r} is not one of {sorted(ACTIVATIONS)}")
    refused = {
        "layer_norm_epsilon": (1e-5, hf.get("layer_norm_epsilon", 1e-5)),
        "n_inner": (None, hf.get("n_inner")),
        "scale_attn_weights": (True, hf.get("scale_attn_weights", True)),
        "scale_attn_by_inverse_layer_idx": (False, hf.get("scale_attn_by_inverse_layer_idx", False)),
        "reorder_and_upcast_attn": (False, hf.get("reorder_and_upcast_attn", False)),
        "add_cross_attention": (False, hf.get("add_cross_attention", False)),
    }
    if isinstance(values["n_embd"], int) and refused["n_inner"][1] == 4 * values["n_embd"]:
        refused["n_inner"] = (None, None)
    for key, (supported, value) in refused.items():
        if value != supported:
            raise TinygradTxError(f"{where}: {key}={value!r} is not supported (GPT here has {key}={supported!r})")
    try:
        return GPTConfig(
            block_size=values["n_positions"],
            vocab_size=values["vocab_size"],
            n_layer=values["n_layer"],
            n_head=values["n_head"],
            n_embd=values["n_embd"],
            dropout=dropout,
            bias=True,
            gelu_approximate=ACTIVATIONS[activation],
        )
    except TinygradTxError as exc:
        raise TinygradTxError(f"{where}: {exc}") from None


def hf_to_gpt_name(name: str):
    """A Hugging Face GPT-2 tensor name -> nanoGPT's (the model's), or None for a buffer that is skipped."""
    name = name.removeprefix("transformer.")
    if name.endswith(SKIPPED):
        return None
    return name if name == "lm_head.weight" else "transformer." + name


def is_conv1d(name: str) -> bool:
    return name.endswith(CONV1D_WEIGHTS)


def check_hf_tensors(tensors: dict, config: GPTConfig, where: str) -> dict:
    """{file name: model name} for the tensors a file claims ({name: (dtype, shape)}), after checking every
    name, shape (the Conv1D weights transposed) and dtype against ``config``; one line naming the tensor."""
    expected = parameter_shapes(config)
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    for file_name, (dtype, shape) in tensors.items():
        name = hf_to_gpt_name(file_name)
        if name is None:
            continue
        if name not in expected:
            raise TinygradTxError(f"{where}: unexpected tensor {file_name!r} {tuple(shape)}: not a GPT-2 weight")
        if name in seen:
            raise TinygradTxError(f"{where}: tensor {file_name!r} duplicates {seen[name]!r}")
        want = expected[name][::-1] if is_conv1d(name) else expected[name]
        if tuple(shape) != want:
            layout = " (Conv1D layout: in, out)" if is_conv1d(name) else ""
            raise TinygradTxError(
                f"{where}: tensor {file_name!r} has shape {tuple(shape)}, the config.json model needs {want}{layout}"
            )
        if dtype not in FLOAT_DTYPES:
            raise TinygradTxError(f"{where}: tensor {file_name!r} is {dtype}, expected one of {FLOAT_DTYPES}")
        seen[name], mapping[file_name] = file_name, name
    missing = [name for name in expected if name not in seen and name != "lm_head.weight"]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise TinygradTxError(f"{where}: missing tensor {missing[0].removeprefix('transformer.')!r}{more}")
    return mapping


def read_hf_weights(path: str, config: GPTConfig, op: str) -> dict:
    """The model's state dict (float32 NumPy arrays, nanoGPT's names and layouts) from model.safetensors or
    pytorch_model.bin, every header checked before a tensor is read."""
    where = f"{op}: {path!r}"
    if path.endswith(".bin"):
        raw = _torch_load(path, where)
        tensors = {name: ("F32" if a.dtype.kind == "f" else str(a.dtype), a.shape) for name, a in raw.items()}
    else:
        tensors, _ = safetensors_header(path, op)
        raw = None
    mapping = check_hf_tensors(tensors, config, where)
    if raw is None:
        raw, _ = load_safetensors(path)
    state = {}
    for file_name, name in mapping.items():
        array = np.asarray(raw[file_name], dtype=np.float32)
        state[name] = np.ascontiguousarray(array.T) if is_conv1d(name) else array
    state["lm_head.weight"] = state["transformer.wte.weight"]  # tied: GPT-2's lm_head is its token embedding
    return state


def _torch_load(path: str, where: str) -> dict:
    if importlib.util.find_spec("torch") is None:
        raise TinygradTxError(
            f"{where}: reading pytorch_model.bin needs torch (pip install torch); model.safetensors does not"
        )
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, a refused global, a truncated zip: all one line
        first = (str(exc).splitlines() or [""])[0][:200]
        raise TinygradTxError(f"{where} cannot be read with torch.load(weights_only=True) ({first})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TinygradTxError(f"{where} does not hold a state dict of tensors")
    return {
        name: (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).detach().numpy()
        for name, tensor in state.items()
    }
