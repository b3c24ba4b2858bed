"""Data-parallel training (train/distributed.py): one process's numbers from W ranks.

In-process: the batch split, the gradient buckets against the engine's post-accumulate-grad hooks (NumPy, a
simulated second rank), ZeRO-1's sharding, and W = 1 equal bit for bit to the single-process
algorithm. Under ``mpiexec -n 2`` (skipped with the reason where MPI is missing): 2 ranks equal 1
process at the same global batch, ZeRO-1 and buckets equal plain data-parallel, a failing rank or
diverging ranks end the job, and a Ctrl-C'd 2-rank run resumes exactly.
"""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from models.gpt import GPT, GPTConfig
from tinygrad_tx import manual_seed
from tinygrad_tx.optim import clip_grad_norm_, cosine_lr
from train import shakespeare
from train.checkpoint import load_checkpoint
from train.config import ConfigError, make_config
from train.data import get_batch
from train.distributed import DataParallel

from helpers import REPO
from helpers.cli import read_metrics, run_cli
from helpers.mpi import SimulatedRanks, launch_env, launch_ranks, mpi_missing, mpiexec, requires_mpi
from helpers.optional import cuda_emulation_missing

TRAIN_STREAM = 1  # train.trainer.TRAIN_BATCH_STREAM


def args(data, out_dir, max_iters=6, *extra):
    return [
        "--data",
        str(data),
        "--out_dir",
        str(out_dir),
        "--max_iters",
        str(max_iters),
        "--n_layer",
        "1",
        "--n_head",
        "2",
        "--n_embd",
        "32",
        "--block_size",
        "16",
        "--batch_size",
        "4",
        "--gradient_accumulation_steps",
        "2",
        "--learning_rate",
        "3e-3",
        "--warmup_iters",
        "2",
        "--lr_decay_iters",
        "60",
        "--eval_interval",
        "3",
        "--eval_iters",
        "2",
        "--log_interval",
        "1",
        "--sample_tokens",
        "0",
        "--peak_flops",
        "1e9",
        *extra,
    ]


def weights(out_dir):
    return load_checkpoint(os.path.join(out_dir, "ckpt_last.npz"))


def losses(out_dir):
    return [(r["kind"], r["iter"], r.get("loss", r.get("val_loss"))) for r in read_metrics(out_dir)]


# ---------------------------------------------------------------- in-process
def test_ranks_split_the_same_global_batch_stream():
    config = make_config(overrides={"gradient_accumulation_steps": 4})
    draws = [DataParallel(config, SimulatedRanks(rank)).rank_batches(iter(range(100)).__next__) for rank in range(2)]
    assert draws == [[0, 1], [2, 3]]  # together the 4 micro-batches one process would draw
    with pytest.raises(ConfigError, match="gradient_accumulation_steps 3 is not divisible by the world size 2"):
        DataParallel(make_config(overrides={"gradient_accumulation_steps": 3}), SimulatedRanks())


def test_one_process_takes_the_single_process_path_bit_for_bit(small_text, tmp_path):
    """The trainer at W = 1 (and with --zero 1) against the algorithm written out here: nanoGPT's loop."""
    status, _, _ = run_cli(shakespeare, args(small_text, tmp_path / "plain", 6, "--dropout", "0.1"))
    assert status == 0
    status, _, _ = run_cli(shakespeare, args(small_text, tmp_path / "zero", 6, "--dropout", "0.1", "--zero", "1"))
    assert status == 0
    saved = weights(tmp_path / "plain")
    config = make_config(overrides=saved["config"])
    manual_seed(config.seed)
    model = GPT(GPTConfig(**saved["model_args"]))
    optimizer = model.configure_optimizers(config.weight_decay, config.learning_rate, (config.beta1, config.beta2))
    batch_rng = np.random.default_rng([config.seed, TRAIN_STREAM])
    ids = np.array([saved["tokenizer"]["chars"].index(ch) for ch in small_text.read_text(encoding="utf-8")])
    train_ids = ids[: int(len(ids) * 0.9)]
    for iteration in range(6):
        for _ in range(config.gradient_accumulation_steps):
            x, y = get_batch(train_ids, config.batch_size, config.block_size, "cpu", batch_rng)
            (model(x, y)[1] / config.gradient_accumulation_steps).backward()
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(
                iteration, config.learning_rate, config.min_lr, config.warmup_iters, config.lr_decay_iters
            )
        clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad()
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(saved["model"][name], value, err_msg=name)
        np.testing.assert_array_equal(weights(tmp_path / "zero")["model"][name], value, err_msg=name)
    assert losses(tmp_path / "zero") == losses(tmp_path / "plain")


def test_several_ranks_without_mpi4py_stop_before_writing(small_text, tmp_path, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    status, _, err = run_cli(shakespeare, args(small_text, tmp_path / "run"))
    assert status == 2 and err.count("\n") == 1 and "mpi4py is not installed" in err, err
    assert not (tmp_path / "run").exists()


def test_bad_distributed_options_are_one_line_errors():
    with pytest.raises(ConfigError, match="zero must be one of 0, 1, got 2"):
        make_config(overrides={"zero": 2})
    with pytest.raises(ConfigError, match="bucket_mb must be >= 0"):
        make_config(overrides={"bucket_mb": -1.0})
    assert dataclasses.asdict(make_config())["dist_backend"] == "auto"


# ---------------------------------------------------------------- mpiexec -n 2
@pytest.fixture(scope="module")
def reference_runs(small_text, tmp_path_factory):
    """One process and 2 ranks (plain, ZeRO-1, gradient buckets) on the same global batch, dropout 0."""
    root = tmp_path_factory.mktemp("dp")
    assert run_cli(shakespeare, args(small_text, root / "one"))[0] == 0
    runs = {"one": root / "one"}
    for name, extra in {"dp": [], "zero": ["--zero", "1"], "buckets": ["--bucket_mb", "0.01"]}.items():
        result = launch_ranks([(2, args(small_text, root / name, 6, *extra))])
        assert result.returncode == 0, result.stdout + result.stderr
        runs[name] = root / name
        runs[name + "_stdout"] = result.stdout
    return runs


@requires_mpi
def test_two_ranks_equal_one_process_at_the_same_global_batch(reference_runs):
    one, two = weights(reference_runs["one"]), weights(reference_runs["dp"])
    worst = max(float(np.abs(one["model"][k] - two["model"][k]).max()) for k in one["model"])
    assert worst <= 1e-5, worst
    for (kind, at, a), (kind2, at2, b) in zip(losses(reference_runs["one"]), losses(reference_runs["dp"])):
        assert (kind, at) == (kind2, at2) and abs(a - b) <= 1e-5
    stdout = reference_runs["dp_stdout"]
    assert stdout.count("data-parallel: world size 2, backend mpi, per-rank batch 4 x 1 micro-steps") == 1
    assert stdout.count("step 6:") == 1  # rank 0 alone prints
    assert two["config"]["zero"] == 0 and len(two["rng"]["engine_ranks"]) == 2


@requires_mpi
@pytest.mark.parametrize("variant", ["zero", "buckets"])
def test_zero1_and_buckets_equal_plain_data_parallel(reference_runs, variant):
    plain, other = weights(reference_runs["dp"]), weights(reference_runs[variant])
    for name, value in plain["model"].items():
        np.testing.assert_array_equal(other["model"][name], value, err_msg=name)
    for index, state in plain["optimizer"]["state"].items():  # ZeRO's checkpoint gathered every rank's share
        for key, value in state.items():
            np.testing.assert_array_equal(other["optimizer"]["state"][index][key], value)
    assert losses(reference_runs[variant]) == losses(reference_runs["dp"])
    if variant == "zero":
        assert "ZeRO-1 AdamW state per rank" in reference_runs["zero_stdout"]


@requires_mpi
def test_a_failing_rank_ends_the_job_quickly(small_text, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("too short for a block\n", encoding="utf-8")
    started = time.perf_counter()
    result = launch_ranks([(1, args(small_text, tmp_path / "run")), (1, args(short, tmp_path / "run"))], timeout=60)
    assert result.returncode != 0 and time.perf_counter() - started < 10, result.stderr
    assert "error: [rank 1/2] block_size 16 is longer than the val split" in result.stderr


@requires_mpi
def test_diverging_ranks_stop_at_the_checksum(small_text, tmp_path):
    result = launch_ranks(
        [
            (1, args(small_text, tmp_path / "run")),
            (1, args(small_text, tmp_path / "run", 6, "--learning_rate", "1e-3")),
        ],
        timeout=60,
    )
    assert result.returncode == 2 and "parameters diverged by iteration 3" in result.stderr, result.stderr


@requires_mpi
def test_ctrl_c_stops_both_ranks_at_one_step_and_resume_is_exact(small_text, tmp_path):
    def run(out, *extra):
        return args(small_text, out, 24, "--dropout", "0.1", "--eval_interval", "12", *extra)

    assert launch_ranks([(2, run(tmp_path / "whole"))]).returncode == 0
    command = [mpiexec(), "-n", "2", sys.executable, "-m", "mpi4py", "-m", "train.shakespeare", *run(tmp_path / "cut")]
    process = subprocess.Popen(
        command,
        cwd=os.path.dirname(small_text),
        env=launch_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in process.stdout:
        if line.startswith("iter 3:"):
            process.send_signal(signal.SIGINT)
            break
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0 and "interrupted at iteration" in err, err
    stopped_at = weights(tmp_path / "cut")["iter_num"]
    assert 4 <= stopped_at < 24
    result = launch_ranks([(2, run(tmp_path / "cut", "--resume"))])
    assert result.returncode == 0, result.stderr
    whole, resumed = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    for name, value in whole["model"].items():
        np.testing.assert_array_equal(resumed["model"][name], value, err_msg=name)
    assert losses(tmp_path / "cut") == losses(tmp_path / "whole")
    assert json.dumps(resumed["rng"], sort_keys=True, default=str) == json.dumps(
        whole["rng"], sort_keys=True, default=str
    )


@requires_mpi
def test_a_zero1_checkpoint_resumes_in_one_process(reference_runs, tmp_path):
    """ZeRO-1's checkpoint holds every rank's share, so a 2-rank run continues at W = 1 like the 1-process run."""
    for name in ("zero", "one"):
        shutil.copytree(reference_runs[name], tmp_path / name)
        status, _, err = run_cli(shakespeare, ["--out_dir", str(tmp_path / name), "--resume", "--max_iters", "9"])
        assert status == 0, err
    resumed, one = weights(tmp_path / "zero"), weights(tmp_path / "one")
    assert {int(i): s["step"] for i, s in resumed["optimizer"]["state"].items()} == {
        int(i): 9 for i in one["optimizer"]["state"]
    }
    worst = max(float(np.abs(resumed["model"][k] - one["model"][k]).max()) for k in one["model"])
    assert worst <= 1e-5, worst


def standin_missing():
    """Why the GPU path cannot run on the CuPy stand-in under mpiexec here, or ''."""
    return cuda_emulation_missing() or mpi_missing()


@pytest.mark.skipif(bool(standin_missing()), reason=standin_missing() or "stand-in available")
@pytest.mark.parametrize("variant", [["--bucket_mb", "0.001"], ["--zero", "1"]], ids=["buckets", "zero"])
def test_the_gpu_path_on_two_ranks_through_the_cupy_standin(small_text, tmp_path, variant):
    """--device gpu under mpiexec with every array on the strict CuPy stand-in: no NCCL there, so the
    gradients go through MPI by host copies (HostCopyCommunicator), in buckets or ZeRO-1's reduce-scatter,
    and give one stand-in process's weights."""
    gpu = [
        "--device",
        "gpu",
        "--n_embd",
        "16",
        "--block_size",
        "8",
        "--batch_size",
        "2",
        "--max_iters",
        "2",
        "--eval_interval",
        "2",
        "--eval_iters",
        "1",
        "--peak_flops",
        "1e12",
    ]
    env = {**launch_env(), "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests")])}
    standin = [sys.executable, "-m", "gpu_standin.run", "-m", "train.shakespeare"]
    one = subprocess.run(
        [*standin, *args(small_text, tmp_path / "one"), *gpu],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [
            mpiexec(),
            "-n",
            "2",
            sys.executable,
            "-m",
            "mpi4py",
            *standin[1:],
            *args(small_text, tmp_path / "two"),
            *gpu,
            *variant,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    assert "backend mpi (host copies)" in two.stdout
    worst = max(
        float(np.abs(weights(tmp_path / "one")["model"][k] - value).max())
        for k, value in weights(tmp_path / "two")["model"].items()
    )
    assert worst <= 1e-5, worst
