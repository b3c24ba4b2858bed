"""GPT-2 inference on the CPU in tinygrad_tx and in PyTorch eager, timed in the same run.

    python -m bench.gpt2 [--config gpt2|tiny] [--repeats N] [--threads N] [--torch-model auto|transformers|nanogpt]

Two measurements at GPT-2 124M's shapes (12 layers, 12 heads, 768 channels, 1024 positions, vocabulary 50257,
the tanh GELU, biases), with random weights, the same on both sides:

- **forward**: one batch of 1 x 1024 random tokens under no_grad, the last position's logits (what sampling's
  prompt pass needs: nanoGPT's forward without targets, transformers's ``logits_to_keep=1``); tokens/s = 1024 / time.
- **sampling**: a 16-token prompt, then 64 new tokens drawn at temperature 1 with the key/value cache (the prompt
  run once, then one position per token); tokens/s = 64 / time, the prompt pass included.

Our side is ``models.gpt.GPT`` after ``tune_for_training()`` (as train.sample runs it), sampling with
``GPT.generate``. The PyTorch side is Hugging Face's ``GPT2LMHeadModel`` when transformers is installed (the test
extra; its default SDPA attention, eager mode, no torch.compile), our weights copied in with the Conv1D weights
transposed, sampling with a plain loop over its own key/value cache (its ``generate`` adds logits processors and
stopping checks that ours does not have). Without transformers (or with ``--torch-model nanogpt``) the PyTorch
side is bench/torch_gpt.py's nanoGPT, which has no key/value cache: its sampling row says so.

As bench/train_step.py: each side runs in its own spawned worker process (its imports, BLAS threads and allocator
its own), with OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE and OPENBLAS_THREAD_TIMEOUT removed from the workers'
environment only, both given ``--threads`` threads; after a warm-up the parent alternates the sides A B A B with a
pause between turns, and the ratio is the median of the per-round ratios. Peak memory is each worker's
``ru_maxrss`` at the end minus its value right after the imports: the weights (474 MiB at GPT-2 124M in float32),
their loading from the .npz, and the largest activations of the forward and of sampling.
"""

import argparse
import contextlib
import dataclasses
import importlib.util
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from bench.gpt2_sides import OursGPT2, TorchGPT2
from bench.sides import max_rss_mib
from bench.train_step import SETTLE_SECONDS, ask, quantile, worker_environment

CONFIGS = {  # "tiny" is the smoke test's size
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50257, prompt=16, new_tokens=64),
    "tiny": dict(n_layer=2, n_head=2, n_embd=16, block_size=32, vocab_size=50, prompt=4, new_tokens=8),
}
SIDES = ("tinygrad_tx", "pytorch")


def model_config(name):
    """(GPTConfig keyword arguments, prompt length, new tokens) of a named size."""
    settings = dict(CONFIGS[name])
    prompt, new_tokens = settings.pop("prompt"), settings.pop("new_tokens")
    return dict(settings, dropout=0.0, bias=True, gelu_approximate="tanh"), prompt, new_tokens


def tokens(seed, what, batch, length, vocab_size):
    """Random token ids (int64, (batch, length)), the same on both sides."""
    import numpy as np

    return np.random.default_rng([seed, what]).integers(0, vocab_size, (batch, length))


def worker(side_name, config_name, threads, torch_model, state_path, seed, connection):
    """Build one side, then answer ("forward", count) and ("sample", first, count) with the times of each call,
    ("memory",) with the peak MiB above the post-import baseline, until ("stop",)."""
    try:
        import numpy as np

        side_class = OursGPT2 if side_name == "tinygrad_tx" else TorchGPT2
        side_class.import_libraries()
        config, prompt, new_tokens = model_config(config_name)
        baseline = max_rss_mib()
        with np.load(state_path) as archive:
            state = {name: archive[name] for name in archive.files}
        side = side_class(config, state, threads, torch_model)
        del state
        connection.send(("ready", ""))
    except Exception as exc:  # reported to the parent, which prints it as the side's result
        connection.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    block, vocab = config["block_size"], config["vocab_size"]
    while True:
        request = connection.recv()
        if request[0] == "stop":
            return
        try:
            if request[0] == "memory":
                answer = max_rss_mib() - baseline
            elif request[0] == "logits":  # the forward's last-position logits, to check both sides agree
                answer = side.forward(tokens(seed, 0, 1, block, vocab)).reshape(-1)
            elif request[0] == "sample_unavailable":
                answer = side.sample_unavailable
            elif request[0] == "forward":
                answer = timed(lambda: side.forward(tokens(seed, 0, 1, block, vocab)), request[1])
            else:
                _, first, count = request
                prompt_ids = tokens(seed, 1, 1, prompt, vocab)
                answer = []
                for draw_seed in range(seed + first, seed + first + count):  # a new draw each time
                    start = time.perf_counter()
                    side.sample(prompt_ids, new_tokens, draw_seed)
                    answer.append(time.perf_counter() - start)
            connection.send(("ok", answer))
        except Exception as exc:
            connection.send(("error", f"{type(exc).__name__}: {exc}"))


def timed(call, count):
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


@dataclasses.dataclass
class SideResult:
    name: str
    forward_times: list = dataclasses.field(default_factory=list)
    sample_times: list = dataclasses.field(default_factory=list)
    memory_mib: float = 0.0
    logits: Any = None  # the forward's last-position logits (NumPy)
    error: str = ""  # the side could not start
    sample_error: str = ""  # it started but cannot sample


def resolve_torch_model(torch_model):
    if torch_model == "auto":
        return "transformers" if importlib.util.find_spec("transformers") is not None else "nanogpt"
    return torch_model


def run(config_name, repeats=3, warmup=1, threads=None, seed=1337, torch_model="auto"):
    """Time both sides, alternating; returns (results by side name, number of parameters, torch model used)."""
    import numpy as np

    from models.gpt import GPT, GPTConfig
    from tinygrad_tx import backend

    threads = threads or os.cpu_count()
    torch_model = resolve_torch_model(torch_model)
    config, _, _ = model_config(config_name)
    backend.manual_seed(seed)
    model = GPT(GPTConfig(**config))
    state, num_params = model.state_dict(), model.num_params()
    del model
    results = {name: SideResult(name) for name in SIDES}
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder:
        state_path = os.path.join(folder, "weights.npz")
        np.savez(state_path, **state)
        del state
        workers = {}
        for name in SIDES:
            with worker_environment(threads):
                parent_end, child_end = context.Pipe()
                args = (name, config_name, threads, torch_model, state_path, seed, child_end)
                process = context.Process(target=worker, daemon=True, args=args)
                process.start()
                workers[name] = (process, parent_end)
        for name, (_, connection) in list(workers.items()):
            status, detail = connection.recv()
            if status == "error":
                results[name].error = detail
                del workers[name]
        try:
            timed_rounds(workers, results, repeats, warmup)
            for name, (_, connection) in workers.items():
                results[name].memory_mib = ask(connection, "memory")
        finally:
            for process, connection in workers.values():
                with contextlib.suppress(OSError):
                    connection.send(("stop",))
                process.join(timeout=30)
    return results, num_params, torch_model


def timed_rounds(workers, results, repeats, warmup):
    """Warm up each side, then ``repeats`` rounds of one forward and one sampling per side, A B A B."""
    samplers = {}
    for name, (_, connection) in workers.items():
        ask(connection, "forward", warmup)
        results[name].logits = ask(connection, "logits")
        results[name].sample_error = ask(connection, "sample_unavailable")  # bench/torch_gpt.py: no cache
        if not results[name].sample_error:
            ask(connection, "sample", 0, warmup)
            samplers[name] = connection
    for round_index in range(repeats):
        for name, (_, connection) in workers.items():
            time.sleep(SETTLE_SECONDS)  # the other side's idle threads stop spinning first
            results[name].forward_times += ask(connection, "forward", 1)
        for name, connection in samplers.items():
            time.sleep(SETTLE_SECONDS)
            results[name].sample_times += ask(connection, "sample", warmup + round_index, 1)


def report(config_name, results, num_params, threads, torch_model):
    """The markdown table of one run."""
    config, prompt, new_tokens = model_config(config_name)
    block = config["block_size"]
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    pytorch = "transformers GPT2LMHeadModel" if torch_model == "transformers" else "bench/torch_gpt.py"
    lines = [
        f"config {config_name} ({threads} threads, load average {load} at the end): {config['n_layer']} layers, "
        f"{config['n_head']} heads, {config['n_embd']} channels, block {block}, vocabulary {config['vocab_size']}; "
        f"{num_params / 1e6:.1f}M parameters, random weights; PyTorch side: {pytorch}",
        "",
        "| | " + " | ".join(SIDES) + " |",
        "|---|" + "---|" * len(SIDES),
    ]
    rows = {
        f"forward B 1 T {block}, median (ms)": [],
        "forward tokens/s": [],
        f"sampling {new_tokens} tokens after {prompt}, median (ms)": [],
        "sampling tokens/s": [],
        "peak memory (MiB)": [],
    }
    for result in results.values():
        cells = list(rows.values())
        if result.error:
            cells[0].append(f"unavailable ({result.error})")
            for column in cells[1:]:
                column.append("-")
            continue
        forward = statistics.median(result.forward_times)
        cells[0].append(
            f"{forward * 1e3:.1f} ({quantile(result.forward_times, 0) * 1e3:.1f}-"
            f"{quantile(result.forward_times, 1) * 1e3:.1f})"
        )
        cells[1].append(f"{block / forward:,.0f}")
        if result.sample_times:
            sample = statistics.median(result.sample_times)
            cells[2].append(
                f"{sample * 1e3:.1f} ({quantile(result.sample_times, 0) * 1e3:.1f}-"
                f"{quantile(result.sample_times, 1) * 1e3:.1f})"
            )
            cells[3].append(f"{new_tokens / sample:,.1f}")
        else:
            cells[2].append(f"unavailable ({result.sample_error})")
            cells[3].append("-")
        cells[4].append(f"{result.memory_mib:.0f}")
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows.items()]
    ours, theirs = results["tinygrad_tx"], results["pytorch"]
    lines.append("")
    for what, a, b in (
        ("forward", ours.forward_times, theirs.forward_times),
        ("sampling", ours.sample_times, theirs.sample_times),
    ):
        if a and b:
            ratios = [x / y for x, y in zip(a, b)]
            lines.append(
                f"ours / PyTorch, {what}: {statistics.median(ratios):.2f} (median of {len(ratios)} per-round "
                f"ratios, range {min(ratios):.2f}-{max(ratios):.2f})"
            )
    if ours.logits is not None and theirs.logits is not None:
        import numpy as np

        difference = float(np.max(np.abs(ours.logits - theirs.logits)))
        lines.append(f"same weights: the forward's logits differ by at most {difference:.1e} (float32)")
    lines.append("(times: median (min-max) over the rounds)")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.gpt2", description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="gpt2")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (one forward, one sampling per side)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed forwards and samplings per side first")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="BLAS threads on both sides")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument(
        "--torch-model",
        choices=("auto", "transformers", "nanogpt"),
        default="auto",
        help="the PyTorch side: transformers's GPT2LMHeadModel (auto: when installed) or bench/torch_gpt.py",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1, --warmup >= 0")
    if args.torch_model == "transformers" and importlib.util.find_spec("transformers") is None:
        parser.error('--torch-model transformers: transformers is not installed (pip install -e ".[test]")')
    results, num_params, torch_model = run(
        args.config, args.repeats, args.warmup, args.threads, args.seed, args.torch_model
    )
    print(report(args.config, results, num_params, args.threads, torch_model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
