"""Per-op forward + backward times: tinygrad_tx fused vs composed vs PyTorch, at a recipe's shapes.

    python -m bench.ops [--config baby|small] [--repeats N]

Ops: attention (causal, (B, H, T, D)), layer_norm ((B, T, C) with weight and bias), cross_entropy
((B T, 65) logits), gelu (exact, (B, T, 4C)), embedding ((B, T) ids into a (65, C) table). Each
measurement is one forward and one backward with a random upstream gradient; the implementations
take turns within every round and the table shows the median over rounds. gelu and embedding have
no composed twin ("-"). The command re-runs itself in a child process with the workers' BLAS
environment of bench.train_step (OpenBLAS reads its environment when NumPy is imported).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

from bench.train_step import CONFIGS, VOCAB_SIZE, model_config, worker_environment

IMPLS = ("fused", "composed", "pytorch")
CHILD_MARK = "TINYGRAD_TX_BENCH_OPS_CHILD"


def op_shapes(config_name):
    """name -> shapes of the op's inputs at the recipe's sizes."""
    config, batch = model_config(config_name)
    time_steps, channels, heads = config["block_size"], config["n_embd"], config["n_head"]
    return {
        "attention": (batch, heads, time_steps, channels // heads),
        "layer_norm": (batch, time_steps, channels),
        "cross_entropy": (batch * time_steps, VOCAB_SIZE),
        "gelu": (batch, time_steps, 4 * channels),
        "embedding": ((batch, time_steps), (VOCAB_SIZE, channels)),
    }


def make_inputs(op, shape, rng):
    """NumPy float32 inputs (and int ids) of one op, the same for every implementation."""
    if op == "attention":
        return [rng.standard_normal(shape, dtype="float32") for _ in range(3)]
    if op == "layer_norm":
        return [
            rng.standard_normal(shape, dtype="float32"),
            1 + 0.1 * rng.standard_normal(shape[-1:], dtype="float32"),
            0.1 * rng.standard_normal(shape[-1:], dtype="float32"),
        ]
    if op == "cross_entropy":
        return [rng.standard_normal(shape, dtype="float32"), rng.integers(0, shape[1], shape[0])]
    if op == "gelu":
        return [rng.standard_normal(shape, dtype="float32")]
    ids_shape, table_shape = shape
    return [rng.integers(0, table_shape[0], ids_shape), rng.standard_normal(table_shape, dtype="float32")]


def ours(op, impl, arrays):
    """A closure running one forward + backward of tinygrad_tx's op; None when ``impl`` has no such op."""
    import tinygrad_tx.nn.functional as F
    from tinygrad_tx import Tensor

    if impl == "composed" and op in ("gelu", "embedding"):
        return None
    leaves = [Tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    calls = {
        "attention": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True, impl=impl),
        "layer_norm": lambda x, w, b: F.layer_norm(x, w, b, impl=impl),
        "cross_entropy": lambda logits, targets: F.cross_entropy(logits, targets, impl=impl),
        "gelu": lambda x: F.gelu(x),
        "embedding": lambda ids, table: F.embedding(ids, table),
    }

    def run():
        for leaf in leaves:
            leaf.grad = None
        out = calls[op](*leaves)
        out.backward(None if out.size == 1 else Tensor._wrap(upstream(out.shape, out.data.dtype)))

    return run


def theirs(op, arrays):
    """The same forward + backward in PyTorch."""
    import torch
    import torch.nn.functional as TF

    leaves = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    calls = {
        "attention": lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True),
        "layer_norm": lambda x, w, b: TF.layer_norm(x, x.shape[-1:], w, b),
        "cross_entropy": lambda logits, targets: TF.cross_entropy(logits, targets),
        "gelu": lambda x: TF.gelu(x),
        "embedding": lambda ids, table: TF.embedding(ids, table),
    }

    def run():
        for leaf in leaves:
            leaf.grad = None
        out = calls[op](*leaves)
        out.backward(None if out.numel() == 1 else torch.from_numpy(upstream(tuple(out.shape), "float32")))

    return run


_upstream_cache = {}


def upstream(shape, dtype):
    """A fixed random upstream gradient per shape (made once, outside the timed region's steady state)."""
    key = (tuple(shape), str(dtype))
    if key not in _upstream_cache:
        import numpy as np

        _upstream_cache[key] = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    return _upstream_cache[key]


def run(config_name="baby", repeats=5, threads=None):
    """{op: {impl: median seconds or None}} for one forward + backward."""
    import numpy as np
    import torch

    from tinygrad_tx import tune_for_training

    tune_for_training()  # train.shakespeare's allocator setting, so the op times are the ones a training step sees
    torch.set_num_threads(threads or os.cpu_count())
    rng = np.random.default_rng(0)
    results = {}
    for op, shape in op_shapes(config_name).items():
        arrays = make_inputs(op, shape, rng)
        runners = {
            "fused": ours(op, "fused", arrays),
            "composed": ours(op, "composed", arrays),
            "pytorch": theirs(op, arrays),
        }
        times = {impl: [] for impl, runner in runners.items() if runner is not None}
        for impl in times:
            runners[impl]()  # warm-up
        for _ in range(repeats):
            for impl in times:  # implementations take turns within a round
                start = time.perf_counter()
                runners[impl]()
                times[impl].append(time.perf_counter() - start)
        results[op] = {impl: statistics.median(times[impl]) if impl in times else None for impl in IMPLS}
    return results


def report(config_name, results):
    lines = [
        f"forward + backward, ms (median), shapes of config {config_name}",
        "",
        "| op | fused | composed | PyTorch | fused / PyTorch |",
        "|---|---|---|---|---|",
    ]
    for op, by_impl in results.items():
        cells = [f"{by_impl[impl] * 1e3:.2f}" if by_impl[impl] is not None else "-" for impl in IMPLS]
        lines.append(f"| {op} | " + " | ".join(cells) + f" | {by_impl['fused'] / by_impl['pytorch']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.ops", description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="baby")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    if os.environ.get(CHILD_MARK) != "1":  # re-run with the BLAS environment set before NumPy loads
        with worker_environment(args.threads):
            os.environ[CHILD_MARK] = "1"
            argv = sys.argv[1:] if argv is None else list(argv)
            return subprocess.run([sys.executable, "-m", "bench.ops", *argv]).returncode
    print(report(args.config, run(args.config, args.repeats, args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
