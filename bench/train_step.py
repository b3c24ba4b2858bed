"""One GPT training step in tinygrad_tx and in PyTorch eager, timed in the same run.

    python -m bench.train_step --config small|baby --device cpu|gpu [--repeats N] [--steps S] [--background-load N]

The step is forward, cross-entropy, backward and an AdamW update in float32 on random token
batches (vocab 65), with the config's dropout. Both models start from the same weights (ours,
copied into the PyTorch GPT through the state dict).

Each side runs in its own worker process (multiprocessing "spawn"), so neither one's BLAS threads,
allocator or imports touch the other. After warm-up the parent alternates the workers A B A B, with
a 0.25 s pause before each turn so that the other side's idle threads have stopped spinning: in
every round each side runs ``--steps`` steps and the round's median step time counts; the ratio
ours / PyTorch is the median of the per-round ratios (load that drifts during the run hits both
sides of a round alike). Peak memory is each worker's ``ru_maxrss`` at the end minus its value
right after its imports, so the model, optimizer state and the step's activations count; on the GPU
it is the device memory each side's caching allocator holds (CuPy's default pool, PyTorch's
``max_memory_reserved``).

Environment of the workers only (never of tests or of the library): both sides run their threading
libraries' defaults, as a user's training run does. ``OPENBLAS_THREAD_TIMEOUT``, ``OPENBLAS_CORETYPE``
and ``OPENBLAS_L2_SIZE`` are removed (a forced core type slows NumPy's GEMMs); OpenBLAS's idle
threads then wait ~0.1 s for the next call before sleeping, as PyTorch's OpenMP threads do. (Until
issue 15 the workers ran with ``OPENBLAS_THREAD_TIMEOUT=1``, when the engine's own threads needed the
second core between GEMMs; with the compiled loops, which run on one core below 1M elements, the
default measured 8% faster on small, docs/performance.md.) Both sides get ``--threads`` BLAS threads
(default: all cores).

``--background-load N`` keeps N spinning processes (bench/background_load.py) running through the
warm-up and the timed rounds, so both sides are measured on a busy machine, in the same run.
"""

import argparse
import contextlib
import dataclasses
import multiprocessing
import os
import statistics
import sys
import tempfile
import time

from bench.background_load import spinning
from bench.sides import OursSide, TorchSide, max_rss_mib

CONFIGS = {  # nanoGPT's recipes (vocab 65 = Tiny Shakespeare's characters); "tiny" is the tests' smoke size
    "small": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0, bias=False),
    "baby": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2, bias=False),
    "tiny": dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=2, dropout=0.1, bias=True),
}
VOCAB_SIZE = 65
SIDES = ("tinygrad_tx", "pytorch")


def model_config(name):
    """(GPTConfig keyword arguments, batch size) of a named recipe."""
    settings = dict(CONFIGS[name])
    batch_size = settings.pop("batch_size")
    return dict(settings, vocab_size=VOCAB_SIZE), batch_size


def flops_per_token(n_layer, n_embd, block_size, num_params):
    """PaLM's forward + backward estimate: 6 N + 12 L C T (N without position embeddings), as nanoGPT."""
    return 6 * num_params + 12 * n_layer * n_embd * block_size


def token_batch(seed, step, batch_size, block_size):
    """The (x, y) int64 token batch of one step, the same on both sides."""
    import numpy as np

    rng = np.random.default_rng([seed, step])
    tokens = rng.integers(0, VOCAB_SIZE, (batch_size, block_size + 1))
    return np.ascontiguousarray(tokens[:, :-1]), np.ascontiguousarray(tokens[:, 1:])


def worker(side_name, config_name, device, threads, state_path, seed, connection):
    """Build one side, then answer ("steps", first_step, count) -> step times, ("gemm",) -> FLOP/s,
    ("memory",) -> peak MiB (host: above the post-import baseline; GPU: held by the allocator), until ("stop",)."""
    try:
        import numpy as np

        side_class = OursSide if side_name == "tinygrad_tx" else TorchSide
        side_class.import_libraries()
        config, batch_size = model_config(config_name)
        baseline = max_rss_mib()
        with np.load(state_path) as archive:
            state = {name: archive[name] for name in archive.files}
        side = side_class(config, state, device, threads)
        del state
        connection.send(("ready", ""))
    except Exception as exc:  # reported to the parent, which prints it as the side's result
        connection.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        request = connection.recv()
        if request[0] == "stop":
            return
        try:
            connection.send(("ok", serve(side, request, seed, batch_size, config["block_size"], baseline)))
        except Exception as exc:
            connection.send(("error", f"{side_name}: {type(exc).__name__}: {exc}"))
            return


def serve(side, request, seed, batch_size, block_size, baseline):
    if request[0] == "steps":
        _, first_step, count = request
        times = []
        for step in range(first_step, first_step + count):
            x, y = side.batch(*token_batch(seed, step, batch_size, block_size))
            start = time.perf_counter()
            side.step(x, y)
            times.append(time.perf_counter() - start)
        return times
    if request[0] == "gemm":
        return side.gemm_rate()
    return side.memory_mib(baseline)


def ask(connection, *request):
    """One request to a worker and its answer; a worker's failure becomes the parent's exception."""
    connection.send(request)
    status, answer = connection.recv()
    if status == "error":
        raise RuntimeError(f"benchmark worker failed: {answer}")
    return answer


# Thread pools keep spinning for a while after their last job (OpenBLAS ~0.1 s, OpenMP up to a few ms,
# tinygrad_tx's team 2 ms): a side measured right after the other would share the cores with the
# other's spinning threads. Until this pause, our OpenBLAS threads spun into PyTorch's first steps.
SETTLE_SECONDS = 0.25

# glibc's environment twin of tinygrad_tx.tune_for_training(), for --pytorch-keep-freed-memory
KEEP_FREED_MEMORY = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**62)}  # never trim, as mallopt(-1)


@contextlib.contextmanager
def worker_environment(threads, extra=None):
    """BLAS settings for the spawned workers (see the module docstring); the parent's are restored after."""
    saved = dict(os.environ)
    for name in ("OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        os.environ.pop(name, None)
    os.environ.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    os.environ.update(extra or {})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# ------------------------------------------------------------------ the run
@dataclasses.dataclass
class SideResult:
    name: str
    round_times: list = dataclasses.field(default_factory=list)  # median step time of each round (s)
    step_times: list = dataclasses.field(default_factory=list)
    gemm_flops: float = 0.0
    memory_mib: float = 0.0
    error: str = ""


def run(
    config_name,
    device="cpu",
    repeats=5,
    steps=3,
    warmup=2,
    threads=None,
    seed=1337,
    pytorch_keep_freed_memory=False,
    background_load=0,
):
    """Time both sides, alternating; returns (results by side name, num_params).

    tinygrad_tx keeps freed memory for reuse (tinygrad_tx.tune_for_training); with
    ``pytorch_keep_freed_memory`` the PyTorch worker gets the same glibc setting through its environment.
    """
    import numpy as np

    from models.gpt import GPT, GPTConfig
    from tinygrad_tx import backend

    threads = threads or os.cpu_count()
    config, _ = model_config(config_name)
    backend.manual_seed(seed)
    model = GPT(GPTConfig(**config))
    state, num_params = model.state_dict(), model.num_params()  # counted here: a worker may fail to start
    del model
    results = {name: SideResult(name) for name in SIDES}
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder:
        state_path = os.path.join(folder, "weights.npz")
        np.savez(state_path, **state)
        workers = {}
        for name in SIDES:
            extra = KEEP_FREED_MEMORY if name == "pytorch" and pytorch_keep_freed_memory else None
            with worker_environment(threads, extra):
                parent_end, child_end = context.Pipe()
                process = context.Process(
                    target=worker, daemon=True, args=(name, config_name, device, threads, state_path, seed, child_end)
                )
                process.start()
                workers[name] = (process, parent_end)
        for name, (_, connection) in list(workers.items()):
            status, detail = connection.recv()
            if status == "error":
                results[name].error = detail
                del workers[name]
        try:
            timed_rounds(workers, results, repeats, steps, warmup, background_load)
            for name, (_, connection) in workers.items():
                results[name].memory_mib = ask(connection, "memory")
        finally:
            for process, connection in workers.values():
                with contextlib.suppress(OSError):  # a failed worker has already exited
                    connection.send(("stop",))
                process.join(timeout=30)
    return results, num_params


def timed_rounds(workers, results, repeats, steps, warmup, background_load):
    """Warm up and measure the GEMM peak of each side, then alternate them for ``repeats`` rounds."""
    with spinning(background_load):
        for name, (_, connection) in workers.items():
            ask(connection, "steps", 0, warmup)
            results[name].gemm_flops = ask(connection, "gemm")
        for round_index in range(repeats):
            for name, (_, connection) in workers.items():  # A B A B: same batches, one after the other
                time.sleep(SETTLE_SECONDS)  # the other side's idle threads stop spinning first
                times = ask(connection, "steps", warmup + round_index * steps, steps)
                results[name].step_times += times
                results[name].round_times.append(statistics.median(times))


def quantile(values, q):
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def report(config_name, device, results, num_params, threads, background_load=0):
    """The markdown table of one run."""
    config, batch_size = model_config(config_name)
    tokens = batch_size * config["block_size"]
    flops = flops_per_token(config["n_layer"], config["n_embd"], config["block_size"], num_params) * tokens
    peak = max(result.gemm_flops for result in results.values())
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    busy = f", {background_load} busy background process(es)" if background_load else ""
    lines = [
        f"config {config_name} ({device}, {threads} threads{busy}, load average {load} at the end): "
        f"{config['n_layer']} layers, {config['n_head']} heads, {config['n_embd']} channels, "
        f"block {config['block_size']}, batch {batch_size}, dropout {config['dropout']}, "
        f"bias {config['bias']}; {num_params / 1e6:.2f}M parameters, {flops / 1e9:.2f} GFLOP per step; "
        f"fp32 GEMM peak {peak / 1e9:.0f} GFLOP/s (best of NumPy "
        f"{results['tinygrad_tx'].gemm_flops / 1e9:.0f}, PyTorch {results['pytorch'].gemm_flops / 1e9:.0f})",
        "",
        "| | " + " | ".join(SIDES) + " |",
        "|---|" + "---|" * len(SIDES),
    ]
    rows = {
        "step time, median (ms)": [],
        "spread p25-p75 (ms)": [],
        "tokens/s": [],
        "achieved GFLOP/s": [],
        "MFU (of measured peak)": [],
        "peak memory (MiB)": [],
    }
    for result in results.values():
        if result.error:
            for label, cells in rows.items():
                cells.append(f"unavailable ({result.error})" if label.startswith("step") else "-")
            continue
        median = statistics.median(result.step_times)
        rows["step time, median (ms)"].append(f"{median * 1e3:.1f}")
        rows["spread p25-p75 (ms)"].append(
            f"{quantile(result.step_times, 0.25) * 1e3:.1f}-{quantile(result.step_times, 0.75) * 1e3:.1f}"
        )
        rows["tokens/s"].append(f"{tokens / median:,.0f}")
        rows["achieved GFLOP/s"].append(f"{flops / median / 1e9:.1f}")
        rows["MFU (of measured peak)"].append(f"{flops / median / peak:.0%}")
        rows["peak memory (MiB)"].append(f"{result.memory_mib:.0f}")
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows.items()]
    ours, theirs = results["tinygrad_tx"], results["pytorch"]
    if ours.round_times and theirs.round_times:
        ratios = [a / b for a, b in zip(ours.round_times, theirs.round_times)]
        lines += [
            "",
            f"ours / PyTorch: {statistics.median(ratios):.2f} (median of {len(ratios)} per-round ratios, "
            f"range {min(ratios):.2f}-{max(ratios):.2f})",
        ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.train_step", description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default: 7 small, 3 baby)")
    parser.add_argument("--steps", type=int, default=None, help="steps per side per round (default: 5 small, 1 baby)")
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps per side first (default: 2 small, 1 baby)"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="BLAS threads on both sides")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument(
        "--pytorch-keep-freed-memory",
        action="store_true",
        help="give PyTorch's worker the glibc malloc setting tinygrad_tx applies to itself",
    )
    parser.add_argument(
        "--background-load",
        type=int,
        default=0,
        metavar="N",
        help="keep N spinning processes running through the whole measurement (a busy machine)",
    )
    args = parser.parse_args(argv)
    small = args.config != "baby"
    repeats = args.repeats or (7 if small else 3)
    steps = args.steps or (5 if small else 1)
    warmup = args.warmup if args.warmup is not None else (2 if small else 1)
    if repeats < 1 or steps < 1 or warmup < 0 or args.threads < 1 or args.background_load < 0:
        parser.error("--repeats, --steps and --threads must be >= 1, --warmup and --background-load >= 0")
    results, num_params = run(
        args.config,
        args.device,
        repeats,
        steps,
        warmup,
        args.threads,
        args.seed,
        args.pytorch_keep_freed_memory,
        args.background_load,
    )
    print(report(args.config, args.device, results, num_params, args.threads, args.background_load))
    if args.pytorch_keep_freed_memory:
        print(f"(PyTorch ran with MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_={2**62}, like tinygrad_tx's own setting)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
