"""Data-parallel training: the trainer's side of ``tinygrad_tx.distributed``, with nanoGPT's semantics.

    dp = DataParallel(config, comm)                   # comm from init_communicator(); SingleProcess: a no-op
    optimizer = dp.shard_optimizer(optimizer)         # --zero 1: each rank keeps AdamW state for its tensors
    for x, y in dp.rank_batches(trainer.train_batch): ...
        with dp.last_micro_step(params, loss): loss.backward()   # on the last micro-step
    last_loss = dp.reduce_gradients(); norms = dp.clip_and_measure(model, grad_clip, measure)

The rules (docs/distributed.md explains each):
- ``batch_size`` is per rank; ``gradient_accumulation_steps`` (G) is the global count and is split:
  each of the W ranks runs G / W micro-steps. Every rank draws all G micro-batches from the same
  seeded stream and keeps its own, so the global batch, and a checkpoint's data position, do not
  depend on W: W ranks x B equals one process x W.B.
- Each micro-loss is scaled by 1/G and the gradients are summed over ranks, so the sum is the one a
  single process accumulates. One flat all-reduce per optimizer step carries the gradients, the
  last micro-batch's loss (what the log shows, as before) and the Ctrl-C flag. With ``bucket_mb``
  the gradients travel instead in buckets, each all-reduced as soon as its tensors' gradients are
  final (their ``register_post_accumulate_grad_hook`` hooks, registered for the last micro-step's backward).
- Clipping and the gradient-flow norms run after the all-reduce, on identical gradients everywhere.
"""

import contextlib
import math
import signal
import threading
import zlib

import numpy as np

from tinygrad_tx import manual_seed, set_rng_state
from tinygrad_tx.distributed import DistributedError, GradientBuckets, ZeroOptimizer
from tinygrad_tx.optim import clip_grad_norm_
from train.config import ConfigError
from train.gradflow import layer_gradient_norms, layer_of

DEFAULT_NCCL_BUCKET_MB = 25.0
DROPOUT_STREAM = 3  # seed-sequence tag of the per-rank dropout generators (1 and 2 are the batch streams)


def rank_seed(seed: int, rank: int) -> int:
    """The engine seed of ``rank``: rank 0 keeps ``seed`` (so W = 1 is today's run), others get their own."""
    return seed if rank == 0 else int(np.random.SeedSequence([seed, DROPOUT_STREAM, rank]).generate_state(1)[0])


class DataParallel:
    """What one rank does differently from a single process; every method is the identity at W = 1."""

    def __init__(self, config, comm):
        self.comm, self.world_size, self.rank = comm, comm.world_size, comm.rank
        self.active = comm.world_size > 1
        steps = config.gradient_accumulation_steps
        if steps % self.world_size:
            raise ConfigError(
                f"gradient_accumulation_steps {steps} is not divisible by the world size "
                f"{self.world_size}: each rank runs an equal share of the micro-steps "
                f"(use a multiple of {self.world_size})"
            )
        self.global_steps, self.micro_steps = steps, steps // self.world_size
        bucket_mb = config.bucket_mb
        if bucket_mb is None:
            bucket_mb = DEFAULT_NCCL_BUCKET_MB if comm.name == "nccl" else 0.0
        self.bucket_bytes = int(bucket_mb * 2**20)
        self.buckets, self.zero = None, None
        self.stop_agreed = False
        self._loss_and_stop = (0.0, 0.0)  # what the last micro-step puts into the all-reduce besides gradients
        self._interrupted = []

    def describe(self, config, optimizer) -> str:
        """The line rank 0 prints once: world size, backend, per-rank batch, and ZeRO-1's memory."""
        line = (
            f"data-parallel: world size {self.world_size}, backend {self.comm.name}, per-rank batch "
            f"{config.batch_size} x {self.micro_steps} micro-steps (global batch "
            f"{config.batch_size * self.global_steps} sequences of {config.block_size} tokens), "
            + (
                f"gradient buckets of {self.bucket_bytes / 2**20:g} MiB"
                if self.bucket_bytes
                else "one flat all-reduce per step"
            )
        )
        if isinstance(optimizer, ZeroOptimizer):
            per_rank = optimizer.state_bytes_per_rank()
            line += (
                f"; ZeRO-1 AdamW state per rank {' / '.join(f'{b / 2**20:.2f}' for b in per_rank)} MiB "
                f"(plain data-parallel: {sum(per_rank) / 2**20:.2f} MiB on every rank)"
            )
        return line

    # ---------------------------------------------------------------- batches
    def rank_batches(self, draw):
        """This rank's micro-batches of the next step: all G are drawn (the stream stays W-independent),
        the others dropped."""
        batches = [draw() for _ in range(self.global_steps)]
        return batches[self.rank * self.micro_steps : (self.rank + 1) * self.micro_steps]

    def shard_optimizer(self, optimizer):
        """--zero 1: the optimizer wrapped so each rank keeps the state of its own tensors only."""
        self.zero = ZeroOptimizer(optimizer, self.comm)
        return self.zero

    # ---------------------------------------------------------------- gradients
    @contextlib.contextmanager
    def last_micro_step(self, params, scaled_loss):
        """Around the last micro-step's backward: the loss and the Ctrl-C flag go into the all-reduce, and
        with ``bucket_mb`` each bucket is sent as soon as its gradients are final (hooks for this backward only)."""
        if not self.active:
            yield
            return
        is_last_rank = self.rank == self.world_size - 1  # it holds the global last micro-batch: its loss is logged
        self._loss_and_stop = (scaled_loss if is_last_rank else 0.0), float(bool(self._interrupted))
        if self.zero is not None:
            yield
            return
        if self.buckets is None:
            self.buckets = GradientBuckets(params, self.comm, self.bucket_bytes)
        self.buckets.start(*self._loss_and_stop)
        with self.buckets.sending_during_backward() if self.bucket_bytes else contextlib.nullcontext():
            yield

    def reduce_gradients(self):
        """Finish the all-reduce; returns the reduced last micro-loss (scaled by 1/G) and sets stop_agreed."""
        if self.zero is None:
            scaled_loss, stop = self.buckets.finish()
        else:
            scaled_loss, stop = self.zero.reduce_gradients(*self._loss_and_stop)
        self.stop_agreed = stop > 0
        return scaled_loss

    def clip_and_measure(self, model, grad_clip, measure):
        """Clip the global gradient norm (grad_clip > 0) and, when ``measure``, return the per-layer norms."""
        if self.active and self.zero is not None:  # this rank holds only its share: norms from every rank's
            norms = None
            if measure:
                named = list(model.named_parameters())
                layers: dict = {}
                for (name, _), square in zip(named, self.zero.squared_gradient_norms(p for _, p in named)):
                    layers.setdefault(layer_of(name), []).append(square)
                norms = {layer: math.sqrt(float(sum(parts))) for layer, parts in layers.items()}
            if grad_clip > 0:
                self.zero.clip_grad_norm_(model.parameters(), grad_clip)
            return norms
        norms = layer_gradient_norms(model) if measure else None
        if grad_clip > 0:
            clip_grad_norm_(model.parameters(), grad_clip)
        return norms

    # ---------------------------------------------------------------- Ctrl-C on every rank at the same step
    @contextlib.contextmanager
    def ctrl_c_at_step_boundary(self):
        """At W > 1 a Ctrl-C only sets a flag; it travels in the next all-reduce and all ranks stop together."""
        if not self.active or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, lambda signum, frame: self._interrupted.append(signum))
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    # ---------------------------------------------------------------- agreement and checkpoints
    def check_parameters(self, model, iteration: int) -> None:
        """Compare every rank's parameter checksum; a difference stops the run with the ranks named."""
        if not self.active:
            return
        checksum = 0
        for param in model.parameters():
            checksum = zlib.crc32(param.numpy().tobytes(), checksum)
        checksums = self.comm.gather_objects(checksum)
        if len(set(checksums)) > 1:
            differing = [rank for rank, value in enumerate(checksums) if value != checksums[0]]
            raise DistributedError(
                f"the ranks' parameters diverged by iteration {iteration}: rank(s) "
                f"{differing} differ from rank 0 (CRC32 {checksums}); the all-reduce must give "
                "every rank the same gradients"
            )

    def seed_dropout(self, seed):
        """After the weights are made (the same on every rank): each rank other than 0 its own dropout stream."""
        if self.rank:
            manual_seed(rank_seed(seed, self.rank))

    def checkpoint_rng(self, rng_state):
        """A checkpoint's random states: this rank's, plus at W > 1 every rank's engine generator (collective)."""
        if not self.active:
            return rng_state
        return {**rng_state, "engine_ranks": self.comm.gather_objects(rng_state["engine"])}

    def restore_dropout(self, rng_payload, seed):
        """After rank 0's engine state is restored: this rank's own, saved at the same world size, else a fresh one."""
        states = rng_payload.get("engine_ranks")
        if self.rank and states is not None and len(states) == self.world_size:
            set_rng_state(states[self.rank])
        else:
            self.seed_dropout(seed)


@contextlib.contextmanager
def ctrl_c_deferred():
    """Hold a Ctrl-C that arrives inside the block until the block has finished (one process: the
    trainer's update and its log line happen wholly or not at all; ranks use ctrl_c_at_step_boundary)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
