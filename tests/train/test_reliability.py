"""Crash safety, determinism, anomaly reports and numerical robustness of a training run.

- A run killed with SIGKILL and resumed logs exactly the losses of a run that never stopped.
- A checkpoint write that fails halfway leaves the previous checkpoint intact and loadable.
- Ctrl-C in the middle of a checkpoint write still leaves one (Ctrl-C during training: tests/train/test_train.py).
- Two runs with the same seed and config are bit-identical on the CPU (docs/determinism.md).
- Anomaly mode names the op and the model's file:line of a planted NaN, in forward and backward.
Numerical robustness of the fused ops is in tests/nn/test_numerical_stability.py.
"""

import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import models.block
import models.gpt
from tinygrad_tx import AnomalyError, detect_anomaly
from tinygrad_tx.nn.activations import Gelu
from train import shakespeare
from train import trainer as trainer_module
from train.checkpoint import load_checkpoint
from train.config import make_config
from train.data import split_data
from train.tokenizers import CharTokenizer
from train.trainer import Trainer, TrainingInterrupted, checkpoint_path

from helpers import REPO
from helpers.cli import read_metrics
from helpers.gpt import tiny_gpt

IMPLS = ["fused", "composed"]


TINY = {
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 16,
    "block_size": 16,
    "batch_size": 4,
    "dropout": 0.1,
    "eval_iters": 2,
    "log_interval": 1,
    "sample_tokens": 0,
    "peak_flops": 1e9,
    "warmup_iters": 5,
}


def cli_args(corpus, out_dir, **overrides):
    values = {**TINY, "data": corpus, "out_dir": str(out_dir), **overrides}
    return [item for name, value in values.items() for item in (f"--{name}", str(value))]


def _default_ctrl_c():
    # a shell that runs pytest in the background hands it SIGINT ignored, and children inherit that
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def launch(corpus):
    """Start ``python -m train.shakespeare`` on the corpus; every process is killed at the end of the test."""
    processes = []

    def start(out_dir, **overrides):
        process = subprocess.Popen(
            [sys.executable, "-m", "train.shakespeare", *cli_args(corpus, out_dir, **overrides)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_ctrl_c,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def losses(records):
    """The deterministic part of metrics.jsonl (timings dropped)."""
    keys = ("kind", "iter", "loss", "train_loss", "val_loss", "lr")
    return [{k: r[k] for k in keys if k in r} for r in records]


def wait_for_step(process, out_dir, iteration, timeout=60):
    """Block until the run has logged training step ``iteration`` (so it is mid-run)."""
    deadline = time.monotonic() + timeout
    path = os.path.join(out_dir, "metrics.jsonl")
    logged = f'{{"kind": "train", "iter": {iteration},'  # a prefix: the line may still be being written
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the run ended early: {process.communicate()}"
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                if logged in f.read():
                    return
        time.sleep(0.01)
    raise AssertionError(f"no step {iteration} within {timeout} s")


# ======================================================================== crash safety
def test_sigkill_then_resume_gives_the_uninterrupted_losses(corpus, tmp_path, launch):
    run = dict(max_iters=30, eval_interval=10, lr_decay_iters=30)
    reference = launch(tmp_path / "reference", **run)
    victim = launch(tmp_path / "victim", **run)
    wait_for_step(victim, tmp_path / "victim", 22)  # checkpoints at steps 0, 10 and 20 exist by now
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    resumed_from = int(load_checkpoint(tmp_path / "victim" / "ckpt_last.npz")["iter_num"])
    assert 20 <= resumed_from < 30
    resume = subprocess.run(
        [sys.executable, "-m", "train.shakespeare", "--resume", *cli_args(corpus, tmp_path / "victim", **run)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert resume.returncode == 0, resume.stderr
    assert f"resuming at iteration {resumed_from}" in resume.stdout
    assert reference.wait(timeout=120) == 0, reference.communicate()
    expected, actual = losses(read_metrics(tmp_path / "reference")), losses(read_metrics(tmp_path / "victim"))
    assert len(actual) == len(expected) and actual == expected  # bit for bit: floats compared exactly
    final, reference_final = (load_checkpoint(tmp_path / run / "ckpt_last.npz") for run in ("victim", "reference"))
    for name, weight in reference_final["model"].items():
        np.testing.assert_array_equal(final["model"][name], weight, err_msg=name)


@pytest.fixture
def no_plots(monkeypatch):
    """The loss curve plays no part in these tests and takes about 0.5 s to draw per evaluation."""
    monkeypatch.setattr(trainer_module, "plot_losses", lambda records, path, title: None)


def _tiny_trainer(corpus, out_dir, **overrides):
    with open(corpus, encoding="utf-8") as f:
        text = f.read()
    tokenizer = CharTokenizer.from_text(text)
    train_ids, val_ids = split_data(np.array(tokenizer.encode(text)))
    config = make_config(overrides={**TINY, "data": corpus, "out_dir": str(out_dir), **overrides})
    return Trainer(config, tokenizer, train_ids, val_ids, out=io.StringIO())


class DiskFull(OSError):
    pass


def test_a_checkpoint_write_failing_halfway_keeps_the_previous_one(corpus, tmp_path, monkeypatch, no_plots):
    trainer = _tiny_trainer(corpus, tmp_path, max_iters=10, eval_interval=5)
    real_savez = np.savez

    def savez_then_fail(file, **arrays):  # write half of a real archive, then fail as a full disk would
        buffer = io.BytesIO()
        real_savez(buffer, **arrays)
        file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise DiskFull("No space left on device")

    saves = []  # step 0 writes ckpt_last and ckpt_best; the third save, ckpt_last at step 5, fails halfway
    monkeypatch.setattr(
        np,
        "savez",
        lambda file, **arrays: (saves.append(1), (real_savez if len(saves) <= 2 else savez_then_fail)(file, **arrays)),
    )
    with pytest.raises(DiskFull):
        trainer.run()
    assert len(saves) == 3
    assert sorted(os.listdir(tmp_path)) == [
        "ckpt_best.npz",
        "ckpt_last.npz",
        "config.json",
        "gradflow.png",
        "metrics.jsonl",
        "tokenizer.json",
    ]  # no half-written file left
    monkeypatch.setattr(np, "savez", real_savez)
    payload = load_checkpoint(tmp_path / "ckpt_last.npz")
    assert payload["iter_num"] == 0
    resumed = _tiny_trainer(corpus, tmp_path, max_iters=10, eval_interval=5)
    resumed._restore(payload)
    assert resumed.iter_num == 0


def test_a_rename_that_never_happens_keeps_the_previous_checkpoint(corpus, tmp_path, monkeypatch, no_plots):
    trainer = _tiny_trainer(corpus, tmp_path, max_iters=2, eval_interval=2)
    trainer.run()
    path = checkpoint_path(str(tmp_path), "last")
    before = load_checkpoint(path)
    trainer.iter_num += 1  # a later state, which the failing save below was writing
    trainer.model.transformer.wte.weight.data += 1

    def crash_before_rename(src, dst):
        raise KeyboardInterrupt  # killed between writing the temporary file and renaming it

    monkeypatch.setattr(os, "replace", crash_before_rename)
    with pytest.raises(KeyboardInterrupt):
        trainer.save("last")
    monkeypatch.undo()
    after = load_checkpoint(path)
    assert after["iter_num"] == before["iter_num"] == 2
    for name, weight in before["model"].items():
        np.testing.assert_array_equal(after["model"][name], weight, err_msg=name)
    assert trainer.save("last") == path and load_checkpoint(path)["iter_num"] == 3  # a stale .tmp does no harm


def test_ctrl_c_in_the_middle_of_a_checkpoint_write_still_saves_one(corpus, tmp_path, monkeypatch, no_plots):
    trainer = _tiny_trainer(corpus, tmp_path, max_iters=10, eval_interval=5)
    real_savez, saves = np.savez, []

    def ctrl_c_during_the_third_save(file, **arrays):  # step 0 saves last and best; step 5 saves last
        saves.append(1)
        if len(saves) == 3:
            file.write(b"PK\x03\x04 half an archive")
            raise KeyboardInterrupt
        real_savez(file, **arrays)

    monkeypatch.setattr(np, "savez", ctrl_c_during_the_third_save)
    with pytest.raises(TrainingInterrupted) as stop:
        trainer.run()
    assert stop.value.iteration == 5 and len(saves) == 4
    assert load_checkpoint(stop.value.path)["iter_num"] == 5
    assert not os.path.exists(f"{stop.value.path}.tmp")


def test_resume_after_a_metrics_line_cut_short(corpus, tmp_path, no_plots, capsys):
    args = cli_args(corpus, tmp_path, max_iters=4, eval_interval=2)
    assert shakespeare.main(args) == 0
    with open(tmp_path / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"kind": "train", "it')  # what a power cut or a full disk can leave behind
    assert shakespeare.main([*args, "--resume", "--max_iters", "6"]) == 0, capsys.readouterr().err
    assert [r["iter"] for r in read_metrics(tmp_path) if r["kind"] == "eval"] == [0, 2, 4, 6]


# ======================================================================== determinism
def test_two_runs_with_the_same_seed_are_bit_identical(corpus, tmp_path, no_plots):
    first = _tiny_trainer(corpus, tmp_path / "first", max_iters=12, eval_interval=6)
    first.run()
    second = _tiny_trainer(corpus, tmp_path / "second", max_iters=12, eval_interval=6)
    second.run()
    assert losses(first.records) == losses(second.records)
    for (name, a), (_, b) in zip(first.model.named_parameters(), second.model.named_parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    other_seed = _tiny_trainer(corpus, tmp_path / "third", max_iters=12, eval_interval=6, seed=7)
    other_seed.run()
    assert losses(other_seed.records) != losses(first.records)  # the seed does reach the run


def test_how_often_a_run_evaluates_does_not_change_its_training(corpus, tmp_path, no_plots):
    often = _tiny_trainer(corpus, tmp_path / "often", max_iters=12, eval_interval=3)
    often.run()
    rarely = _tiny_trainer(corpus, tmp_path / "rarely", max_iters=12, eval_interval=12)
    rarely.run()
    steps = [r for r in losses(often.records) if r["kind"] == "train"]
    assert steps == [r for r in losses(rarely.records) if r["kind"] == "train"] and len(steps) == 12


# ======================================================================== anomaly mode
def _line_of(module, text):
    """'path:line' of the first line of ``module``'s source that contains ``text``."""
    with open(module.__file__, encoding="utf-8") as f:
        number = next(i for i, line in enumerate(f, 1) if text in line)
    return f"{module.__file__}:{number}"


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_anomaly_names_the_op_and_model_line_of_a_nan_in_forward():
    model = tiny_gpt()
    model.transformer.wte.weight.data[3] = np.nan
    tokens = np.array([[1, 3, 5]])
    with detect_anomaly(), pytest.raises(AnomalyError) as caught:
        model(tokens, tokens)
    assert str(caught.value) == (
        "anomaly: EmbeddingFunction produced a NaN or Inf in its forward pass (output); "
        f"the op was created at {_line_of(models.gpt, 'self.transformer.wte(idx)')}"
    )


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_trainer_detect_anomaly_names_the_op_and_model_line_of_a_nan_in_backward(corpus, tmp_path, monkeypatch, capsys):
    real_backward = Gelu.backward
    monkeypatch.setattr(Gelu, "backward", staticmethod(lambda ctx, grad: real_backward(ctx, grad) * np.nan))
    code = shakespeare.main(cli_args(corpus, tmp_path, max_iters=2, detect_anomaly=True))
    assert code == 1
    assert capsys.readouterr().err == (
        "error: anomaly: Gelu produced a NaN or Inf in its backward pass (gradient of "
        f"an input); the op was created at {_line_of(models.block, 'F.gelu(')}\n"
    )
