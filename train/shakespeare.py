"""Train a character-level (or BPE) GPT on Tiny Shakespeare, as nanoGPT's train.py does.

    python -m train.shakespeare                                  # the cpu preset: ~1.9 val loss
    python -m train.shakespeare --preset baby --device gpu       # nanoGPT's shakespeare_char recipe
    python -m train.shakespeare --config my.yaml --max_iters 500 --out_dir runs/mine
    python -m train.shakespeare --out_dir runs/mine --resume --max_iters 4000
    python -m train.shakespeare --out_dir runs/mine --overwrite      # a new run replacing the one in runs/mine
    python -m train.sample --out_dir runs/mine --prompt "ROMEO:"
    python -m train.shakespeare --preset finetune --out_dir runs/gpt2   # fine-tune OpenAI GPT-2 (docs/gpt2.md)
    mpiexec -n 2 python -m mpi4py -m train.shakespeare --gradient_accumulation_steps 2   # docs/distributed.md

``--help`` lists every hyperparameter with its default; ``--print_config`` prints the resolved
config as YAML, which ``--config`` reads back (train/cli.py). The run directory gets config.json,
metrics.jsonl, loss.png, tokenizer.json, ckpt_best.npz and ckpt_last.npz; a folder that already holds a run
is refused unless --resume continues it or --overwrite replaces it. Exit status: 0 done,
1 a NaN/Inf caught by --detect_anomaly, 2 a usage error (one ``error: ...`` line on stderr; --debug
shows the traceback), 130 Ctrl-C (after saving ckpt_last.npz). Under mpiexec every rank runs this;
rank 0 alone prints and writes, and a rank that fails ends the whole job with its exit status.
"""

import dataclasses
import io
import os
import sys

from models.pretrained import WEIGHT_FILES, config_from_hf, load_pretrained, locate_files
from tinygrad_tx import TinygradTxError, distributed, require_device, tune_for_training
from train.checkpoint import load_checkpoint
from train.cli import dump, parse_command_line, run
from train.config import FROZEN_ON_RESUME, ConfigError, TrainConfig, make_config
from train.data import TinyShakespeare, split_data
from train.gpt2_tokenizer import GPT2Tokenizer
from train.progress import mfu_text
from train.tokenizers import BPETokenizer, CharTokenizer, Tokenizer
from train.trainer import Trainer, TrainingInterrupted, checkpoint_path

TRAIN_FRACTION = 0.9


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    status = _run(argv)
    if status:  # under mpiexec one failing rank must not leave the others waiting in a collective
        distributed.abort_other_ranks(status)
    return status


def _run(argv):
    world_size = distributed.launched_world_size()
    rank_prefix = f"[rank {distributed.launched_rank()}/{world_size}] " if world_size > 1 else ""
    try:
        return run(lambda: _naming_the_rank(lambda: train(parse_command_line(argv)), rank_prefix), argv)
    except TrainingInterrupted as stop:  # under mpiexec every rank stopped at the same step and gets here
        print(f"\n{rank_prefix}{stop}", file=sys.stderr)
        distributed.exit_together(130)
        return 130
    except KeyboardInterrupt:  # before the first step: nothing trained, nothing to save
        print(
            f"\n{rank_prefix}interrupted before training started; nothing was written to the checkpoints",
            file=sys.stderr,
        )
        return 130


def train(command):
    """Set up the data, tokenizer and model for ``command`` (a train.cli.CommandLine), train, print a sample."""
    config, resume = command.config, None
    if command.resume and command.overwrite:
        raise ConfigError("--resume continues the run in --out_dir and --overwrite replaces it: give one of them")
    if command.resume:
        path = checkpoint_path(config.out_dir, "last")
        if not os.path.exists(path):
            raise ConfigError(f"--resume: no checkpoint to resume from in {config.out_dir!r} ({path} does not exist)")
        resume = load_checkpoint(path)
        config = resumed_config(resume["config"], command.explicit)
    if command.print_config:
        print(dump(config), end="")
        return 0
    if resume is None and not command.overwrite:
        refuse_to_replace_a_run(config.out_dir)
    require_device(config.device)  # a GPU run without CuPy or a GPU stops here, before any work
    comm = distributed.init_communicator(config.dist_backend, config.device)  # no mpi4py under mpiexec: exit 2
    say = print if comm.is_main else _silent
    dataset = TinyShakespeare(config.data)
    if resume is None and config.init_from:  # OpenAI GPT-2: its architecture and tokenizer come with it
        config, tokenizer = pretrained_setup(config)
    elif resume is not None:
        tokenizer = Tokenizer.from_dict(resume["tokenizer"])
    elif config.tokenizer == "char":
        tokenizer = CharTokenizer.from_text(dataset.text)
    else:  # trained on the training split only, so nothing of the val text leaks into the vocabulary
        tokenizer = BPETokenizer.train(split_data(dataset.text, TRAIN_FRACTION)[0], config.vocab_size)
    train_ids, val_ids = split_data(dataset.encode(tokenizer), TRAIN_FRACTION)
    say(f"{dataset}: {len(train_ids):,} train and {len(val_ids):,} val tokens, {tokenizer}", flush=True)
    tune_for_training()  # the process-wide settings of a training program (the Trainer changes none)
    trainer = Trainer(
        config, tokenizer, train_ids, val_ids, resume=resume, out=None if comm.is_main else _NullStream(), comm=comm
    )
    if resume is None and config.init_from:
        load_pretrained_weights(trainer.model, config)
        say(f"weights of {config.init_from} loaded (OpenAI GPT-2)", flush=True)
    if comm.world_size > 1:
        say(trainer.dist.describe(config, trainer.optimizer), flush=True)
    say(
        f"GPT with {trainer.model.num_params() / 1e6:.2f}M parameters on {config.device}; "
        f"{'resuming at iteration ' + str(trainer.iter_num) if resume else 'training'} to {config.max_iters}; "
        f"run directory {config.out_dir}",
        flush=True,
    )
    say(f"MFU against {trainer.peak_note}", flush=True)
    summary = trainer.run()
    say(
        f"done: {summary['iterations']} iterations in {summary['wall_seconds']:.1f} s; "
        f"final val loss {summary['final_val_loss']:.4f}, best {summary['best_val_loss']:.4f}"
        + (f"; {summary['tokens_per_s']:,.0f} tokens/s, {mfu_text(summary['mfu'])}" if summary["tokens_per_s"] else ""),
        flush=True,
    )
    if config.sample_tokens and comm.is_main:
        print(f"--- sample ({config.sample_tokens} tokens, temperature 0.8, top_k 200) ---")
        start = "\n" if "\n" in dataset.text else dataset.text[0]  # nanoGPT starts from a newline
        print(trainer.sample(config.sample_tokens, prompt=start), flush=True)
    return 0


def pretrained_setup(config):
    """(config with GPT-2's architecture from ``init_from``'s config.json, GPT-2's tokenizer). The weights are loaded
    into the Trainer's model by ``load_pretrained_weights``; block_size may be shorter than GPT-2's (cropped)."""
    config_path, _ = locate_files(config.init_from, [("config.json",), WEIGHT_FILES], "--init_from")
    gpt2 = config_from_hf(config_path, "--init_from")
    if config.block_size > gpt2.block_size:
        raise ConfigError(f"block_size {config.block_size} is longer than {config.init_from}'s {gpt2.block_size}")
    settings = dict(n_layer=gpt2.n_layer, n_head=gpt2.n_head, n_embd=gpt2.n_embd, bias=True)
    config = dataclasses.replace(config, gelu_approximate=gpt2.gelu_approximate, **settings)
    tokenizer = GPT2Tokenizer.from_pretrained(config.init_from)
    if tokenizer.vocab_size != gpt2.vocab_size:
        raise ConfigError(
            f"--init_from {config.init_from}: its tokenizer has {tokenizer.vocab_size} tokens, "
            f"its model {gpt2.vocab_size}"
        )
    return config, tokenizer


def load_pretrained_weights(model, config):
    """GPT-2's weights into the Trainer's freshly built model, in place (the optimizer holds these parameters);
    the position embeddings cropped to block_size, as nanoGPT's crop_block_size."""
    state, _ = load_pretrained(config.init_from, "--init_from")
    state["transformer.wpe.weight"] = state["transformer.wpe.weight"][: config.block_size]
    model.load_state_dict(state)


RUN_FILES = ("ckpt_last.npz", "ckpt_best.npz", "metrics.jsonl")  # what a new run in the same folder would replace


def refuse_to_replace_a_run(out_dir):
    """ConfigError when ``out_dir`` already holds a run's checkpoints or metrics: a new run there would
    replace them, so it takes --resume (continue it) or --overwrite (replace it)."""
    found = [name for name in RUN_FILES if os.path.exists(os.path.join(out_dir, name))]
    if found:
        raise ConfigError(
            f"out_dir {out_dir!r} already holds a run ({', '.join(found)}): continue it with --resume, "
            "replace it with --overwrite, or choose another --out_dir"
        )


def _naming_the_rank(command, rank_prefix):
    """``command()``; under mpiexec a user error's line starts with the rank that raised it."""
    try:
        return command()
    except TinygradTxError as exc:
        if rank_prefix and len(exc.args) == 1:
            exc.args = (f"{rank_prefix}{exc.args[0]}",)
        raise


def _silent(*args, **kwargs):
    """print for the ranks other than 0."""


class _NullStream(io.TextIOBase):
    """The progress output of the ranks other than 0."""

    def write(self, text):
        return len(text)


def resumed_config(saved, explicit):
    """The checkpoint's config with the explicitly given values on top; the model, tokenizer and
    context cannot change mid-run."""
    if not isinstance(saved, dict) or not all(isinstance(name, str) for name in saved):
        raise ConfigError(f"--resume: the checkpoint's config is not a mapping of settings, got {type(saved).__name__}")
    unknown = sorted(set(saved) - {spec.name for spec in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ConfigError(f"--resume: the checkpoint's config has unknown settings {unknown}")
    for name in FROZEN_ON_RESUME:
        if name in explicit and explicit[name] != saved.get(name):
            raise ConfigError(
                f"--resume: {name} is {saved[name]!r} in the checkpoint but {explicit[name]!r} was "
                f"given; a resumed run keeps its model and tokenizer (start a new --out_dir instead)"
            )
    return make_config(overrides={**saved, **explicit})


if __name__ == "__main__":
    sys.exit(main())
