"""Training hyperparameters: one dataclass, its presets, and the rules for overriding them.

    options = parse_command_line(["--preset", "baby", "--config", "my.yaml", "--max_iters", "100"])
    options.config.learning_rate, options.explicit, options.resume, options.debug

Precedence, lowest first: the dataclass defaults (which are the ``cpu`` preset), the chosen preset,
a ``--config`` file (JSON, or YAML by its .yaml/.yml suffix; it may name the preset itself), then the
command line. Every field of ``TrainConfig`` is a ``--flag``; ``--help`` lists them with their defaults.
Any mistake raises ``ConfigError``, which the CLIs print as one ``error: ...`` line (exit status 2).
"""
import argparse
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
import typing
from typing import Optional

import yaml

from tinygrad_tx import backend
from tinygrad_tx.errors import TinygradTxError


class ConfigError(TinygradTxError):
    """A bad hyperparameter, preset, config file or command line."""


def _knob(default, help):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    # run directory and data
    out_dir: str = _knob("runs/shakespeare", "run directory: config.json, metrics.jsonl, loss.png, checkpoints")
    data: Optional[str] = _knob(None, "UTF-8 text file to train on (None: Tiny Shakespeare, found as train/data.py says)")
    tokenizer: str = _knob("char", "char (one id per character) or bpe (byte-level BPE trained on the train split)")
    vocab_size: int = _knob(512, "BPE vocabulary size, >= 256 (char takes its vocabulary from the text)")
    # model
    n_layer: int = _knob(4, "transformer blocks")
    n_head: int = _knob(4, "attention heads per block")
    n_embd: int = _knob(128, "embedding width (divisible by n_head)")
    block_size: int = _knob(64, "context length in tokens")
    dropout: float = _knob(0.0, "dropout probability while training")
    bias: bool = _knob(False, "biases in the Linears and LayerNorms")
    gelu_approximate: str = _knob("none", "GELU form: none (exact erf) or tanh")
    # optimisation
    batch_size: int = _knob(12, "sequences per micro-batch")
    gradient_accumulation_steps: int = _knob(1, "micro-batches per optimizer step (loss scaled by 1/steps)")
    max_iters: int = _knob(2000, "optimizer steps in total")
    learning_rate: float = _knob(1e-3, "peak learning rate")
    weight_decay: float = _knob(0.1, "AdamW decoupled weight decay on >= 2-D weights")
    beta1: float = _knob(0.9, "AdamW beta1")
    beta2: float = _knob(0.99, "AdamW beta2")
    grad_clip: float = _knob(1.0, "clip the global gradient norm to this (0 disables)")
    decay_lr: bool = _knob(True, "linear warmup then cosine decay (False: constant learning_rate)")
    warmup_iters: int = _knob(100, "warmup steps")
    lr_decay_iters: int = _knob(2000, "step where the cosine reaches min_lr")
    min_lr: float = _knob(1e-4, "learning rate floor")
    # evaluation and logging
    eval_interval: int = _knob(250, "steps between evaluations (and checkpoints)")
    eval_iters: int = _knob(20, "random batches per split in an evaluation")
    eval_full_val: bool = _knob(False, "val loss over the whole val split, in order, instead of random batches")
    log_interval: int = _knob(10, "steps between progress lines and metrics.jsonl records")
    sample_tokens: int = _knob(300, "tokens of the sample printed at the end (0: none)")
    # system
    device: str = _knob("cpu", "cpu or gpu (CuPy)")
    seed: int = _knob(1337, "seed of the weights, dropout, batches and the final sample")
    peak_flops: Optional[float] = _knob(None, "MFU denominator in FLOP/s (default: a GEMM timed once here; give it on a busy machine)")
    detect_anomaly: bool = _knob(False, "stop at the first NaN/Inf, naming the op (slow)")


# nanoGPT's two Shakespeare recipes: README's CPU run, and config/train_shakespeare_char.py for a GPU.
PRESETS = {
    "cpu": {},
    "baby": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2, max_iters=5000,
                 lr_decay_iters=5000, eval_iters=200),
}
DEFAULT_PRESET = "cpu"
FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# what a run's checkpoint fixes: resuming with a different value would not continue the same run
FROZEN_ON_RESUME = ("tokenizer", "vocab_size", "n_layer", "n_head", "n_embd", "block_size", "bias", "gelu_approximate")
METAVARS = {int: "N", float: "X", str: "TEXT"}
CHOICES = {"tokenizer": ("char", "bpe"), "gelu_approximate": ("none", "tanh")}


@dataclass
class CommandLine:
    config: TrainConfig
    explicit: dict   # the values given in the config file or on the command line (they win over a checkpoint's)
    resume: bool
    debug: bool


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):   # one "error: ..." line from main(), not argparse's usage dump
        raise ConfigError(message)


def build_parser(prog="python -m train.shakespeare"):
    parser = ArgumentParser(prog=prog, allow_abbrev=False, description="Train a GPT on a text file (default: Tiny Shakespeare), nanoGPT style. "
                     "Precedence: command line > --config file > --preset > defaults.")
    parser.add_argument("--preset", default=argparse.SUPPRESS, help=f"{' or '.join(PRESETS)} (default: {DEFAULT_PRESET})")
    parser.add_argument("--config", help="JSON or YAML file of hyperparameters (keys as the flags below)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out_dir from ckpt_last.npz")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    for name, spec in FIELDS.items():
        baby = PRESETS["baby"].get(name)
        shown = f"default: {spec.default}" + (f"; baby: {baby}" if baby is not None else "")
        if _base_type(name) is bool:
            parser.add_argument(f"--{name}", nargs="?", const="true", default=argparse.SUPPRESS, metavar="BOOL",
                                help=f"{spec.metadata['help']} ({shown})")
        else:
            parser.add_argument(f"--{name}", default=argparse.SUPPRESS, metavar=METAVARS[_base_type(name)],
                                help=f"{spec.metadata['help']} ({shown})")
    return parser


def parse_command_line(argv):
    """argv -> CommandLine; raises ConfigError for anything invalid (argparse's own errors included)."""
    args = vars(build_parser().parse_args(argv))
    resume, debug, config_path = args.pop("resume"), args.pop("debug"), args.pop("config")
    file_values = load_config_file(config_path) if config_path else {}
    preset = args.pop("preset", file_values.pop("preset", DEFAULT_PRESET))
    explicit = {**file_values, **{name: _coerce(name, value, "command line") for name, value in args.items()}}
    return CommandLine(make_config(preset, explicit), explicit, resume, debug)


def make_config(preset=DEFAULT_PRESET, overrides=None):
    """A validated TrainConfig: the preset's values with ``overrides`` (already-typed values) on top."""
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    config = TrainConfig(**{**PRESETS[preset], **(overrides or {})})
    validate(config)
    config.device = backend.normalize_device(config.device)   # our own new object: 'cuda' is stored as 'gpu'
    return config


def load_config_file(path):
    """The typed values of a JSON or YAML file of ``{name: value}``; unknown names are an error."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path!r} cannot be read ({exc})") from None
    try:
        values = yaml.safe_load(text) if path.endswith((".yaml", ".yml")) else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path!r} is not valid {'YAML' if path.endswith(('.yaml', '.yml')) else 'JSON'}: "
                          f"{str(exc).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of hyperparameters, got {type(values).__name__}")
    unknown = sorted(set(values) - set(FIELDS) - {"preset"})
    if unknown:
        raise ConfigError(f"config file {path!r}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"see --help for the names")
    source = f"config file {path!r}"
    return {name: value if name == "preset" else _coerce(name, value, source) for name, value in values.items()}


def _base_type(name):
    annotation = FIELDS[name].type
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Union else annotation


def _coerce(name, value, source):
    """``value`` (a string from the command line, or whatever a file held) as the field's type."""
    kind, optional = _base_type(name), FIELDS[name].default is None
    if optional and (value is None or str(value).lower() in ("none", "null")):
        return None
    if value is None:
        raise ConfigError(f"{source}: {name} needs a value, got none")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{source}: {name} must be true or false, got {value!r}")
    if kind is str:
        return str(value)
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if kind is int:
            if number != int(number):
                raise ValueError
            return int(number)
        return number
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{source}: {name} must be {'an integer' if kind is int else 'a number'}, "
                          f"got {value!r}") from None


def validate(config):
    """Raise ConfigError naming the first hyperparameter outside its range."""
    c = config
    for name in FIELDS:
        value = getattr(c, name)
        if _base_type(name) is float and value is not None and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value}")
    positive = ("learning_rate", "batch_size", "block_size", "n_layer", "n_head", "n_embd",
                "gradient_accumulation_steps", "eval_interval", "eval_iters", "log_interval", "lr_decay_iters")
    for name in positive:
        if not getattr(c, name) > 0:
            raise ConfigError(f"{name} must be > 0, got {getattr(c, name)}")
    for name in ("max_iters", "warmup_iters", "min_lr", "weight_decay", "grad_clip", "sample_tokens", "seed"):
        if not getattr(c, name) >= 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(c, name)}")
    if c.decay_lr and c.lr_decay_iters < c.warmup_iters:
        raise ConfigError(f"lr_decay_iters {c.lr_decay_iters} is below warmup_iters {c.warmup_iters}: the cosine "
                          "decay would end before the warmup does")
    if c.n_embd % c.n_head:
        raise ConfigError(f"n_embd {c.n_embd} is not divisible by n_head {c.n_head}")
    for name in ("dropout", "beta1", "beta2"):
        if not 0 <= getattr(c, name) < 1:
            raise ConfigError(f"{name} must be in [0, 1), got {getattr(c, name)}")
    for name, allowed in CHOICES.items():
        if getattr(c, name) not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(c, name)!r}")
    if c.tokenizer == "bpe" and c.vocab_size < 256:
        raise ConfigError(f"vocab_size must be >= 256 for the byte-level BPE tokenizer, got {c.vocab_size}")
    if c.peak_flops is not None and not c.peak_flops > 0:
        raise ConfigError(f"peak_flops must be > 0, got {c.peak_flops}")
    if not c.out_dir:
        raise ConfigError("out_dir must name a directory, got an empty string")
    if os.path.exists(c.out_dir) and not os.path.isdir(c.out_dir):
        raise ConfigError(f"out_dir {c.out_dir!r} is a file, not a directory: choose another --out_dir")
    backend.normalize_device(c.device)   # DeviceError (a TinygradTxError) for an unknown name; checks, never rewrites


def save_json(config, path):
    """Write the resolved config as JSON, atomically."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)
    os.replace(tmp, path)
