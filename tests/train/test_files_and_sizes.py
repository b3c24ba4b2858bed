"""The CLIs given lying checkpoints or impossible sizes, and a run directory that already holds a run.

Lying checkpoints and sizes: one ``error: ...`` line, exit status 2, fast and with nothing big allocated.
An existing run: refused without --resume or --overwrite, its files left byte for byte and mtime for mtime.
"""

import io
import os
import shutil
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from train import sample as sample_cli
from train import shakespeare
from train import visualize as visualize_cli
from train.checkpoint import load_checkpoint, save_checkpoint

from helpers.cli import run_cli, tiny_args


@pytest.fixture(scope="module")
def trained_dir(corpus, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("liesrun")
    status, _, stderr = run_cli(shakespeare, tiny_args(corpus, out_dir, 2, "--eval_interval", "2"))
    assert status == 0, stderr
    return out_dir


def fails_fast(module, argv, *fragments, seconds=1.0):
    """Run a CLI: exit 2, one ``error:`` line holding ``fragments``, within ``seconds``, a small allocation peak."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        status, _, stderr = run_cli(module, argv)
        elapsed, (_, peak) = time.perf_counter() - started, tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 2 and stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    for fragment in fragments:
        assert fragment in stderr, stderr
    assert elapsed < seconds, f"took {elapsed:.2f} s: {stderr}"
    assert peak < 64 * 2**20, f"allocated {peak / 2**20:.0f} MiB: {stderr}"
    return stderr


def forged_run(trained_dir, tmp_path, **changes):
    """A copy of the run whose checkpoints hold the payload with ``changes``."""
    run = tmp_path / "run"
    shutil.copytree(trained_dir, run)
    for name in ("best", "last"):
        payload = load_checkpoint(str(run / f"ckpt_{name}.npz"))
        payload.update(changes)
        save_checkpoint(str(run / f"ckpt_{name}.npz"), payload)
    return run


@pytest.mark.parametrize(
    "model_args, message",
    [
        ([1, 2], "model_args must be a JSON object of GPTConfig fields, got list"),
        ("{not json", "model_args are not valid JSON"),
        ("[" * 200000, "model_args are not valid JSON (nested too deeply)"),
        (
            {"vocab_size": 12, "n_embd": 4096, "n_head": 8, "n_layer": 1, "block_size": 16, "bias": False},
            "shape mismatch",
        ),
        (
            {"vocab_size": 200000, "n_embd": 20000, "n_head": 2, "n_layer": 1, "block_size": 16, "bias": False},
            "shape mismatch",
        ),
    ],
)
def test_sample_and_visualize_refuse_lying_model_args(trained_dir, tmp_path, model_args, message):
    run = forged_run(trained_dir, tmp_path, model_args=model_args)
    fails_fast(sample_cli, ["--out_dir", str(run)], message)
    fails_fast(visualize_cli, ["--out_dir", str(run)], message)


def test_a_checkpoint_whose_npy_header_claims_a_huge_array(trained_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_dir, run)
    path = run / "ckpt_last.npz"
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (200000, 200000)})
    entries["model/transformer.wte.weight.npy"] = header.getvalue() + bytes(16)
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    fails_fast(shakespeare, ["--out_dir", str(run), "--resume"], "claims shape (200000, 200000) float32")


def test_a_checkpoint_tree_nested_too_deeply(trained_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "ckpt_last.npz", "wb") as file:
        np.savez(file, __tree__=np.array("[" * 200000))
    fails_fast(shakespeare, ["--out_dir", str(run), "--resume"], "nested too deeply")


def test_resume_refuses_a_checkpoint_config_that_is_not_a_mapping(trained_dir, tmp_path):
    run = forged_run(trained_dir, tmp_path, config=[1, 2])
    fails_fast(shakespeare, ["--out_dir", str(run), "--resume"], "the checkpoint's config is not a mapping")


@pytest.fixture(scope="module")
def long_text(tmp_path_factory):
    """1.2 million characters: a val split longer than block_size 100000."""
    path = tmp_path_factory.mktemp("long") / "long.txt"
    path.write_text("".join(np.random.default_rng(1).choice(list("abcdefgh \n"), 1_200_000)), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--batch_size", "1000000000"], "training (batch_size 1000000000 x block_size 16, n_embd 32) needs about"),
        (["--n_embd", "1000000"], "n_embd 1000000) needs about"),
        (["--block_size", "100000"], "training (batch_size 4 x block_size 100000, n_embd 32) needs about"),
    ],
)
def test_sizes_that_cannot_fit_are_one_line_before_anything_is_built(long_text, tmp_path, flags, message):
    argv = tiny_args(long_text, tmp_path / "run", 2, *flags)
    stderr = fails_fast(shakespeare, argv, message, "of memory is available", seconds=5.0)  # reads 1.2 MB of text
    assert not (tmp_path / "run").exists(), stderr


# ---------------------------------------------------------------- an existing run directory
def snapshot(folder):
    return {
        name: (path.read_bytes(), path.stat().st_mtime_ns)
        for name, path in sorted((p.name, p) for p in folder.iterdir())
    }


def test_a_new_run_into_an_existing_run_is_refused_and_leaves_it_untouched(corpus, trained_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_dir, run)
    before = snapshot(run)
    time.sleep(0.01)
    stderr = fails_fast(shakespeare, tiny_args(corpus, run, 4), f"out_dir '{run}' already holds a run")
    assert "--resume" in stderr and "--overwrite" in stderr
    assert snapshot(run) == before
    status, _, stderr = run_cli(shakespeare, tiny_args(corpus, run, 2, "--resume", "--overwrite"))
    assert status == 2 and "give one of them" in stderr and snapshot(run) == before


def test_overwrite_replaces_the_run(corpus, trained_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_dir, run)
    before = snapshot(run)
    status, _, stderr = run_cli(shakespeare, tiny_args(corpus, run, 4, "--eval_interval", "4", "--overwrite"))
    assert status == 0, stderr
    after = snapshot(run)
    assert after["ckpt_last.npz"] != before["ckpt_last.npz"]
    assert int(load_checkpoint(str(run / "ckpt_last.npz"))["iter_num"]) == 4


def test_a_new_run_into_an_empty_or_unrelated_folder_needs_no_flag(corpus, tmp_path):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    status, _, stderr = run_cli(shakespeare, tiny_args(corpus, tmp_path, 2))
    assert status == 0, stderr
    assert os.path.exists(tmp_path / "ckpt_last.npz") and (tmp_path / "notes.txt").read_text() == "mine"
