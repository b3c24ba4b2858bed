"""bench.gpu_check: one line and status 1 without a GPU; the table it prints from each check's results."""

import json
import os
import subprocess
import sys

import pytest

from bench import gpu_check
from tinygrad_tx import backend

from helpers import REPO


def test_without_a_gpu_it_says_so_in_one_line_and_exits_1():
    # CUDA_VISIBLE_DEVICES="" hides any GPU, so this is the no-GPU path on every machine
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": REPO}
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("bench.gpu_check: no usable GPU on this machine") and done.stderr.count("\n") == 1


def test_main_runs_nothing_without_a_gpu(monkeypatch, capsys):
    monkeypatch.setattr(backend, "gpu_available", lambda: (False, "CuPy found no CUDA device"))
    monkeypatch.setattr(gpu_check, "check_tests", lambda: pytest.fail("a check ran without a GPU"))
    assert gpu_check.main([]) == 1
    assert "(CuPy found no CUDA device)" in capsys.readouterr().err


def test_pytest_summary_is_parsed():
    output = "....\n= 91 passed, 2 failed, 1 skipped in 12.3s =\n"
    assert gpu_check.summary_counts(output) == {"passed": 91, "failed": 2, "skipped": 1}


def fake_training_run(iters, write_metrics=True):
    def run(command, timeout):
        out_dir = command[command.index("--out_dir") + 1]
        assert command[command.index("--preset") + 1] == "baby"
        assert command[command.index("--max_iters") + 1] == str(iters)
        if write_metrics:
            records = (
                {"kind": "eval", "iter": 0, "train_loss": 4.2, "val_loss": 4.2},
                {"kind": "train", "iter": iters - 1, "loss": 2.5, "tokens_per_s": 123456.7, "mfu": 0.3},
                {"kind": "eval", "iter": iters, "train_loss": 2.456, "val_loss": 2.5011},
            )
            with open(os.path.join(out_dir, "metrics.jsonl"), "w") as handle:
                handle.writelines(json.dumps(record) + "\n" for record in records)
            return 0, "", 42.0
        return 1, "Traceback ...\nCompileException: identifier INFINITY is undefined\n", 3.0

    return run


def test_training_row_reads_the_run_metrics(monkeypatch):
    monkeypatch.setattr(gpu_check, "_run", fake_training_run(200))
    row = gpu_check.check_training(200)
    assert row.ok and row.ours == "train 2.456, val 2.501 after 200 iters; 42 s; 123,457 tokens/s"
    monkeypatch.setattr(gpu_check, "_run", fake_training_run(200, write_metrics=False))
    row = gpu_check.check_training(200)
    assert not row.ok and row.ours == "failed: CompileException: identifier INFINITY is undefined"


def test_table_has_one_row_per_check_and_both_sides_of_the_step():
    from bench import train_step

    results = {
        "tinygrad_tx": train_step.SideResult("tinygrad_tx", [0.2], [0.2, 0.2, 0.2], 5e13, 2048.0),
        "pytorch": train_step.SideResult("pytorch", [0.1], [0.1, 0.1, 0.1], 6e13, 1024.0),
    }
    rows = [gpu_check.Row("gpu-marked tests", "93 passed in 60 s")] + gpu_check.train_step_rows(results, 10_000_000)
    table = gpu_check.format_table(rows, "NVIDIA H200").splitlines()
    assert table[0] == "GPU check on NVIDIA H200" and table[2] == "| check | tinygrad_tx | PyTorch eager | |"
    assert table[4] == "| gpu-marked tests | 93 passed in 60 s | - | ok |"
    assert table[5] == "| baby train step: tokens/s | 81,920 | 163,840 | ok |"  # 64 x 256 tokens per step
    assert table[6].startswith("| baby train step: MFU (of measured GEMM peak) | ") and table[6].count("%") == 2
    assert table[7] == "| baby train step: peak device memory (MiB) | 2,048 | 1,024 | ok |"


def test_a_side_that_could_not_run_fails_the_check():
    from bench import train_step

    results = {
        "tinygrad_tx": train_step.SideResult("tinygrad_tx", [0.2], [0.2], 5e13, 2048.0),
        "pytorch": train_step.SideResult("pytorch", error="RuntimeError: this PyTorch build has no CUDA device"),
    }
    rows = gpu_check.train_step_rows(results, 10_000_000)
    assert rows[0].pytorch == "unavailable (RuntimeError: this PyTorch build has no CUDA device)"
    assert not any(row.ok for row in rows) and "FAILED" in gpu_check.format_table(rows, "x")
