"""Data-parallel scaling: tokens/s and the share of step time spent communicating, at W = 1, 2, ... ranks.

    python -m bench.scaling                                  # small and baby presets, W = 1 and 2, CPU
    python -m bench.scaling --presets small --world-sizes 1 2 4 --steps 10 --zero 1

Every (preset, W) runs in fresh processes: W = 1 as a plain ``python`` (the single-process path, all
cores), W > 1 under ``mpiexec -n W -bind-to core python -m mpi4py``, each rank with cores / W BLAS
threads. Row ``1c`` repeats W = 1 bound to one core with one BLAS thread: the per-core baseline the
W ranks (one core each) scale from. The global batch is the same at every W (``--batch-size``
sequences per rank x W micro-steps, split across the ranks), so tokens/s compare directly. A step
is the trainer's own forward/backward and update (``Trainer._forward_backward`` and
``Trainer._update``) on random tokens; after ``--warmup`` steps, ``--steps`` steps are timed.
Communication time is the time spent inside the communicator's calls (all-reduce, reduce-scatter,
all-gather, waits on asynchronous all-reduces), which includes waiting for the slowest rank: on a
shared, loaded machine that wait is part of the cost.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

PRESETS = {"small": "cpu", "baby": "baby"}  # this bench's names -> train.config presets
DEFAULT_BATCH = {"small": 12, "baby": 8}  # per rank: baby's 64 would take minutes per step on 2 cores
COLLECTIVES = ("allreduce_sum", "allreduce_sum_async", "allgather", "reduce_scatter", "broadcast")


class TimedCommunicator:
    """A communicator that adds the seconds spent in its collectives (and in waits on their handles) to ``seconds``."""

    def __init__(self, comm):
        self.comm, self.seconds = comm, 0.0

    def __getattr__(self, name):
        attribute = getattr(self.comm, name)
        if name not in COLLECTIVES:
            return attribute

        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = attribute(*args, **kwargs)
            self.seconds += time.perf_counter() - start
            return _TimedHandle(result, self) if name.endswith("_async") else result

        return timed


class _TimedHandle:
    def __init__(self, handle, timer):
        self.handle, self.timer = handle, timer

    def wait(self):
        start = time.perf_counter()
        self.handle.wait()
        self.timer.seconds += time.perf_counter() - start


def worker(preset, batch_size, accumulation, steps, warmup, zero, bucket_mb):
    """One rank's measurement; rank 0 prints one JSON line."""
    from tinygrad_tx import tune_for_training
    from tinygrad_tx.distributed import init_communicator
    from train.config import make_config
    from train.tokenizers import CharTokenizer
    from train.trainer import Trainer

    comm = TimedCommunicator(init_communicator("auto", "cpu"))
    with tempfile.TemporaryDirectory() as out_dir:
        config = make_config(
            PRESETS[preset],
            {
                "batch_size": batch_size,
                "gradient_accumulation_steps": accumulation,
                "out_dir": out_dir,
                "peak_flops": 1e12,
                "dropout": 0.0,
                "zero": zero,
                "bucket_mb": bucket_mb,
                "eval_iters": 1,
            },
        )
        tokenizer = CharTokenizer.from_text("".join(chr(32 + i) for i in range(65)))
        ids = np.random.default_rng(0).integers(0, 65, 200_000).astype(np.uint16)
        tune_for_training()  # as train.shakespeare does before building its Trainer
        trainer = Trainer(config, tokenizer, ids, ids[:20_000], comm=comm)
        for _ in range(warmup):
            trainer._forward_backward()
            trainer._update()
        comm.barrier()
        comm.seconds, started = 0.0, time.perf_counter()
        for _ in range(steps):
            trainer._forward_backward()
            trainer._update()
        comm.barrier()
        seconds = time.perf_counter() - started
        tokens = steps * config.batch_size * config.gradient_accumulation_steps * config.block_size
        shares = comm.gather_objects(comm.seconds / seconds)
        if comm.is_main:
            optimizer_bytes = (
                trainer.optimizer.state_bytes_per_rank()
                if zero
                else [2 * 4 * sum(p.size for p in trainer.model.parameters())] * comm.world_size
            )
            print(
                json.dumps(
                    {
                        "preset": preset,
                        "world_size": comm.world_size,
                        "backend": comm.name,
                        "batch_per_rank": batch_size,
                        "micro_steps_per_rank": accumulation // comm.world_size,
                        "step_ms": 1000 * seconds / steps,
                        "tokens_per_s": tokens / seconds,
                        "comm_share": max(shares),
                        "comm_share_per_rank": shares,
                        "optimizer_mib_per_rank": [b / 2**20 for b in optimizer_bytes],
                    }
                ),
                flush=True,
            )


def launch(preset, world_size, args, one_core_per_rank):
    """The worker's JSON record for ``preset`` at ``world_size`` ranks (W = 1: all cores, or one)."""
    command = [
        sys.executable,
        "-m",
        "bench.scaling",
        "--worker",
        preset,
        "--batch-size",
        str(args.batch_size[preset]),
        "--accumulation",
        str(max(args.world_sizes)),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--zero",
        str(args.zero),
        "--bucket-mb",
        str(args.bucket_mb),
    ]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = 1 if one_core_per_rank and world_size == 1 else max(1, cores // world_size)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OPENBLAS_THREAD_TIMEOUT": "1"}
    if one_core_per_rank:
        command = ["mpiexec", "-n", str(world_size), "-bind-to", "core", *command[:1], "-m", "mpi4py", *command[1:]]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode or not lines:
        raise SystemExit(
            f"bench.scaling: {preset} at W={world_size} failed (exit {result.returncode}):\n{result.stderr[-2000:]}"
        )
    return json.loads(lines[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=["small", "baby"])
    parser.add_argument("--world-sizes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None, help="sequences per rank (default: small 12, baby 8)")
    parser.add_argument("--zero", type=int, choices=(0, 1), default=0)
    parser.add_argument("--bucket-mb", type=float, default=0.0, help="gradient buckets in MiB (0: one flat all-reduce)")
    parser.add_argument("--worker", choices=sorted(PRESETS), help=argparse.SUPPRESS)
    parser.add_argument("--accumulation", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(
            args.worker, args.batch_size, args.accumulation, args.steps, args.warmup, args.zero, args.bucket_mb
        )
    args.batch_size = {preset: args.batch_size or DEFAULT_BATCH[preset] for preset in PRESETS}
    print(
        f"{'preset':<7}{'W':>3}{'batch/rank':>11}{'micro/rank':>11}{'step ms':>10}{'tokens/s':>10}"
        f"{'comm share':>12}{'AdamW MiB/rank':>16}"
    )
    runs = [(world_size, world_size > 1) for world_size in args.world_sizes]
    if 1 in args.world_sizes and len(args.world_sizes) > 1:
        runs.insert(args.world_sizes.index(1) + 1, (1, True))  # the per-core baseline the ranks scale from
    for preset in args.presets:
        for world_size, one_core_per_rank in runs:
            r = launch(preset, world_size, args, one_core_per_rank)
            label = f"{world_size}{'c' if world_size == 1 and one_core_per_rank else ''}"
            print(
                f"{preset:<7}{label:>3}{r['batch_per_rank']:>11}{r['micro_steps_per_rank']:>11}"
                f"{r['step_ms']:>10.1f}{r['tokens_per_s']:>10,.0f}{100 * r['comm_share']:>11.1f}%"
                f"{max(r['optimizer_mib_per_rank']):>16.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
