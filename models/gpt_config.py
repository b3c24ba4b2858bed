"""GPTConfig, and what can be known about a GPT before it is built: its parameters' names and shapes, and
how much memory it needs.

Files name a model by their metadata (``model_args``) and hold its tensors; a file can lie in both. Everything
here looks only at the config and the shapes a file claims, so a lying file or an impossible size is refused
in a fraction of a second, with nothing big allocated:

    config = config_from_model_args(text_or_dict, "GPT.from_npz: model.npz")   # types checked, one-line errors
    check_state_shapes({name: shape, ...}, config, "GPT.from_npz: model.npz")   # names and shapes vs the config
    require_memory(estimate_gpt_memory(config, batch_size=12, training=True), "train")

``estimate_gpt_memory`` is the one estimate of what a GPT needs: its parameters (float32), for training their
gradients and AdamW's two moments, and the activations one micro-batch of ``batch_size`` sequences keeps for
backward. ``require_memory`` compares it with the host memory available (MemAvailable of /proc/meminfo, else
os.sysconf's available pages) and names both in its error; a GPU run's device memory is not checked here.
"""

import dataclasses
import json
import os
from typing import Any, NamedTuple, Optional

from tinygrad_tx import normalize_device
from tinygrad_tx.errors import TinygradTxError

FLOAT32_BYTES = 4


@dataclasses.dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in the Linears and LayerNorms, as GPT-2; False is a bit better and faster
    # "none": the exact erf GELU (nanoGPT's nn.GELU()); "tanh": the tanh approximation, OpenAI GPT-2's gelu_new
    gelu_approximate: str = "none"

    def __post_init__(self) -> None:
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TinygradTxError(f"GPTConfig: {name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise TinygradTxError(f"GPTConfig: n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if not isinstance(self.dropout, (int, float)) or isinstance(self.dropout, bool) or not 0 <= self.dropout < 1:
            raise TinygradTxError(f"GPTConfig: dropout must be a number in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bias, bool):
            raise TinygradTxError(f"GPTConfig: bias must be true or false, got {self.bias!r}")
        if self.gelu_approximate not in ("none", "tanh"):
            raise TinygradTxError(
                f"GPTConfig: gelu_approximate must be 'none' or 'tanh', got {self.gelu_approximate!r}"
            )


def known_model_args(model_args: dict) -> dict:
    """The entries of ``model_args`` that GPTConfig has fields for (files may carry more, e.g. nanoGPT's)."""
    fields = {field.name for field in dataclasses.fields(GPTConfig)}
    return {key: value for key, value in model_args.items() if key in fields}


def config_from_model_args(model_args: Any, where: str) -> GPTConfig:
    """A GPTConfig from a file's model arguments: a JSON text or an already-decoded value. Anything else (not
    JSON, too deeply nested, not an object, a value of the wrong type) is a one-line TinygradTxError naming
    ``where`` (the op and the file)."""
    if isinstance(model_args, str):
        try:
            model_args = json.loads(model_args)
        except (ValueError, RecursionError) as exc:  # RecursionError: "[" * 200000
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
            raise TinygradTxError(f"{where}: model_args are not valid JSON ({reason})") from None
    if not isinstance(model_args, dict):
        raise TinygradTxError(
            f"{where}: model_args must be a JSON object of GPTConfig fields, got {type(model_args).__name__}"
        )
    try:
        return GPTConfig(**known_model_args(model_args))
    except TinygradTxError as exc:
        raise TinygradTxError(f"{where}: model_args: {exc}") from None


def parameter_shapes(config: GPTConfig) -> dict:
    """{name: shape} of a GPT's state dict for ``config`` (nanoGPT's names; the tied lm_head.weight included)."""
    c, v = config.n_embd, config.vocab_size
    shapes: dict[str, tuple[int, ...]] = {
        "transformer.wte.weight": (v, c),
        "transformer.wpe.weight": (config.block_size, c),
    }
    layer: dict[str, tuple[int, ...]] = {
        "ln_1.weight": (c,),
        "ln_1.bias": (c,),
        "attn.c_attn.weight": (3 * c, c),
        "attn.c_attn.bias": (3 * c,),
        "attn.c_proj.weight": (c, c),
        "attn.c_proj.bias": (c,),
        "ln_2.weight": (c,),
        "ln_2.bias": (c,),
        "mlp.c_fc.weight": (4 * c, c),
        "mlp.c_fc.bias": (4 * c,),
        "mlp.c_proj.weight": (c, 4 * c),
        "mlp.c_proj.bias": (c,),
    }
    for index in range(config.n_layer):
        for name, shape in layer.items():
            if config.bias or not name.endswith(".bias"):
                shapes[f"transformer.h.{index}.{name}"] = shape
    shapes["transformer.ln_f.weight"] = (c,)
    if config.bias:
        shapes["transformer.ln_f.bias"] = (c,)
    shapes["lm_head.weight"] = (v, c)
    return shapes


def parameter_count(config: GPTConfig) -> int:
    """The number of parameters of a GPT (the tied weight once), by arithmetic: no list of a billion layers."""
    c, biases = config.n_embd, config.bias
    per_layer = 12 * c * c + (13 * c if biases else 2 * c)  # c_attn, c_proj, c_fc, c_proj, two LayerNorms
    return (config.vocab_size + config.block_size) * c + config.n_layer * per_layer + (2 * c if biases else c)


def check_state_shapes(shapes: Any, config: GPTConfig, where: str) -> None:
    """TinygradTxError (one line, naming ``where``) unless ``shapes`` ({name: shape}, e.g. what a file's headers
    claim, or a state dict of arrays) are exactly the parameters of a GPT with ``config``: checked before
    anything is built."""
    if not isinstance(shapes, dict):
        shapes = {}
    shapes = {
        name: tuple(getattr(value, "shape", value if isinstance(value, tuple) else ()))
        for name, value in shapes.items()
    }
    entries = 4 + config.n_layer * 6 + (config.n_layer * 6 + 1 if config.bias else 0)
    if len(shapes) != entries:  # counted first: a lying n_layer must not make us list a billion names
        raise TinygradTxError(
            f"{where}: the file holds {len(shapes)} tensors but its model_args (n_layer={config.n_layer}, "
            f"bias={config.bias}) describe a GPT with {entries}"
        )
    expected = parameter_shapes(config)
    problems = []
    missing = [name for name in expected if name not in shapes]
    unexpected = [name for name in shapes if name not in expected]
    wrong = [
        f"{name} {tuple(shapes[name])} != {shape}"
        for name, shape in expected.items()
        if name in shapes and tuple(shapes[name]) != shape
    ]
    for label, names in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong)):
        if names:
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            problems.append(f"{label}: {', '.join(names[:3])}{more}")
    if problems:
        args = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(config).items() if k != "dropout")
        raise TinygradTxError(f"{where}: the tensors do not fit its model_args ({args}): {'; '.join(problems)}")


# ---------------------------------------------------------------- memory
class MemoryEstimate(NamedTuple):
    parameters: int  # bytes of the float32 weights
    optimizer: int  # gradients and AdamW's two moments (training only)
    activations: int  # what one micro-batch's forward keeps for backward (training) or computes (inference)

    @property
    def total(self) -> int:
        return self.parameters + self.optimizer + self.activations

    def describe(self) -> str:
        parts = [
            ("parameters", self.parameters),
            ("gradients and optimizer", self.optimizer),
            ("activations", self.activations),
        ]
        return ", ".join(f"{label} {format_bytes(size)}" for label, size in parts if size)


def estimate_gpt_memory(config: GPTConfig, batch_size: int = 0, training: bool = False) -> MemoryEstimate:
    """About how many bytes a GPT with ``config`` needs (float32): its parameters; for training their gradients
    and AdamW's moments (3x the parameters); and, for ``batch_size`` sequences of block_size tokens, the
    activations: per layer and token about 16 C values (LayerNorm outputs, q/k/v, the MLP's 4C hidden and its
    GELU, residuals) and 2 H T attention probabilities, plus the logits and their softmax (2 V per token).
    Python integers: an absurd config gives an absurd number, never an overflow."""
    count = parameter_count(config)
    tokens, c, t = batch_size * config.block_size, config.n_embd, config.block_size
    per_token = config.n_layer * (16 * c + 2 * config.n_head * t) + 2 * config.vocab_size + 2 * c
    return MemoryEstimate(
        parameters=FLOAT32_BYTES * count,
        optimizer=3 * FLOAT32_BYTES * count if training else 0,
        activations=FLOAT32_BYTES * tokens * per_token,
    )


def available_memory_bytes(device: str = "cpu") -> Optional[int]:
    """Bytes of host memory available now (MemAvailable of /proc/meminfo, else os.sysconf's available pages);
    None where that cannot be known, and for a GPU (its memory is not checked here): then nothing is refused."""
    if normalize_device(device) != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def require_memory(estimate: MemoryEstimate, what: str, device: str = "cpu") -> None:
    """TinygradTxError ``<what> needs about X (parameters ..., ...) but Y is available`` when ``estimate`` does
    not fit the memory available on ``device``; nothing is allocated either way."""
    available = available_memory_bytes(device)
    if available is not None and estimate.total > available:
        raise TinygradTxError(
            f"{what} needs about {format_bytes(estimate.total)} ({estimate.describe()}) but "
            f"{format_bytes(available)} of memory is available; "
            "choose a smaller model or batch"
        )


def format_bytes(size: int) -> str:
    """1536 -> '1.5 KiB'; sizes past PiB stay in PiB."""
    value, units = float(size), ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    for unit in units:
        if value < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
