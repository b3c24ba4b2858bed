"""Data-parallel training: the trainer's side of ``tinygrad_tx.distributed``, with nanoGPT's semantics.

    dp = DataParallel(config, comm)              # comm from init_communicator(); SingleProcess: a no-op
    for x, y in dp.rank_batches(trainer.train_batch): ... backward(on_leaf_final=dp.buckets.leaf_final)
    last_loss, stop = dp.reduce_gradients(params, last_loss, interrupted)
    optimizer = ZeroOptimizer(optimizer, comm)   # --zero 1: each rank keeps AdamW state for its tensors

The rules (docs/distributed.md explains each):
- ``batch_size`` is per rank; ``gradient_accumulation_steps`` (G) is the global count and is split:
  each of the W ranks runs G / W micro-steps. Every rank draws all G micro-batches from the same
  seeded stream and keeps its own, so the global batch, and a checkpoint's data position, do not
  depend on W: W ranks x B equals one process x W.B.
- Each micro-loss is scaled by 1/G and the gradients are summed over ranks, so the sum is the one a
  single process accumulates. One flat all-reduce per optimizer step carries the gradients, the
  last micro-batch's loss (what the log shows, as before) and the Ctrl-C flag. With ``bucket_mb``
  the gradients travel instead in buckets, each all-reduced as soon as the engine reports its
  tensors' gradients final (``Tensor.backward(on_leaf_final=...)``) on the last micro-step.
- Clipping and the gradient-flow norms run after the all-reduce, on identical gradients everywhere.
"""
import contextlib
import math
import signal
import threading
import zlib

import numpy as np

from tinygrad_tx import Tensor, backend
from tinygrad_tx.distributed import DistributedError
from tinygrad_tx.optim import clip_grad_norm_, squared_norm
from train.config import ConfigError
from train.gradflow import layer_gradient_norms, layer_of

DEFAULT_NCCL_BUCKET_MB = 25.0
DROPOUT_STREAM = 3   # seed-sequence tag of the per-rank dropout generators (1 and 2 are the batch streams)


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
            raise ConfigError(f"gradient_accumulation_steps {steps} is not divisible by the world size "
                              f"{self.world_size}: each rank runs an equal share of the micro-steps "
                              f"(use a multiple of {self.world_size})")
        self.global_steps, self.micro_steps = steps, steps // self.world_size
        bucket_mb = config.bucket_mb
        if bucket_mb is None:
            bucket_mb = DEFAULT_NCCL_BUCKET_MB if comm.name == "nccl" else 0.0
        self.bucket_bytes = int(bucket_mb * 2 ** 20)
        self.buckets, self.zero = None, None
        self.stop_agreed = False
        self._interrupted = []

    def describe(self, config, optimizer) -> str:
        """The line rank 0 prints once: world size, backend, per-rank batch, and ZeRO-1's memory."""
        line = (f"data-parallel: world size {self.world_size}, backend {self.comm.name}, per-rank batch "
                f"{config.batch_size} x {self.micro_steps} micro-steps (global batch "
                f"{config.batch_size * self.global_steps} sequences of {config.block_size} tokens), "
                + (f"gradient buckets of {self.bucket_bytes / 2 ** 20:g} MiB" if self.bucket_bytes
                   else "one flat all-reduce per step"))
        if isinstance(optimizer, ZeroOptimizer):
            per_rank = optimizer.state_bytes_per_rank()
            line += (f"; ZeRO-1 AdamW state per rank {' / '.join(f'{b / 2 ** 20:.2f}' for b in per_rank)} MiB "
                     f"(plain data-parallel: {sum(per_rank) / 2 ** 20:.2f} MiB on every rank)")
        return line

    # ---------------------------------------------------------------- batches
    def rank_batches(self, draw):
        """This rank's micro-batches of the next step: all G are drawn (the stream stays W-independent),
        the others dropped."""
        batches = [draw() for _ in range(self.global_steps)]
        return batches[self.rank * self.micro_steps:(self.rank + 1) * self.micro_steps]

    def shard_optimizer(self, optimizer):
        """--zero 1: the optimizer wrapped so each rank keeps the state of its own tensors only."""
        self.zero = ZeroOptimizer(optimizer, self.comm)
        return self.zero

    # ---------------------------------------------------------------- gradients
    def start_last_micro_step(self, params, scaled_loss):
        """Before the last micro-step's backward: the callback for ``backward`` (None: reduce afterwards)."""
        if not self.active:
            return None
        is_last_rank = self.rank == self.world_size - 1   # it holds the global last micro-batch: its loss is logged
        self._loss_and_stop = (scaled_loss.data if is_last_rank else 0.0), float(bool(self._interrupted))
        if self.zero is not None:
            return None
        if self.buckets is None:
            self.buckets = GradientBuckets(params, self.comm, self.bucket_bytes)
        self.buckets.start(*self._loss_and_stop)
        return self.buckets.leaf_final if self.bucket_bytes else None

    def reduce_gradients(self):
        """Finish the all-reduce; returns the reduced last micro-loss (scaled by 1/G) and sets stop_agreed."""
        reduce = self.buckets.finish if self.zero is None else lambda: self.zero.reduce_gradients(*self._loss_and_stop)
        scaled_loss, stop = reduce()
        self.stop_agreed = stop > 0
        return scaled_loss

    def clip_and_measure(self, model, grad_clip, measure):
        """Clip the global gradient norm (grad_clip > 0) and, when ``measure``, return the per-layer norms."""
        if self.active and self.zero is not None:
            return self.zero.clip_and_measure(model, grad_clip, measure)
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
            checksum = zlib.crc32(np.ascontiguousarray(backend.to_numpy(param.data)), checksum)
        checksums = self.comm.gather_objects(checksum)
        if len(set(checksums)) > 1:
            differing = [rank for rank, value in enumerate(checksums) if value != checksums[0]]
            raise DistributedError(f"the ranks' parameters diverged by iteration {iteration}: rank(s) "
                                   f"{differing} differ from rank 0 (CRC32 {checksums}); the all-reduce must give "
                                   "every rank the same gradients")

    def engine_rng_states(self, own_state):
        """Every rank's engine (dropout) generator state, for the checkpoint (collective)."""
        return self.comm.gather_objects(own_state) if self.active else None

    def engine_rng_state_to_restore(self, rng_payload):
        """This rank's saved engine state when the checkpoint came from the same world size, else None."""
        states = rng_payload.get("engine_ranks")
        if self.rank == 0 or states is None or len(states) != self.world_size:
            return None
        return states[self.rank]


class GradientBuckets:
    """Gradients packed into flat buckets, each all-reduced (summed) as soon as all its tensors are final.

    Buckets follow backward's order (the model's parameters reversed, output side first) and close at
    ``bucket_bytes`` (0: one bucket, reduced after backward). The last bucket also carries two extra
    slots: the logged loss and the Ctrl-C flag. Every rank launches the same buckets in the same order,
    as MPI and NCCL require.
    """

    def __init__(self, params, comm, bucket_bytes):
        self.comm = comm
        groups, current, size = [], [], 0
        for param in reversed(list(params)):
            if current and bucket_bytes and size + param.data.nbytes > bucket_bytes:
                groups.append(current)
                current, size = [], 0
            current.append(param)
            size += param.data.nbytes
        groups.append(current)
        xp, dtype = backend.xp_of(groups[0][0].data), groups[0][0].data.dtype
        self.members = groups
        self.flats = [xp.empty(sum(p.size for p in group) + (2 if number == len(groups) - 1 else 0), dtype)
                      for number, group in enumerate(groups)]
        self.where = {}   # id(param) -> (bucket number, offset)
        for number, group in enumerate(groups):
            offset = 0
            for param in group:
                self.where[id(param)] = (number, offset)
                offset += param.size

    def start(self, last_loss, stop):
        self.missing = [len(group) for group in self.members]
        self.handles = [None] * len(self.members)
        self.flats[-1][-2] = last_loss
        self.flats[-1][-1] = stop

    def leaf_final(self, param):
        """The engine's callback: ``param.grad`` is complete; pack it, and send its bucket once full."""
        number, offset = self.where.get(id(param), (None, 0))
        if number is None:
            return
        self.flats[number][offset:offset + param.size] = param.grad.data.reshape(-1)
        self.missing[number] -= 1
        if self.missing[number] == 0:
            self.handles[number] = self.comm.allreduce_sum_async(self.flats[number])

    def finish(self):
        """Send what backward did not (a tensor without a gradient counts as zeros), wait, unpack.
        Returns (reduced last loss, reduced stop flag)."""
        for number, group in enumerate(self.members):
            if self.handles[number] is not None:
                continue
            for param in group:
                bucket, offset = self.where[id(param)]
                view = self.flats[bucket][offset:offset + param.size]
                view[...] = 0 if param.grad is None else param.grad.data.reshape(-1)
            self.handles[number] = self.comm.allreduce_sum_async(self.flats[number])
        for handle in self.handles:
            handle.wait()
        for number, group in enumerate(self.members):
            for param in group:
                _, offset = self.where[id(param)]
                reduced = self.flats[number][offset:offset + param.size].reshape(param.shape)
                if param.grad is None:
                    param.grad = Tensor._wrap(reduced.copy())
                else:
                    param.grad.data[...] = reduced
        extras = backend.to_numpy(self.flats[-1][-2:])
        return float(extras[0]), float(extras[1])


class ZeroOptimizer:
    """ZeRO stage 1 around an optimizer: each rank keeps the state of, and steps, only the tensors it owns.

    Tensors are dealt whole, largest first, each to the rank owning the fewest bytes so far, and the
    flat gradient is laid out by owner. A reduce-scatter leaves each rank the summed gradients of its
    own tensors; one small all-reduce then carries every tensor's squared norm (clipping and the
    gradient-flow norms need the global values), the logged loss and the Ctrl-C flag. The owner
    steps its tensors and an all-gather sends the new values to everyone: the same traffic as one
    all-reduce, and the same weights as plain data-parallel, bit for bit. ``state_dict`` gathers all
    ranks' state (a collective), so a checkpoint is plain data-parallel's and resumes at any world
    size; ``load_state_dict`` keeps this rank's share.
    """

    def __init__(self, optimizer, comm):
        self.optimizer, self.comm = optimizer, comm
        self.param_groups = optimizer.param_groups
        self.params = optimizer._params()
        loads = [0] * comm.world_size
        self.owner = {}
        for index in sorted(range(len(self.params)), key=lambda i: -self.params[i].size):
            rank = loads.index(min(loads))
            self.owner[index] = rank
            loads[rank] += self.params[index].data.nbytes
        self.order = sorted(range(len(self.params)), key=lambda i: (self.owner[i], i))   # grouped by owner
        self.counts = [sum(self.params[i].size for i in self.order if self.owner[i] == rank)
                       for rank in range(comm.world_size)]
        self.mine = [i for i in self.order if self.owner[i] == comm.rank]
        self.index_of = {id(param): index for index, param in enumerate(self.params)}
        self.squared_norms = None   # per tensor, after reduce_gradients: (float64 for clipping, float32 for the log)

    def state_bytes_per_rank(self, arrays_per_param: int = 2):
        """[AdamW state bytes each rank holds] (exp_avg and exp_avg_sq per owned tensor)."""
        itemsize = self.params[0].data.itemsize
        return [arrays_per_param * count * itemsize for count in self.counts]

    # ---------------------------------------------------------------- one step
    def reduce_gradients(self, scaled_loss, stop):
        """Sum the gradients over ranks, keeping only this rank's tensors'; returns the reduced (loss, stop)."""
        first = self.params[0].data
        xp = backend.xp_of(first)
        flat = xp.empty(sum(self.counts), first.dtype)
        offset = 0
        for index in self.order:
            param = self.params[index]
            flat[offset:offset + param.size] = 0 if param.grad is None else param.grad.data.reshape(-1)
            offset += param.size
        mine, offset = self.comm.reduce_scatter(flat, self.counts), 0
        for param in self.params:
            param.grad = None
        for index in self.mine:
            param = self.params[index]
            param.grad = Tensor._wrap(mine[offset:offset + param.size].reshape(param.shape))
            offset += param.size
        count = len(self.params)
        summary = np.zeros(2 * count + 2)   # float64: each entry has one contributor, so every sum is exact
        if self.mine:
            grads = [self.params[i].grad.data for i in self.mine]
            own = xp.stack([squared_norm(g) for g in grads] + [(g * g).sum().astype(xp.float64) for g in grads])
            own = backend.to_numpy(own)
            summary[self.mine] = own[:len(grads)]
            summary[[count + i for i in self.mine]] = own[len(grads):]
        summary[-2:] = float(scaled_loss), stop
        self.comm.allreduce_sum(summary)
        self.squared_norms = summary[:count], summary[count:2 * count].astype(np.float32)
        return summary[-2], summary[-1]

    def clip_and_measure(self, model, grad_clip, measure):
        """clip_grad_norm_ and layer_gradient_norms from the gathered squared norms, as the full gradient gives."""
        clipping, logged = self.squared_norms
        order = [self.index_of[id(param)] for param in model.parameters()]
        norms = None
        if measure:
            layers = {}
            for name, param in model.named_parameters():
                layers.setdefault(layer_of(name), []).append(logged[self.index_of[id(param)]])
            norms = {layer: math.sqrt(float(sum(parts))) for layer, parts in layers.items()}
        if grad_clip > 0:
            total_norm = math.sqrt(float(sum(clipping[i] for i in order)))
            clip_grad_norm_([self.params[i] for i in self.mine], grad_clip, total_norm=total_norm)
        return norms

    def step(self):
        for index, param in enumerate(self.params):
            if self.owner[index] != self.comm.rank:
                param.grad = None   # the optimizer skips tensors without a gradient: no state for them
        self.optimizer.step()
        xp = backend.xp_of(self.params[0].data)
        mine = xp.concatenate([self.params[i].data.reshape(-1) for i in self.mine]) if self.mine \
            else xp.empty(0, self.params[0].data.dtype)
        whole, offset = self.comm.allgather(mine, self.counts), 0
        for index in self.order:
            param = self.params[index]
            param.data[...] = whole[offset:offset + param.size].reshape(param.shape)
            offset += param.size

    def zero_grad(self):
        self.optimizer.zero_grad()

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self):
        """Every rank's state merged (collective: call it on all ranks)."""
        own = self.optimizer.state_dict()
        merged = {}
        for states in self.comm.gather_objects(own["state"]):
            merged.update(states)
        return {"state": dict(sorted(merged.items())), "param_groups": own["param_groups"]}

    def load_state_dict(self, state_dict):
        mine = {index: entries for index, entries in state_dict["state"].items()
                if self.owner[int(index)] == self.comm.rank}
        self.optimizer.load_state_dict({**state_dict, "state": mine})
