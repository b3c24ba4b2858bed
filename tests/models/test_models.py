"""models/ against PyTorch references (nanoGPT's modules from bench/torch_gpt.py, "Let's build GPT"'s
Head and MultiHeadAttention written here): forward values, loss and every parameter's gradient, weights copied across
through state_dict with dropout 0; 20 AdamW steps of a small GPT; the nanoGPT checkpoint converter.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

import tinygrad_tx.nn.functional as F
from bench.torch_gpt import Block as TorchBlock
from bench.torch_gpt import TorchGPT
from models import GPT, BigramLanguageModel, Block, GPTConfig, Head, MultiHeadAttention
from models.gpt import read_npz
from tinygrad_tx import Tensor
from tinygrad_tx.optim import clip_grad_norm_
from train import convert_nanogpt

from helpers import assert_close

torch.manual_seed(0)


# ---------------------------------------------------------------- PyTorch references
class TorchHead(tnn.Module):
    def __init__(self, n_embd, head_size, block_size):
        super().__init__()
        self.key, self.query, self.value = (tnn.Linear(n_embd, head_size, bias=False) for _ in range(3))
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)), persistent=False)

    def forward(self, x):
        T = x.shape[1]
        k, q = self.key(x), self.query(x)
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5
        wei = TF.softmax(wei.masked_fill(self.tril[:T, :T] == 0, float("-inf")), dim=-1)
        return wei @ self.value(x)


class TorchMultiHeadAttention(tnn.Module):
    def __init__(self, n_embd, n_head, head_size, block_size):
        super().__init__()
        self.heads = tnn.ModuleList([TorchHead(n_embd, head_size, block_size) for _ in range(n_head)])
        self.proj = tnn.Linear(head_size * n_head, n_embd)

    def forward(self, x):
        return self.proj(torch.cat([h(x) for h in self.heads], dim=-1))


# ---------------------------------------------------------------- helpers
def copy_weights(ours, theirs):
    """Our state_dict into the torch module, strictly: every name and layout must be the same."""
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)


def assert_grads_match(ours, theirs, rtol=1e-4, worst=None):
    torch_params = dict(theirs.named_parameters())
    ours_named = dict(ours.named_parameters())
    assert set(ours_named) == set(torch_params)
    for name, param in ours_named.items():
        expected = torch_params[name].grad.numpy()
        assert_close(param.grad.numpy(), expected, rtol, what=f"grad of {name}")
        if worst is not None:
            worst.append(np.abs(param.grad.numpy() - expected).max() / np.abs(expected).max())


def random_tokens(rng, vocab, shape):
    return rng.integers(0, vocab, size=shape)


@pytest.fixture(params=["fused", "composed"])
def impl(request):
    """Run with the fused ops, then with their twins built from primitives."""
    previous = F.get_default_impl()
    F.set_default_impl(request.param)
    yield request.param
    F.set_default_impl(previous)


GPT_CONFIGS = [
    GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16, bias=True),
    GPTConfig(block_size=16, vocab_size=37, n_layer=1, n_head=4, n_embd=32, bias=False),
    GPTConfig(block_size=12, vocab_size=19, n_layer=2, n_head=3, n_embd=24, bias=True, gelu_approximate="tanh"),
]


# ---------------------------------------------------------------- GPT
@pytest.mark.parametrize(
    "config", GPT_CONFIGS, ids=lambda c: f"L{c.n_layer}H{c.n_head}C{c.n_embd}bias{c.bias}{c.gelu_approximate}"
)
@pytest.mark.parametrize("length", ["full", "short"])
def test_gpt_matches_pytorch(config, length, impl):
    rng = np.random.default_rng(0)
    model, reference = GPT(config), TorchGPT(config)
    copy_weights(model, reference)
    T = config.block_size if length == "full" else config.block_size // 2 + 1
    idx, targets = random_tokens(rng, config.vocab_size, (3, T)), random_tokens(rng, config.vocab_size, (3, T))
    targets[0, :2] = -1  # ignored positions

    logits, loss = model(idx, targets)
    loss.backward()
    ref_logits, ref_loss = reference(torch.from_numpy(idx), torch.from_numpy(targets))
    ref_loss.backward()

    assert logits.shape == (3, T, config.vocab_size)
    assert_close(logits.numpy(), ref_logits.detach().numpy(), 1e-5, what="logits")
    assert_close(loss.item(), ref_loss.item(), 1e-6, what="loss")
    assert_grads_match(model, reference)
    assert model.lm_head.weight is model.transformer.wte.weight

    last, none = model(idx)
    ref_last, _ = reference(torch.from_numpy(idx))
    assert none is None and last.shape == (3, 1, config.vocab_size)
    assert_close(last.numpy(), ref_last.detach().numpy(), 1e-5, what="last-position logits")


def test_gpt_parameter_names_and_layouts_are_nanogpts():
    config = GPT_CONFIGS[0]
    state = GPT(config).state_dict()
    C = config.n_embd
    assert state["transformer.h.1.attn.c_attn.weight"].shape == (3 * C, C)
    assert state["transformer.h.0.mlp.c_fc.weight"].shape == (4 * C, C)
    assert state["lm_head.weight"].shape == (config.vocab_size, C)
    assert set(state) == set(TorchGPT(config).state_dict())


def test_gpt_init_statistics():
    config = GPTConfig(block_size=32, vocab_size=512, n_layer=4, n_head=4, n_embd=128)
    model = GPT(config)
    std = {name: float(p.numpy().std()) for name, p in model.named_parameters()}
    assert abs(std["transformer.wte.weight"] - 0.02) < 0.001
    assert abs(std["transformer.h.0.mlp.c_fc.weight"] - 0.02) < 0.001
    assert abs(std["transformer.h.3.mlp.c_proj.weight"] - 0.02 / math.sqrt(8)) < 0.0005
    assert not model.transformer.h[0].attn.c_attn.bias.numpy().any()
    assert (model.transformer.ln_f.weight.numpy() == 1).all()


# ---------------------------------------------------------------- Head, MultiHeadAttention, Block, Bigram
def check_module(ours, theirs, x):
    """Forward with a random upstream gradient; compare output, input gradient, parameter gradients."""
    copy_weights(ours, theirs)
    x_ours, x_torch = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref = ours(x_ours), theirs(x_torch)
    upstream = np.random.default_rng(1).standard_normal(ref.shape).astype(np.float32)
    out.backward(upstream)
    ref.backward(torch.from_numpy(upstream))
    assert_close(out.numpy(), ref.detach().numpy(), 1e-5, what="output")
    assert_close(x_ours.grad.numpy(), x_torch.grad.numpy(), 1e-4, what="input gradient")
    assert_grads_match(ours, theirs)


def test_head_matches_pytorch():
    x = np.random.default_rng(2).standard_normal((2, 6, 16)).astype(np.float32)
    check_module(Head(16, 8, block_size=8), TorchHead(16, 8, block_size=8), x)


def test_multi_head_attention_matches_pytorch():
    x = np.random.default_rng(3).standard_normal((2, 8, 16)).astype(np.float32)
    check_module(MultiHeadAttention(16, 4, 4, block_size=8), TorchMultiHeadAttention(16, 4, 4, block_size=8), x)


@pytest.mark.parametrize("bias, causal", [(True, True), (False, True), (True, False)])
def test_block_matches_pytorch(bias, causal):
    config = GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=4, n_embd=16, bias=bias)
    x = np.random.default_rng(4).standard_normal((2, 7, 16)).astype(np.float32)
    check_module(Block(config, causal=causal), TorchBlock(config, causal), x)


def test_bigram_matches_pytorch():
    rng = np.random.default_rng(5)
    model = BigramLanguageModel(13)
    table = tnn.Embedding(13, 13)
    table.weight.data = torch.from_numpy(model.token_embedding_table.weight.numpy().copy())
    idx, targets = random_tokens(rng, 13, (4, 9)), random_tokens(rng, 13, (4, 9))
    logits, loss = model(idx, targets)
    loss.backward()
    ref_logits = table(torch.from_numpy(idx))
    ref_loss = TF.cross_entropy(ref_logits.view(-1, 13), torch.from_numpy(targets).view(-1))
    ref_loss.backward()
    assert_close(logits.numpy(), ref_logits.detach().numpy(), 1e-6, what="bigram logits")
    assert_close(loss.item(), ref_loss.item(), 1e-6, what="bigram loss")
    assert_close(model.token_embedding_table.weight.grad.numpy(), table.weight.grad.numpy(), 1e-5, what="table grad")


# ---------------------------------------------------------------- training
def test_twenty_adamw_steps_follow_pytorch():
    config = GPTConfig(block_size=16, vocab_size=23, n_layer=2, n_head=4, n_embd=32, bias=True)
    model, reference = GPT(config), TorchGPT(config)
    copy_weights(model, reference)
    hyper = dict(weight_decay=0.1, learning_rate=3e-3, betas=(0.9, 0.95))
    optimizer = model.configure_optimizers(**hyper)
    decay = [p for p in reference.parameters() if p.dim() >= 2]
    no_decay = [p for p in reference.parameters() if p.dim() < 2]
    ref_optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": hyper["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=hyper["learning_rate"],
        betas=hyper["betas"],
    )
    rng = np.random.default_rng(6)
    losses, ref_losses = [], []
    for _ in range(20):
        start = rng.integers(0, 5, size=(4, 1))
        x = (start + np.arange(16)) % config.vocab_size  # a learnable pattern: counting upwards
        y = (x + 1) % config.vocab_size
        optimizer.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        ref_optimizer.zero_grad()
        _, ref_loss = reference(torch.from_numpy(x), torch.from_numpy(y))
        ref_loss.backward()
        tnn.utils.clip_grad_norm_(reference.parameters(), 1.0)
        ref_optimizer.step()
        ref_losses.append(ref_loss.item())
    assert losses[-1] < losses[0] - 0.5  # it learns
    assert_close(losses, ref_losses, 1e-4, what="loss trajectory")


# ---------------------------------------------------------------- nanoGPT checkpoint converter
def test_converter_turns_a_nanogpt_checkpoint_into_our_model(tmp_path):
    config = GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16, bias=False)
    reference = TorchGPT(config)
    state = {"_orig_mod." + k: v for k, v in reference.state_dict().items()}  # as torch.compile saves it
    state["_orig_mod.transformer.h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 8, 8))  # the mask buffer
    model_args = dict(n_layer=2, n_head=2, n_embd=16, block_size=8, bias=False, vocab_size=11, dropout=0.0)
    torch.save(
        {"model": state, "model_args": model_args, "iter_num": 5, "best_val_loss": 1.0, "config": {"batch_size": 4}},
        tmp_path / "ckpt.pt",
    )

    assert convert_nanogpt.main([str(tmp_path / "ckpt.pt"), str(tmp_path / "model.npz")]) == 0
    weights, config_read = read_npz(tmp_path / "model.npz")
    assert config_read == GPTConfig(**model_args) and all(w.dtype == np.float32 for w in weights.values())
    model = GPT.from_npz(tmp_path / "model.npz")

    idx = random_tokens(np.random.default_rng(7), 11, (2, 8))
    logits, _ = model(idx, idx)
    ref_logits, _ = reference(torch.from_numpy(idx), torch.from_numpy(idx))
    assert_close(logits.numpy(), ref_logits.detach().numpy(), 1e-5, what="converted model logits")


def test_converter_reports_a_missing_or_foreign_file(tmp_path, capsys):
    assert convert_nanogpt.main([str(tmp_path / "absent.pt"), str(tmp_path / "out.npz")]) == 2
    assert "absent.pt" in capsys.readouterr().err
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    assert convert_nanogpt.main([str(tmp_path / "other.pt"), str(tmp_path / "out.npz")]) == 2
    assert "not a nanoGPT checkpoint" in capsys.readouterr().err
    (tmp_path / "broken.pt").write_bytes(b"not a zip file")
    assert convert_nanogpt.main([str(tmp_path / "broken.pt"), str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "Unsupported operand" in err and err.count("\n") == 1, err


def test_converter_names_a_checkpoint_that_is_not_weights_only_on_one_line(tmp_path, capsys):
    import fractions

    path = tmp_path / "pickled.pt"
    torch.save({"model": {}, "model_args": {}, "note": fractions.Fraction(1, 3)}, path)
    assert convert_nanogpt.main([str(path), str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: convert_nanogpt: {path} is not a weights-only checkpoint")
    assert "fractions.Fraction" in err and "\x1b" not in err and not (tmp_path / "out.npz").exists()
