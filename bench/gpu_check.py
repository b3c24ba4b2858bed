"""Check the GPU path on a real GPU in one command, and print one table.

    python -m bench.gpu_check [--iters 200] [--skip-tests]

Three checks, in order, each in its own process:
1. the gpu-marked tests (``python -m pytest -m gpu tests``; needs a source checkout and the test extra);
2. ``python -m train.shakespeare --preset baby --device gpu`` for ``--iters`` iterations (default 200),
   on Tiny Shakespeare (found as train/data.py says), evaluated at the end;
3. the baby train step against PyTorch eager on the GPU (``bench.train_step --config baby --device gpu``):
   tokens/s, MFU of the measured fp32 GEMM peak, peak device memory.

Without a usable GPU it prints one line saying why and exits with status 1; it also exits 1 when a
check fails. On a CPU-only machine the GPU path is checked instead by ``python -m pytest --gpu-standin``
(docs/performance.md, "Checking the GPU path").
"""

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")


@dataclasses.dataclass
class Row:
    check: str
    ours: str
    pytorch: str = "-"
    ok: bool = True


def _run(command, timeout):
    """(exit status, stdout + stderr, seconds) of a command run from the repository root."""
    started = time.perf_counter()
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout, check=False
    )
    return done.returncode, done.stdout + done.stderr, time.perf_counter() - started


def _last_line(output):
    lines = output.strip().splitlines()
    return lines[-1] if lines else "(no output)"


def summary_counts(pytest_output: str) -> dict:
    """{'passed': 93, 'failed': 0, ...} from pytest's last summary line."""
    lines = [line for line in pytest_output.splitlines() if re.search(r"\d+ (passed|failed|error|skipped)", line)]
    return {word: int(count) for count, word in re.findall(r"(\d+) (\w+)", lines[-1])} if lines else {}


def check_tests() -> Row:
    if not os.path.isdir(TESTS):
        return Row("gpu-marked tests", "not run: tests/ is missing (run from a source checkout)", ok=False)
    status, output, seconds = _run(
        [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", TESTS], timeout=3600
    )
    counts = summary_counts(output)
    text = ", ".join(f"{n} {word}" for word, n in counts.items()) or "no summary: " + _last_line(output)
    ran = counts.get("passed", 0) > 0 and not counts.get("skipped", 0)  # a skip here means no GPU reached pytest
    return Row("gpu-marked tests", f"{text} in {seconds:.0f} s", ok=status == 0 and ran)


def final_records(metrics_path: str):
    """(last eval record, last train record with timing) of a run's metrics.jsonl."""
    with open(metrics_path, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    evals = [r for r in records if r["kind"] == "eval"]
    timed = [r for r in records if r["kind"] == "train" and "tokens_per_s" in r]
    return (evals[-1] if evals else None), (timed[-1] if timed else None)


def check_training(iters: int) -> Row:
    with tempfile.TemporaryDirectory() as out_dir:
        status, output, seconds = _run(
            [
                sys.executable,
                "-m",
                "train.shakespeare",
                "--preset",
                "baby",
                "--device",
                "gpu",
                "--max_iters",
                str(iters),
                "--eval_interval",
                str(iters),
                "--out_dir",
                out_dir,
                "--sample_tokens",
                "0",
            ],
            timeout=3600,
        )
        metrics = os.path.join(out_dir, "metrics.jsonl")
        if status != 0 or not os.path.isfile(metrics):
            return Row(f"train.shakespeare baby, {iters} iters", f"failed: {_last_line(output)}", ok=False)
        last_eval, last_step = final_records(metrics)
    text = (
        f"train {last_eval['train_loss']:.3f}, val {last_eval['val_loss']:.3f} after {last_eval['iter']} iters; "
        f"{seconds:.0f} s"
    )
    if last_step is not None:
        text += f"; {last_step['tokens_per_s']:,.0f} tokens/s"
    return Row(f"train.shakespeare baby, {iters} iters", text, ok=last_eval["iter"] == iters)


def train_step_rows(results, num_params) -> list:
    """Rows of the baby step comparison from ``bench.train_step.run``'s results."""
    import statistics

    from bench import train_step

    config, batch_size = train_step.model_config("baby")
    tokens = batch_size * config["block_size"]
    per_token = train_step.flops_per_token(config["n_layer"], config["n_embd"], config["block_size"], num_params or 0)
    flops = per_token * tokens
    peak = max(r.gemm_flops for r in results.values()) or float("nan")
    cells = {"tokens/s": [], "MFU (of measured GEMM peak)": [], "peak device memory (MiB)": []}
    for name in train_step.SIDES:
        result = results[name]
        if result.error or not result.step_times:
            for label, column in cells.items():
                column.append(f"unavailable ({result.error})" if label == "tokens/s" else "-")
            continue
        median = statistics.median(result.step_times)
        cells["tokens/s"].append(f"{tokens / median:,.0f}")
        cells["MFU (of measured GEMM peak)"].append(f"{flops / median / peak:.0%}")
        cells["peak device memory (MiB)"].append(f"{result.memory_mib:,.0f}")
    ok = not any(r.error for r in results.values())
    return [Row(f"baby train step: {label}", *values, ok=ok) for label, values in cells.items()]


def check_train_step() -> list:
    from bench import train_step

    try:
        results, num_params = train_step.run("baby", "gpu", repeats=3, steps=1, warmup=1)
    except Exception as exc:  # noqa: BLE001  (a worker's failure: reported in the table, not as a traceback)
        return [Row("baby train step", f"failed: {type(exc).__name__}: {exc}", ok=False)]
    return train_step_rows(results, num_params)


def format_table(rows, device_name: str) -> str:
    lines = [f"GPU check on {device_name}", "", "| check | tinygrad_tx | PyTorch eager | |", "|---|---|---|---|"]
    lines += [f"| {r.check} | {r.ours} | {r.pytorch} | {'ok' if r.ok else 'FAILED'} |" for r in rows]
    return "\n".join(lines)


def device_name() -> str | None:
    from tinygrad_tx import backend

    return backend.gpu_name()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200, help="training iterations on the baby preset")
    parser.add_argument("--skip-tests", action="store_true", help="skip the gpu-marked tests")
    args = parser.parse_args(argv)
    from tinygrad_tx import backend

    gpu_ok, reason = backend.gpu_available()
    if not gpu_ok:
        print(f"bench.gpu_check: no usable GPU on this machine, nothing checked ({reason})", file=sys.stderr)
        return 1
    rows = [] if args.skip_tests else [check_tests()]
    rows.append(check_training(args.iters))
    rows += check_train_step()
    print(format_table(rows, device_name()))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
