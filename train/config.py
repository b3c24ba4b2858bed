"""The command lines' schemas: one dataclass per CLI, the training presets, and the rules a training config obeys.

Each field of ``TrainConfig`` (``python -m train.shakespeare``), ``SampleConfig`` (``python -m train.sample``) and
``VisualizeConfig`` (``python -m train.visualize``) is a ``--flag`` and a key of a ``--config`` file, typed by its
annotation and described by its ``help``; train/cli.py turns them into parsers. A new field is a new flag.

    config = make_config("baby", {"max_iters": 100})   # a validated TrainConfig
    config.learning_rate, config.n_layer

Any mistake raises ``ConfigError``, which the CLIs print as one ``error: ...`` line (exit status 2).
"""

import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, field
from typing import Literal, Optional

from tinygrad_tx import normalize_device
from tinygrad_tx.errors import TinygradTxError

CheckpointName = Literal["best", "last"]


class ConfigError(TinygradTxError):
    """A bad hyperparameter, preset, config file or command line."""


def _knob(default, help):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """What ``python -m train.shakespeare`` trains and how; its defaults are the ``cpu`` preset."""

    # run directory and data
    out_dir: str = _knob("runs/shakespeare", "run directory: config.json, metrics.jsonl, loss.png, checkpoints")
    data: Optional[str] = _knob(
        None, "UTF-8 text file to train on (null: Tiny Shakespeare, found as train/data.py says)"
    )
    tokenizer: Literal["char", "bpe"] = _knob(
        "char", "char (one id per character) or bpe (byte-level BPE trained on the train split)"
    )
    vocab_size: int = _knob(512, "BPE vocabulary size, >= 256 (char takes its vocabulary from the text)")
    init_from: Optional[str] = _knob(
        None,
        "fine-tune OpenAI GPT-2 (gpt2, gpt2-medium, ... or a Hugging Face directory): its model, weights and "
        "tokenizer replace n_layer, n_head, n_embd, bias, gelu_approximate and --tokenizer (docs/gpt2.md)",
    )
    # model
    n_layer: int = _knob(4, "transformer blocks")
    n_head: int = _knob(4, "attention heads per block")
    n_embd: int = _knob(128, "embedding width (divisible by n_head)")
    block_size: int = _knob(64, "context length in tokens")
    dropout: float = _knob(0.0, "dropout probability while training")
    bias: bool = _knob(False, "biases in the Linears and LayerNorms")
    gelu_approximate: Literal["none", "tanh"] = _knob("none", "GELU form: none (exact erf) or tanh")
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
    peak_flops: Optional[float] = _knob(
        None, "MFU denominator in FLOP/s (null: a GEMM timed once here; give it on a busy machine)"
    )
    detect_anomaly: bool = _knob(False, "stop at the first NaN/Inf, naming the op (slow)")
    # data-parallel (under mpiexec; docs/distributed.md)
    dist_backend: Literal["auto", "mpi", "nccl"] = _knob(
        "auto", "collectives: auto (NCCL for GPU runs when CuPy has it, else MPI), mpi or nccl"
    )
    zero: Literal[0, 1] = _knob(
        0, "ZeRO stage: 0 (every rank keeps all AdamW state) or 1 (the state sharded by whole tensors)"
    )
    bucket_mb: Optional[float] = _knob(
        None,
        "all-reduce gradients in buckets of this many MiB while backward runs "
        "(0: one flat all-reduce after backward; null: 25 with NCCL, else 0)",
    )


@dataclass
class SampleConfig:
    """What ``python -m train.sample`` draws; the model and its tokenizer come from the run's checkpoint, or with
    ``init_from`` from OpenAI GPT-2's files (docs/gpt2.md)."""

    out_dir: str = _knob("runs/shakespeare", "run directory of train.shakespeare (holds the checkpoints)")
    ckpt: CheckpointName = _knob("best", "which checkpoint: ckpt_best.npz or ckpt_last.npz")
    init_from: Optional[str] = _knob(
        None, "OpenAI GPT-2 instead of a run: gpt2, gpt2-medium, gpt2-large, gpt2-xl or a Hugging Face directory"
    )
    prompt: str = _knob("\n", "start text (the default is a newline), or FILE:path to read it from a file")
    prompt_file: Optional[str] = _knob(None, "read the start text from this file")
    num_samples: int = _knob(3, "samples to draw")
    max_new_tokens: int = _knob(500, "tokens per sample")
    temperature: float = _knob(0.8, "> 0; lower is more conservative")
    top_k: int = _knob(200, "keep the k most likely tokens, >= 1")
    top_p: Optional[float] = _knob(None, "nucleus sampling mass in (0, 1] (null: off)")
    seed: int = _knob(1337, "sampling seed")
    device: str = _knob("cpu", "cpu or gpu (CuPy)")


@dataclass
class VisualizeConfig:
    """What ``python -m train.visualize`` draws: the attention maps of a run's model over a prompt."""

    out_dir: str = field(metadata={"help": "run directory of train.shakespeare (holds the checkpoints)"})
    prompt: str = _knob("ROMEO:", "text whose attention is drawn")
    checkpoint: CheckpointName = _knob("best", "ckpt_best.npz or ckpt_last.npz")
    save_dir: Optional[str] = _knob(None, "where the PNGs go (null: --out_dir)")


# nanoGPT's two Shakespeare recipes: README's CPU run, and config/train_shakespeare_char.py for a GPU.
PRESETS: dict[str, dict[str, typing.Any]] = {
    "cpu": {},
    "baby": dict(
        n_layer=6,
        n_head=6,
        n_embd=384,
        block_size=256,
        batch_size=64,
        dropout=0.2,
        max_iters=5000,
        lr_decay_iters=5000,
        eval_iters=200,
    ),
    # nanoGPT's config/finetune_shakespeare.py (GPT-2 124M, batch 1 x 32 accumulation x 1024 tokens, a small
    # constant learning rate, 20 steps), with fewer evaluation batches so that it stays a CPU run
    "finetune": dict(
        init_from="gpt2",
        block_size=1024,
        batch_size=1,
        gradient_accumulation_steps=32,
        max_iters=20,
        learning_rate=3e-5,
        decay_lr=False,
        eval_interval=10,
        eval_iters=10,
        log_interval=1,
        sample_tokens=100,
    ),
}
DEFAULT_PRESET = "cpu"
# what a run's checkpoint fixes: resuming with a different value would not continue the same run
FROZEN_ON_RESUME = (
    "init_from",
    "tokenizer",
    "vocab_size",
    "n_layer",
    "n_head",
    "n_embd",
    "block_size",
    "bias",
    "gelu_approximate",
)


def make_config(preset: str = DEFAULT_PRESET, overrides: Optional[dict] = None) -> TrainConfig:
    """A validated TrainConfig: the preset's values with ``overrides`` (already-typed values) on top."""
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    config = TrainConfig(**{**PRESETS[preset], **(overrides or {})})
    validate(config)
    return dataclasses.replace(config, device=normalize_device(config.device))


def validate(config: TrainConfig) -> None:
    """Raise ConfigError naming the first hyperparameter outside its range; ``config`` is left as it is."""
    c = config
    types = typing.get_type_hints(TrainConfig)
    for spec in dataclasses.fields(c):
        value = getattr(c, spec.name)
        if (
            float in (types[spec.name], *typing.get_args(types[spec.name]))
            and value is not None
            and not math.isfinite(value)
        ):
            raise ConfigError(f"{spec.name} must be a finite number, got {value}")
    positive = (
        "learning_rate",
        "batch_size",
        "block_size",
        "n_layer",
        "n_head",
        "n_embd",
        "gradient_accumulation_steps",
        "eval_interval",
        "eval_iters",
        "log_interval",
        "lr_decay_iters",
    )
    for name in positive:
        if not getattr(c, name) > 0:
            raise ConfigError(f"{name} must be > 0, got {getattr(c, name)}")
    for name in ("max_iters", "warmup_iters", "min_lr", "weight_decay", "grad_clip", "sample_tokens", "seed"):
        if not getattr(c, name) >= 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(c, name)}")
    if c.decay_lr and c.lr_decay_iters < c.warmup_iters:
        raise ConfigError(
            f"lr_decay_iters {c.lr_decay_iters} is below warmup_iters {c.warmup_iters}: the cosine "
            "decay would end before the warmup does"
        )
    if c.n_embd % c.n_head:
        raise ConfigError(f"n_embd {c.n_embd} is not divisible by n_head {c.n_head}")
    for name in ("dropout", "beta1", "beta2"):
        if not 0 <= getattr(c, name) < 1:
            raise ConfigError(f"{name} must be in [0, 1), got {getattr(c, name)}")
    for name in ("tokenizer", "gelu_approximate", "dist_backend", "zero"):
        allowed = typing.get_args(types[name])
        if getattr(c, name) not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(map(str, allowed))}, got {getattr(c, name)!r}")
    if c.tokenizer == "bpe" and c.vocab_size < 256:
        raise ConfigError(f"vocab_size must be >= 256 for the byte-level BPE tokenizer, got {c.vocab_size}")
    if c.bucket_mb is not None and not c.bucket_mb >= 0:
        raise ConfigError(f"bucket_mb must be >= 0 (or null), got {c.bucket_mb}")
    if c.peak_flops is not None and not c.peak_flops > 0:
        raise ConfigError(f"peak_flops must be > 0, got {c.peak_flops}")
    if not c.out_dir:
        raise ConfigError("out_dir must name a directory, got an empty string")
    if os.path.exists(c.out_dir) and not os.path.isdir(c.out_dir):
        raise ConfigError(f"out_dir {c.out_dir!r} is a file, not a directory: choose another --out_dir")
    normalize_device(c.device)  # DeviceError (a TinygradTxError) for an unknown name


def save_json(config: TrainConfig, path: str) -> None:
    """Write the resolved config as JSON, atomically."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)
    os.replace(tmp, path)
