"""GPT.from_pretrained (models/pretrained.py): tiny GPT-2 checkpoints in Hugging Face's layout, made here.

The oracle is ``hf_gpt2_reference`` below: GPT-2 as Hugging Face's GPT2LMHeadModel computes it, written in torch
straight from the file's tensors (Conv1D ``x @ W + b`` on (in, out) weights, gelu_new's tanh formula spelled
out, the lm_head as the token embedding), so none of the key mapping or transposes under test is reused.
Where ``transformers`` itself is installed, tests/models/test_pretrained_transformers.py compares with it too.
"""

import math
import os

import numpy as np
import pytest
import torch

from models import pretrained
from models.gpt import GPT
from tinygrad_tx import Tensor, TinygradTxError

from helpers.hf_gpt2 import HF_CONFIG, fake_cache, hf_tensors, write_checkpoint


def hf_gpt2_reference(tensors, config, idx):
    """GPT2LMHeadModel's forward from the file's own tensors (names without a prefix), in torch float64."""
    skipped = (".attn.bias", ".attn.masked_bias", "lm_head.weight")
    w = {
        k.removeprefix("transformer."): torch.tensor(v, dtype=torch.float64, requires_grad=True)
        for k, v in tensors.items()
        if not k.endswith(skipped)
    }
    c, heads = config["n_embd"], config["n_head"]
    eps = config["layer_norm_epsilon"]
    B, T = idx.shape
    ids = torch.tensor(idx)

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, (c,), w[name + ".weight"], w[name + ".bias"], eps)

    def conv1d(x, name):  # transformers.pytorch_utils.Conv1D: addmm(bias, x, weight) with weight (in, out)
        return x @ w[name + ".weight"] + w[name + ".bias"]

    def gelu_new(x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    x = w["wte.weight"][ids] + w["wpe.weight"][torch.arange(T)]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(config["n_layer"]):
        q, k, v = conv1d(ln(x, f"h.{i}.ln_1"), f"h.{i}.attn.c_attn").split(c, dim=2)
        q, k, v = (z.view(B, T, heads, c // heads).transpose(1, 2) for z in (q, k, v))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(c // heads)
        att = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, c)
        x = x + conv1d(y, f"h.{i}.attn.c_proj")
        x = x + conv1d(gelu_new(conv1d(ln(x, f"h.{i}.ln_2"), f"h.{i}.mlp.c_fc")), f"h.{i}.mlp.c_proj")
    logits = ln(x, "ln_f") @ w["wte.weight"].T
    return logits, w


def test_logits_loss_and_gradients_equal_hugging_faces_gpt2(tmp_path):
    tensors = hf_tensors()
    model = GPT.from_pretrained(write_checkpoint(tmp_path / "ckpt", tensors))
    assert model.config.gelu_approximate == "tanh" and model.config.block_size == 16
    rng = np.random.default_rng(1)
    idx, targets = rng.integers(0, 23, (2, 16)), rng.integers(0, 23, (2, 16))
    logits, loss = model(Tensor(idx), Tensor(targets))
    loss.backward()
    ref_logits, weights = hf_gpt2_reference(tensors, HF_CONFIG, idx)
    ref_loss = torch.nn.functional.cross_entropy(ref_logits.reshape(-1, 23), torch.tensor(targets).reshape(-1))
    ref_loss.backward()
    np.testing.assert_allclose(logits.numpy(), ref_logits.detach().numpy(), atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(loss.item(), ref_loss.item(), rtol=1e-5)
    params = dict(model.named_parameters())
    for name, weight in weights.items():
        ours = params["transformer." + name].grad.numpy()
        expected = weight.grad.numpy().T if pretrained.is_conv1d(name) else weight.grad.numpy()
        np.testing.assert_allclose(ours, expected, atol=2e-5, rtol=1e-4, err_msg=name)


def test_exact_gelu_gives_different_logits(tmp_path):
    """gelu_new (tanh) is what GPT-2 computes; the exact erf GELU shifts the logits slightly."""
    tensors = hf_tensors()
    tanh_model = GPT.from_pretrained(write_checkpoint(tmp_path / "tanh", tensors))
    erf_model = GPT.from_pretrained(
        write_checkpoint(tmp_path / "erf", tensors, {**HF_CONFIG, "activation_function": "gelu"})
    )
    idx = Tensor(np.arange(16).reshape(1, 16))
    ref, _ = hf_gpt2_reference(tensors, HF_CONFIG, np.arange(16).reshape(1, 16))
    tanh_error = np.abs(tanh_model(idx)[0].numpy()[0, -1] - ref.detach().numpy()[0, -1]).max()
    erf_error = np.abs(erf_model(idx)[0].numpy()[0, -1] - ref.detach().numpy()[0, -1]).max()
    assert tanh_error < 1e-5 < erf_error


def test_transformer_prefix_lm_head_and_no_buffers(tmp_path):
    tensors = hf_tensors(prefix="transformer.", buffers=False)
    tensors["lm_head.weight"] = tensors["transformer.wte.weight"]
    model = GPT.from_pretrained(write_checkpoint(tmp_path, tensors))
    assert np.array_equal(model.lm_head.weight.numpy(), tensors["transformer.wte.weight"])
    assert model.lm_head.weight is model.transformer.wte.weight
    w = tensors["transformer.h.1.mlp.c_fc.weight"]
    assert np.array_equal(model.transformer.h[1].mlp.c_fc.weight.numpy(), w.T)


def test_pytorch_model_bin_read_with_weights_only(tmp_path):
    tensors = hf_tensors()
    write_checkpoint(tmp_path, tensors)
    os.remove(tmp_path / "model.safetensors")
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, tmp_path / "pytorch_model.bin")
    model = GPT.from_pretrained(str(tmp_path))
    assert np.array_equal(model.transformer.wpe.weight.numpy(), tensors["wpe.weight"])
    torch.save({"evil": object()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(TinygradTxError, match="weights_only=True"):
        GPT.from_pretrained(str(tmp_path))


@pytest.mark.parametrize("repo", ["gpt2", "openai-community/gpt2"])
@pytest.mark.parametrize("variable", ["HF_HUB_CACHE", "HF_HOME"])
def test_names_are_found_in_the_hub_cache(tmp_path, monkeypatch, repo, variable):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv(variable, str(tmp_path))
    fake_cache(tmp_path / "hub" if variable == "HF_HOME" else tmp_path, repo)
    for name in ("gpt2", "openai-community/gpt2"):
        assert GPT.from_pretrained(name).config.n_layer == 2


def test_home_cache_and_offline_error(tmp_path, monkeypatch):
    for variable in ("HF_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert pretrained.hub_cache_dir() == str(tmp_path / ".cache" / "huggingface" / "hub")
    real_find_spec = pretrained.importlib.util.find_spec
    monkeypatch.setattr(
        pretrained.importlib.util, "find_spec", lambda n: None if n == "huggingface_hub" else real_find_spec(n)
    )
    with pytest.raises(TinygradTxError) as caught:
        GPT.from_pretrained("gpt2-medium")
    message = str(caught.value)
    assert "\n" not in message and "huggingface-cli download openai-community/gpt2-medium" in message


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda t: t.pop("h.1.mlp.c_proj.bias"), "missing tensor 'h.1.mlp.c_proj.bias'"),
        (lambda t: t.update({"h.0.attn.c_attn.weight": np.zeros((24, 8), np.float32)}), "'h.0.attn.c_attn.weight' has shape (24, 8)"),  # noqa: E501
        (lambda t: t.update({"h.0.attn.c_attn.weight": np.zeros((8, 24), np.int32)}), "'h.0.attn.c_attn.weight' is I32"),  # noqa: E501
        (lambda t: t.update({"h.2.ln_1.weight": np.zeros(8, np.float32)}), "unexpected tensor 'h.2.ln_1.weight'"),
    ],
)  # fmt: skip
def test_wrong_tensors_are_one_line_errors_naming_them(tmp_path, change, fragment):
    tensors = hf_tensors()
    change(tensors)
    with pytest.raises(TinygradTxError) as caught:
        GPT.from_pretrained(write_checkpoint(tmp_path, tensors))
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_wrong_files_and_configs(tmp_path):
    write_checkpoint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(TinygradTxError, match="model.safetensors"):
        GPT.from_pretrained(str(tmp_path))
    os.remove(tmp_path / "model.safetensors")
    with pytest.raises(TinygradTxError, match="has no model.safetensors or pytorch_model.bin"):
        GPT.from_pretrained(str(tmp_path))
    for bad, fragment in [
        ({"activation_function": "relu"}, "activation_function 'relu'"),
        ({"n_inner": 7}, "n_inner=7"),
    ]:
        write_checkpoint(tmp_path / "bad", config={**HF_CONFIG, **bad})
        with pytest.raises(TinygradTxError, match=fragment):
            GPT.from_pretrained(str(tmp_path / "bad"))
    with pytest.raises(TinygradTxError, match="neither a directory nor a GPT-2 name"):
        GPT.from_pretrained("gpt3")
