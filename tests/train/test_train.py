"""The trainer CLI end to end on a tiny model: learning, artefacts, exact resume, Ctrl-C,
sampling. Runs go through ``main(argv)`` in this process (fast); one real subprocess checks --help.
Bad inputs are in test_train_errors.py; same-seed determinism in test_reliability.py."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import train.distributed as distributed_module
import train.trainer as trainer_module
from tinygrad_tx import backend
from train import sample as sample_cli
from train import shakespeare
from train.checkpoint import load_checkpoint
from train.cli import parse_command_line

from helpers import REPO
from helpers.cli import read_metrics, run_cli, tiny_args

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "loss.png",
    "gradflow.png",
    "ckpt_best.npz",
    "ckpt_last.npz",
    "tokenizer.json",
)


@pytest.fixture(scope="module")
def full_run(small_text, tmp_path_factory):
    """An uninterrupted 40-step run: (run directory, exit status, stdout)."""
    out_dir = tmp_path_factory.mktemp("full")
    status, stdout, _ = run_cli(shakespeare, tiny_args(small_text, out_dir, 40))
    return out_dir, status, stdout


def test_smoke_run_learns_and_writes_every_artefact(full_run):
    out_dir, status, stdout = full_run
    assert status == 0
    for name in RUN_FILES:
        assert (out_dir / name).stat().st_size > 0, name
    evals = [r for r in read_metrics(out_dir) if r["kind"] == "eval"]
    assert [r["iter"] for r in evals] == [0, 10, 20, 30, 40]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.5 and evals[-1]["train_loss"] < evals[0]["train_loss"] - 0.5
    steps = [r for r in read_metrics(out_dir, keep_timing=True) if r["kind"] == "train"]
    assert [r["iter"] for r in steps] == list(range(40))
    assert all(r["ms_per_iter"] > 0 and r["tokens_per_s"] > 0 and r["mfu"] > 0 for r in steps)
    import matplotlib.image

    for picture in ("loss.png", "gradflow.png"):
        assert (out_dir / picture).read_bytes().startswith(PNG_SIGNATURE)
        assert matplotlib.image.imread(str(out_dir / picture)).shape[2] in (3, 4)
    assert set(steps[-1]["grad_norms"]) == {"wte", "wpe", "h.0", "ln_f"}  # lm_head is tied to wte
    assert all(norm > 0 for norm in steps[-1]["grad_norms"].values())
    config = json.loads((out_dir / "config.json").read_text())
    assert config["n_embd"] == 32 and config["peak_flops"] > 1e8  # measured once, then cached here
    assert "--- sample" in stdout and "final val loss" in stdout
    assert not [f for f in os.listdir(out_dir) if f.endswith(".tmp")]


def test_checkpoints_hold_the_whole_training_state(full_run):
    out_dir = full_run[0]
    last = load_checkpoint(str(out_dir / "ckpt_last.npz"))
    assert last["iter_num"] == 40 and last["config"]["max_iters"] == 40
    assert set(last["rng"]) == {"engine", "batch"} and last["tokenizer"]["type"] == "char"
    assert last["model"]["transformer.wte.weight"].shape == (last["model_args"]["vocab_size"], 32)
    assert all(entries["step"] == 40 for entries in last["optimizer"]["state"].values())
    best = load_checkpoint(str(out_dir / "ckpt_best.npz"))
    best_eval = min((r for r in read_metrics(out_dir) if r["kind"] == "eval"), key=lambda r: r["val_loss"])
    assert best["iter_num"] == best_eval["iter"] and best["best_val_loss"] == best_eval["val_loss"]


def test_resume_gives_the_losses_of_an_uninterrupted_run(full_run, small_text, tmp_path):
    assert run_cli(shakespeare, tiny_args(small_text, tmp_path, 20))[0] == 0
    status, stdout, _ = run_cli(shakespeare, ["--out_dir", str(tmp_path), "--resume", "--max_iters", "40"])
    assert status == 0 and "resuming at iteration 20" in stdout
    assert read_metrics(tmp_path) == read_metrics(full_run[0])


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(full_run, small_text, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_get_batch = trainer_module.get_batch

    def interrupting_get_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 30:  # inside a training step after the second evaluation
            raise KeyboardInterrupt
        return real_get_batch(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "get_batch", interrupting_get_batch)
    status, _, stderr = run_cli(shakespeare, tiny_args(small_text, tmp_path, 40))
    monkeypatch.undo()
    stopped_at = load_checkpoint(str(tmp_path / "ckpt_last.npz"))["iter_num"]
    assert status == 130 and 10 < stopped_at < 20
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted at iteration {stopped_at}; saved {tmp_path / 'ckpt_last.npz'} (continue with --resume)"
    )
    assert run_cli(shakespeare, ["--out_dir", str(tmp_path), "--resume"])[0] == 0
    assert read_metrics(tmp_path) == read_metrics(full_run[0])


def test_ctrl_c_during_the_update_applies_the_whole_step(full_run, small_text, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_clip = distributed_module.clip_grad_norm_  # the trainer clips through train/distributed.py

    def clip_then_signal(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # a real SIGINT in the middle of step 6's update
            os.kill(os.getpid(), signal.SIGINT)
        return real_clip(*args, **kwargs)

    monkeypatch.setattr(distributed_module, "clip_grad_norm_", clip_then_signal)
    status, _, stderr = run_cli(shakespeare, tiny_args(small_text, tmp_path, 40))
    monkeypatch.undo()
    assert status == 130 and "interrupted at iteration 7" in stderr
    assert run_cli(shakespeare, ["--out_dir", str(tmp_path), "--resume"])[0] == 0
    assert read_metrics(tmp_path) == read_metrics(full_run[0])


def test_accumulation_full_val_bpe_dropout_and_anomaly_mode_run(small_text, tmp_path):
    shorter = tmp_path / "short.txt"  # a 2k-character val split keeps the full-val passes quick
    shorter.write_text(small_text.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    extra = [
        "--gradient_accumulation_steps",
        "2",
        "--eval_full_val",
        "--tokenizer",
        "bpe",
        "--vocab_size",
        "300",
        "--dropout",
        "0.1",
        "--bias",
        "true",
        "--detect_anomaly",
        "--eval_interval",
        "4",
        "--batch_size",
        "8",
    ]
    status, stdout, stderr = run_cli(shakespeare, tiny_args(shorter, tmp_path, 4, *extra))
    assert status == 0, stderr
    assert json.loads((tmp_path / "tokenizer.json").read_text())["type"] == "bpe"
    checkpoint = load_checkpoint(str(tmp_path / "ckpt_last.npz"))
    assert checkpoint["model_args"]["vocab_size"] == 300 and "transformer.h.0.attn.c_attn.bias" in checkpoint["model"]
    evals = [r for r in read_metrics(tmp_path) if r["kind"] == "eval"]
    assert len(evals) == 2 and all(np.isfinite(r["val_loss"]) for r in evals)


def test_text_without_newlines_still_gets_its_final_sample(tmp_path):
    data = tmp_path / "one_line.txt"
    data.write_text("to be or not to be that is the question " * 60, encoding="utf-8")
    status, stdout, stderr = run_cli(shakespeare, tiny_args(data, tmp_path / "run", 2, "--sample_tokens", "12"))
    assert status == 0, stderr
    assert len(stdout.split("---\n")[-1].rstrip("\n")) == 12


def test_sample_streams_the_requested_number_of_tokens(full_run, tmp_path):
    out_dir = full_run[0]
    argv = [
        "--out_dir",
        str(out_dir),
        "--prompt",
        "ROMEO:",
        "--num_samples",
        "2",
        "--max_new_tokens",
        "30",
        "--seed",
        "7",
        "--top_p",
        "0.95",
    ]
    status, stdout, _ = run_cli(sample_cli, argv)
    samples = stdout.split(sample_cli.SEPARATOR + "\n")
    assert status == 0 and samples[-1] == "" and len(samples) == 3
    assert all(s.startswith("ROMEO:") and len(s) == len("ROMEO:") + 30 for s in samples[:2])  # char tokenizer
    assert samples[0] != samples[1]
    assert run_cli(sample_cli, argv)[1] == stdout  # same seed, same text
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("ROMEO:", encoding="utf-8")
    from_file = ["--prompt", f"FILE:{prompt_file}"] + argv[4:] + ["--ckpt", "best"]
    assert run_cli(sample_cli, ["--out_dir", str(out_dir)] + from_file)[1] == stdout
    with_flag = ["--out_dir", str(out_dir), "--prompt_file", str(prompt_file)] + argv[4:]
    assert run_cli(sample_cli, with_flag)[1] == stdout
    status, stdout, _ = run_cli(
        sample_cli, ["--out_dir", str(out_dir), "--ckpt", "last", "--num_samples", "1", "--max_new_tokens", "5"]
    )
    assert status == 0 and len(stdout.split(sample_cli.SEPARATOR)[0]) == 1 + 5  # the default prompt is "\n"


def test_config_file_beats_preset_and_command_line_beats_file(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("preset: baby\nmax_iters: 300\nlearning_rate: 3e-4\nbias: true\n", encoding="utf-8")
    command = parse_command_line(["--config", str(yaml_file), "--max_iters", "7"])
    config = command.config
    assert (config.n_embd, config.max_iters, config.learning_rate, config.bias) == (384, 7, 3e-4, True)
    assert command.explicit == {"max_iters": 7, "learning_rate": 3e-4, "bias": True}
    json_file = tmp_path / "run.json"
    json_file.write_text(json.dumps({"n_layer": 2, "dropout": 0.1, "device": "CPU"}), encoding="utf-8")
    config = parse_command_line(["--config", str(json_file), "--preset", "cpu", "--bias=False"]).config
    assert (config.n_layer, config.dropout, config.n_embd, config.bias, config.device) == (2, 0.1, 128, False, "cpu")


def test_presets_are_nanogpts_recipes():
    cpu = parse_command_line([]).config
    assert (cpu.n_layer, cpu.n_head, cpu.n_embd, cpu.block_size, cpu.batch_size, cpu.dropout, cpu.bias) == (
        4,
        4,
        128,
        64,
        12,
        0.0,
        False,
    )
    assert (
        cpu.learning_rate,
        cpu.max_iters,
        cpu.lr_decay_iters,
        cpu.min_lr,
        cpu.warmup_iters,
        cpu.beta1,
        cpu.beta2,
        cpu.weight_decay,
        cpu.grad_clip,
        cpu.eval_iters,
        cpu.eval_interval,
        cpu.log_interval,
    ) == (1e-3, 2000, 2000, 1e-4, 100, 0.9, 0.99, 0.1, 1.0, 20, 250, 10)
    baby = parse_command_line(["--preset", "baby"]).config
    assert (
        baby.n_layer,
        baby.n_head,
        baby.n_embd,
        baby.block_size,
        baby.batch_size,
        baby.dropout,
        baby.max_iters,
        baby.lr_decay_iters,
        baby.eval_interval,
        baby.eval_iters,
        baby.learning_rate,
        baby.beta2,
    ) == (6, 6, 384, 256, 64, 0.2, 5000, 5000, 250, 200, 1e-3, 0.99)


def test_help_lists_every_hyperparameter_with_its_default():
    result = subprocess.run(
        [sys.executable, "-m", "train.shakespeare", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    flat = " ".join(result.stdout.split())
    for flag, default in [
        ("--learning_rate", "0.001"),
        ("--n_layer", "4; baby: 6"),
        ("--device", "cpu"),
        ("--seed", "1337"),
        ("--tokenizer", "char"),
        ("--grad_clip", "1.0"),
    ]:
        assert flag in flat and f"default: {default}" in flat
    for flag in ("--resume", "--config", "--preset", "--debug", "--eval_full_val", "--peak_flops", "--vocab_size"):
        assert flag in flat


def test_gpu_device_trains_or_fails_with_one_clear_error(small_text, tmp_path):
    # Under --gpu-standin the GPU's matmuls are NumPy's and every kernel launch is emulated: --peak_flops skips
    # the MFU denominator's eleven 4096^3 GEMMs (30 s on 2 cores), and few eval batches and sampled tokens keep
    # the launches few.
    status, _, stderr = run_cli(
        shakespeare,
        tiny_args(
            small_text,
            tmp_path,
            4,
            "--device",
            "gpu",
            "--eval_iters",
            "1",
            "--sample_tokens",
            "4",
            "--peak_flops",
            "1e12",
        ),
    )
    if backend.gpu_available()[0]:
        assert status == 0 and load_checkpoint(str(tmp_path / "ckpt_last.npz"))["iter_num"] == 4
    else:
        assert status == 2 and stderr.startswith("error: ") and "CuPy" in stderr and stderr.count("\n") == 1


TRAINER_PROBE = r"""
import ctypes, io, json, os, sys, tempfile, threading
loaded = []
_load = ctypes.CDLL.__init__
def recording_load(self, name, *args, **kwargs):
    loaded.append(str(name))
    _load(self, name, *args, **kwargs)
ctypes.CDLL.__init__ = recording_load

import numpy as np
from threadpoolctl import threadpool_info
from train.config import make_config
from train.tokenizers import CharTokenizer
from train.trainer import Trainer

def settings():
    return {"blas_threads": [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"],
            "threads": threading.active_count(), "numba": "numba" in sys.modules, "environment": dict(os.environ)}

before, loaded[:] = settings(), []
tokenizer = CharTokenizer.from_text("hello world")
ids = np.array(tokenizer.encode("hello world " * 20))
with tempfile.TemporaryDirectory() as out_dir:
    overrides = {"n_layer": 1, "n_head": 1, "n_embd": 8, "block_size": 4, "batch_size": 2, "max_iters": 1,
                 "out_dir": out_dir, "peak_flops": 1e12}
    Trainer(make_config(overrides=overrides), tokenizer, ids, ids, out=io.StringIO())
print(json.dumps({"before": before, "after": settings(), "libraries": loaded}))
"""


def test_building_a_trainer_changes_no_process_setting():
    """tune_for_training() (glibc's allocator via ctypes, BLAS and team threads, the compiled kernels) is
    the training CLI's call; a Trainer built in a test or a notebook leaves the process as it found it."""
    pytest.importorskip("threadpoolctl")
    env = dict(os.environ, PYTHONPATH=REPO)
    result = subprocess.run(
        [sys.executable, "-c", TRAINER_PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["libraries"] == [], f"building a Trainer loaded {report['libraries']} through ctypes (mallopt)"
    assert report["after"] == report["before"]
