"""The training loop: nanoGPT's train.py on tinygrad_tx.

    trainer = Trainer(config, tokenizer, train_ids, val_ids)   # or resume=load_checkpoint(path)
    summary = trainer.run()          # {"best_val_loss", "final_val_loss", "iterations", "tokens_per_s", ...}
    print(trainer.sample(300))

One iteration: learning rate from the warmup + cosine schedule; ``gradient_accumulation_steps``
micro-batches, each loss scaled by 1/steps before backward; the global gradient norm clipped;
AdamW's step. Every ``eval_interval`` steps (and at the end) the train and val losses are estimated
under no_grad in eval mode, metrics.jsonl and loss.png are refreshed, and ckpt_last.npz (plus
ckpt_best.npz when val improved) is written.

Exact resume. A checkpoint holds everything the rest of the run depends on: weights, AdamW state,
the iteration, and the states of both random streams (the engine's, which dropout draws from, and
the batch sampler's) as they were after the last completed step. Evaluation batches come from a
generator seeded by (seed, iteration), so evaluating never moves the training streams, and a run
resumed from any checkpoint logs the same losses as one that never stopped. The optimizer update is
shielded from Ctrl-C, so an interrupted step is either wholly applied or not at all; the
interrupted run then saves ckpt_last.npz and raises ``TrainingInterrupted``. On a GPU the CuPy
dropout stream is not saved: resuming a GPU run with dropout > 0 is not bit-exact.
"""

import contextlib
import copy
import dataclasses
import json
import math
import os
import sys
import time
import typing

import numpy as np

from models.gpt import GPT, GPTConfig
from models.gpt_config import check_state_shapes, estimate_gpt_memory, require_memory
from tinygrad_tx import (
    Tensor,
    detect_anomaly,
    get_rng_state,
    manual_seed,
    no_grad,
    normalize_device,
    set_rng_state,
    synchronize,
)
from tinygrad_tx.distributed import SingleProcess
from tinygrad_tx.optim import cosine_lr
from train.checkpoint import save_checkpoint
from train.config import CheckpointName, ConfigError, save_json
from train.data import cache_dir, get_batch, iter_batches
from train.distributed import DataParallel, ctrl_c_deferred
from train.gradflow import plot_gradient_flow
from train.plots import plot_losses
from train.progress import Progress, peak_flops_for

CHECKPOINT_NAMES = typing.get_args(CheckpointName)  # ("best", "last")
# seed-sequence tags: the batch streams must not replay the engine's generator (seeded by the seed alone)
TRAIN_BATCH_STREAM, EVAL_BATCH_STREAM = 1, 2


def checkpoint_path(out_dir, name):
    return os.path.join(out_dir, f"ckpt_{name}.npz")


class TrainingInterrupted(Exception):
    """Ctrl-C during training; ``path`` is the checkpoint saved before stopping."""

    def __init__(self, iteration, path):
        super().__init__(f"interrupted at iteration {iteration}; saved {path} (continue with --resume)")
        self.iteration, self.path = iteration, path


class Trainer:
    def __init__(self, config, tokenizer, train_ids, val_ids, resume=None, out=None, comm=None):
        """``resume``: a checkpoint payload (``train.checkpoint.load_checkpoint``) to continue from.
        ``comm``: a ``tinygrad_tx.distributed`` communicator for data-parallel runs (train/distributed.py)."""
        config = copy.copy(config)  # ours to complete (device, peak_flops): the caller's object is never written
        config.device = normalize_device(config.device)
        self.config, self.tokenizer, self.out = config, tokenizer, out or sys.stdout
        self.dist = DataParallel(config, comm or SingleProcess())
        self.is_main = self.dist.rank == 0  # rank 0 alone writes the run directory
        self.splits = {"train": train_ids, "val": val_ids}
        self._grad_norms = {}  # per-layer gradient norms of the last logged step (train/gradflow.py)
        c = config
        for split, ids in self.splits.items():
            if len(ids) <= c.block_size:
                raise ConfigError(
                    f"block_size {c.block_size} is longer than the {split} split: it has {len(ids)} "
                    f"tokens and a batch needs at least {c.block_size + 1}; use a smaller --block_size"
                )
        manual_seed(c.seed)
        self.model_args = GPTConfig(
            block_size=c.block_size,
            vocab_size=tokenizer.vocab_size,
            n_layer=c.n_layer,
            n_head=c.n_head,
            n_embd=c.n_embd,
            dropout=c.dropout,
            bias=c.bias,
            gelu_approximate=c.gelu_approximate,
        )
        need = estimate_gpt_memory(self.model_args, c.batch_size, training=True)
        require_memory(need, f"training (batch_size {c.batch_size} x block_size {c.block_size}, n_embd {c.n_embd})",
                       c.device)  # fmt: skip
        if resume is not None:  # the checkpoint's weights must fit this model before it is built
            check_state_shapes(resume.get("model"), self.model_args, "--resume: the checkpoint's model")
        self.model = GPT(self.model_args).to(c.device)
        self.optimizer = self.model.configure_optimizers(c.weight_decay, c.learning_rate, (c.beta1, c.beta2))
        if c.zero:
            self.optimizer = self.dist.shard_optimizer(self.optimizer)
        self.dist.seed_dropout(c.seed)
        self.batch_rng = np.random.default_rng([c.seed, TRAIN_BATCH_STREAM])
        self.iter_num, self.best_val_loss, self.records = 0, math.inf, []
        self.train_seconds, self._mark, self._steps_since_mark = 0.0, time.perf_counter(), 0
        if resume is not None:
            self._restore(resume)
        self._completed_step()
        self.peak_note = f"{(c.peak_flops or 0) / 1e9:.0f} GFLOP/s, given by peak_flops"
        if c.peak_flops is None:
            c.peak_flops, self.peak_note = peak_flops_for(c.device, cache_dir())
        if not self.is_main:
            return
        try:
            os.makedirs(c.out_dir, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the run directory {c.out_dir!r}: {exc.strerror}") from None
        save_json(c, os.path.join(c.out_dir, "config.json"))
        tokenizer.save(os.path.join(c.out_dir, "tokenizer.json"))
        self._rewrite_metrics()

    # ---------------------------------------------------------------- the loop
    def run(self):
        """Train to ``max_iters``; returns a summary dict. Raises TrainingInterrupted on Ctrl-C."""
        c = self.config
        tokens_per_iter = c.batch_size * c.block_size * c.gradient_accumulation_steps
        started, first_iter = time.perf_counter(), self.iter_num
        self._mark = time.perf_counter()
        progress = Progress(c.max_iters, self.iter_num, self.out)
        try:
            with detect_anomaly(c.detect_anomaly), self.dist.ctrl_c_at_step_boundary():
                while True:
                    if self.iter_num % c.eval_interval == 0 or self.iter_num == c.max_iters:
                        self._evaluate(progress)
                    if self.iter_num >= c.max_iters:
                        break
                    loss = self._forward_backward()
                    # the update and its log line happen wholly or not at all (W > 1: Ctrl-C is already held)
                    with ctrl_c_deferred() if not self.dist.active else contextlib.nullcontext():
                        self._update()
                        progress.advance()
                        if (self.iter_num - 1) % c.log_interval == 0:
                            self._log_step(
                                self.iter_num - 1,
                                loss.item() * c.gradient_accumulation_steps,
                                tokens_per_iter,
                                progress,
                            )
                    if self.dist.stop_agreed:  # a Ctrl-C reached some rank: every rank stops after this step
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            progress.close()
            raise TrainingInterrupted(self.iter_num, self.save("last")) from None
        progress.close()
        self._close_mark()
        trained = self.iter_num - first_iter
        evals = [r for r in self.records if r["kind"] == "eval"]
        return {
            "iterations": self.iter_num,
            "best_val_loss": self.best_val_loss,
            "final_val_loss": evals[-1]["val_loss"] if evals else None,
            "final_train_loss": evals[-1]["train_loss"] if evals else None,
            "wall_seconds": time.perf_counter() - started,
            "train_seconds": self.train_seconds,
            "tokens_per_s": trained * tokens_per_iter / self.train_seconds if trained else None,
            "mfu": self._mfu(self.train_seconds / trained) if trained else None,
        }

    def _lr(self, iteration):
        c = self.config
        return (
            cosine_lr(iteration, c.learning_rate, c.min_lr, c.warmup_iters, c.lr_decay_iters)
            if c.decay_lr
            else c.learning_rate
        )

    def _forward_backward(self):
        """Gradients of gradient_accumulation_steps micro-batches, each loss scaled by 1/steps; returns the
        last micro-batch's scaled loss. With W ranks, this rank's share of the micro-batches, then the
        gradients summed over ranks (train/distributed.py)."""
        c = self.config
        batches = self.dist.rank_batches(self.train_batch)
        for number, (x, y) in enumerate(batches):
            _, loss = self.model(x, y)
            loss = loss / c.gradient_accumulation_steps
            last = number == len(batches) - 1  # its backward may already send gradients to the other ranks
            with self.dist.last_micro_step(list(self.model.parameters()), loss) if last else contextlib.nullcontext():
                loss.backward()
        if self.dist.active:
            loss = Tensor(self.dist.reduce_gradients())
        return loss

    def train_batch(self):
        """The next training micro-batch (x, y), drawn from the checkpointed batch stream.

        Override it (with ``eval_batches``) to feed the loop another sampler's batches, as
        bench/nanogpt_parity.py does to replay nanoGPT's.
        """
        c = self.config
        return get_batch(self.splits["train"], c.batch_size, c.block_size, c.device, self.batch_rng)

    def eval_batches(self, split):
        """The eval_iters random (x, y) batches of ``split`` for an evaluation at the current iteration,
        from a generator seeded by (seed, iteration, split) so evaluating never moves the training streams."""
        c = self.config
        rng = np.random.default_rng([c.seed, EVAL_BATCH_STREAM, self.iter_num, list(self.splits).index(split)])
        data = self.splits[split]
        return [get_batch(data, c.batch_size, c.block_size, c.device, rng) for _ in range(c.eval_iters)]

    def _update(self):
        """Clip, step at the scheduled learning rate, and count the step done."""
        lr = self._lr(self.iter_num)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        logged = self.iter_num % self.config.log_interval == 0  # this step gets a log line: record the gradient flow
        norms = self.dist.clip_and_measure(self.model, self.config.grad_clip, logged)
        if logged:
            self._grad_norms = norms
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.iter_num += 1
        self._steps_since_mark += 1
        self._completed_step()

    def _completed_step(self):
        """Snapshot the random streams: a checkpoint must hold them as of the last completed step."""
        self.rng_state = {"engine": get_rng_state(), "batch": self.batch_rng.bit_generator.state}

    # ---------------------------------------------------------------- evaluation, logging, checkpoints
    @no_grad()
    def estimate_loss(self):
        """{"train": mean loss, "val": mean loss} on eval_iters random batches (or the whole val split)."""
        c = self.config
        self.model.eval()
        losses = {}
        for split, data in self.splits.items():
            if split == "val" and c.eval_full_val:
                losses[split] = self.split_loss(data)
            else:
                losses[split] = float(np.mean([self.model(x, y)[1].item() for x, y in self.eval_batches(split)]))
        self.model.train()
        return losses

    @no_grad()
    def split_loss(self, data):
        """Mean loss over every next-token target of ``data``, in order (deterministic, no sampling noise)."""
        c = self.config
        was_training = self.model.training
        self.model.eval()
        total = count = 0
        for x, y in iter_batches(data, c.batch_size, c.block_size, c.device):
            total += self.model(x, y)[1].item() * y.size
            count += y.size
        self.model.train(was_training)
        return total / count

    def _evaluate(self, progress):
        self._close_mark()
        self.dist.check_parameters(self.model, self.iter_num)
        losses = self.estimate_loss()
        improved = losses["val"] < self.best_val_loss
        self.best_val_loss = min(self.best_val_loss, losses["val"])
        self._record(
            {
                "kind": "eval",
                "iter": self.iter_num,
                "train_loss": losses["train"],
                "val_loss": losses["val"],
                "lr": self._lr(self.iter_num),
            }
        )
        progress.message(
            f"step {self.iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
            + (" (best)" if improved else "")
        )
        if self.is_main:
            plot_losses(
                self.records,
                os.path.join(self.config.out_dir, "loss.png"),
                title=f"{os.path.basename(os.path.abspath(self.config.out_dir))}: loss",
            )
            plot_gradient_flow(self.records, os.path.join(self.config.out_dir, "gradflow.png"))
        self.save("last")
        if improved:
            self.save("best")
        self._mark = time.perf_counter()

    def _log_step(self, iteration, loss, tokens_per_iter, progress):
        synchronize(self.config.device)
        seconds_per_iter = self._close_mark()
        record = {
            "kind": "train",
            "iter": iteration,
            "loss": loss,
            "lr": self._lr(iteration),
            "grad_norms": self._grad_norms,
        }
        if seconds_per_iter:
            record.update(
                ms_per_iter=1000 * seconds_per_iter,
                tokens_per_s=tokens_per_iter / seconds_per_iter,
                mfu=self._mfu(seconds_per_iter),
            )
        self._record(record)
        progress.report(record)

    def _close_mark(self):
        """Seconds per step since the last mark (None if no step), added to train_seconds; starts a new mark."""
        now = time.perf_counter()
        elapsed, steps = now - self._mark, self._steps_since_mark
        self.train_seconds += elapsed if steps else 0.0
        self._mark, self._steps_since_mark = now, 0
        return elapsed / steps if steps else None

    def _mfu(self, seconds_per_iter):
        c = self.config
        return self.model.estimate_mfu(
            c.batch_size * c.gradient_accumulation_steps, seconds_per_iter, c.peak_flops * self.dist.world_size
        )

    def _record(self, record):
        self.records.append(record)
        if not self.is_main:
            return
        with open(os.path.join(self.config.out_dir, "metrics.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _rewrite_metrics(self):
        """Keep the records of the steps before ``iter_num`` (those of a resumed run); later ones are redone.

        A last line that a kill or a full disk cut short is dropped, and the file is replaced atomically.
        """
        path = os.path.join(self.config.out_dir, "metrics.jsonl")
        if self.iter_num and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self.records = [r for r in map(_parse_record, f) if r is not None and r["iter"] < self.iter_num]
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in self.records)
        os.replace(tmp, path)

    def save(self, name):
        """Write ckpt_<name>.npz (atomically) and return its path. With W ranks every rank calls it (the
        ZeRO-1 state and the ranks' dropout generators are gathered); rank 0 writes, the others wait."""
        path = checkpoint_path(self.config.out_dir, name)
        optimizer_state, rng = self.optimizer.state_dict(), self.dist.checkpoint_rng(self.rng_state)
        if self.is_main:
            save_checkpoint(
                path,
                {
                    "model": self.model.state_dict(),
                    "optimizer": optimizer_state,
                    "iter_num": self.iter_num,
                    "best_val_loss": self.best_val_loss,
                    "config": dataclasses.asdict(self.config),
                    "model_args": dataclasses.asdict(self.model_args),
                    "tokenizer": self.tokenizer.to_dict(),
                    "rng": rng,
                },
            )
        self.dist.comm.barrier()  # nobody leaves (and may end the job) before the file is in place
        return path

    def _restore(self, payload):
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.iter_num, self.best_val_loss = int(payload["iter_num"]), float(payload["best_val_loss"])
        set_rng_state(payload["rng"]["engine"])
        self.dist.restore_dropout(payload["rng"], self.config.seed)
        self.batch_rng.bit_generator.state = payload["rng"]["batch"]

    def sample(self, max_new_tokens, prompt="\n", temperature=0.8, top_k=200):
        """Text generated from ``prompt`` (nanoGPT's sample.py defaults), in eval mode."""
        self.model.eval()
        ids = self.tokenizer.encode(prompt)
        tokens = self.model.generate(
            Tensor(np.array([ids]), device=self.config.device), max_new_tokens, temperature=temperature, top_k=top_k
        )
        self.model.train()
        return self.tokenizer.decode(tokens.numpy()[0, len(ids) :].tolist())


def _parse_record(line):
    """One metrics.jsonl record, or None for a line cut short."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None
