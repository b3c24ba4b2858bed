"""Weights in safetensors (tinygrad_tx/serialization.py, GPT.save_safetensors, train.checkpoint's export):
round trips, clear errors, atomic writes, and a file written here loading into the PyTorch GPT
with the same logits."""

import json
import os

import numpy as np
import pytest

from models.gpt import GPT, GPTConfig
from tinygrad_tx import Tensor, TinygradTxError, manual_seed, randn
from tinygrad_tx.serialization import load_safetensors, save_safetensors
from train.checkpoint import export_safetensors, save_checkpoint

from helpers import assert_close

CONFIG = GPTConfig(block_size=8, vocab_size=13, n_layer=2, n_head=2, n_embd=16, bias=True)


def test_round_trip_keeps_names_dtypes_values_and_metadata(tmp_path):
    state = {
        "w": randn(3, 4),
        "ids": np.arange(5, dtype=np.int64),
        "half": np.ones(2, np.float16),
        "flag": Tensor([True, False]),
    }
    path = tmp_path / "weights.safetensors"
    save_safetensors(state, path, {"note": "hello"})
    loaded, metadata = load_safetensors(path)
    assert sorted(loaded) == sorted(state) and metadata == {"note": "hello"}
    for name, value in state.items():
        expected = value.numpy() if isinstance(value, Tensor) else value
        assert loaded[name].dtype == expected.dtype
        np.testing.assert_array_equal(loaded[name], expected)
    assert os.listdir(tmp_path) == ["weights.safetensors"], "a temporary file was left behind"


def test_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(TinygradTxError, match="metadata values must be strings"):
        save_safetensors({"w": np.ones(2)}, tmp_path / "x.safetensors", {"step": 3})
    assert not os.listdir(tmp_path)
    with pytest.raises(TinygradTxError, match="cannot read .*missing.safetensors"):
        load_safetensors(tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(TinygradTxError, match="cannot read .*bad.safetensors"):
        load_safetensors(tmp_path / "bad.safetensors")


def test_gpt_round_trip_and_config_in_metadata(tmp_path):
    manual_seed(3)
    model = GPT(CONFIG)
    path = tmp_path / "gpt.safetensors"
    model.save_safetensors(path)
    state, metadata = load_safetensors(path)
    assert json.loads(metadata["model_args"])["n_embd"] == 16
    assert "lm_head.weight" in state and "transformer.wte.weight" in state  # nanoGPT's state dict has both
    rebuilt = GPT.from_safetensors(path)
    assert rebuilt.config == CONFIG
    assert rebuilt.lm_head.weight is rebuilt.transformer.wte.weight, "loading untied the weights"
    idx = np.random.default_rng(0).integers(0, 13, (2, 8))
    np.testing.assert_array_equal(rebuilt(idx, idx)[0].numpy(), model(idx, idx)[0].numpy())
    other = GPT(CONFIG).load_safetensors(path)
    np.testing.assert_array_equal(other(idx, idx)[0].numpy(), model(idx, idx)[0].numpy())
    save_safetensors(model.state_dict(), tmp_path / "bare.safetensors")
    with pytest.raises(TinygradTxError, match="no 'model_args' metadata"):
        GPT.from_safetensors(tmp_path / "bare.safetensors")


def test_trainer_checkpoint_exports_to_safetensors(tmp_path):
    model = GPT(CONFIG)
    checkpoint = tmp_path / "ckpt_best.npz"
    save_checkpoint(str(checkpoint), {"model": model.state_dict(), "model_args": CONFIG.__dict__})
    export_safetensors(str(checkpoint), tmp_path / "model.safetensors")
    idx = np.random.default_rng(1).integers(0, 13, (1, 8))
    exported = GPT.from_safetensors(tmp_path / "model.safetensors")
    np.testing.assert_array_equal(exported(idx, idx)[0].numpy(), model(idx, idx)[0].numpy())


def test_a_file_written_here_loads_into_the_pytorch_reference_gpt(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    from bench.torch_gpt import TorchGPT

    manual_seed(11)
    model = GPT(CONFIG)
    path = tmp_path / "gpt.safetensors"
    model.save_safetensors(path)
    reference = TorchGPT(CONFIG)
    reference.load_state_dict(load_file(path), strict=True)  # PyTorch's own reader, no tinygrad_tx involved
    reference.eval()
    idx = np.random.default_rng(2).integers(0, 13, (3, 8))
    with torch.no_grad():
        theirs, their_loss = reference(torch.from_numpy(idx), torch.from_numpy(idx))
    ours, our_loss = model(idx, idx)
    assert_close(ours.numpy(), theirs.numpy(), 2e-5, what="logits from the same safetensors file")
    assert_close(our_loss.item(), their_loss.item(), 1e-5, what="loss")
