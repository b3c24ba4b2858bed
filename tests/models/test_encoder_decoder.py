"""models/encoder_decoder.py: CrossAttention, EncoderBlock, DecoderBlock, EncoderDecoder (and the
non-causal CausalSelfAttention they sit beside) against PyTorch references written here, float64
gradchecks of every input and parameter, padding masks, and a toy task learnt end to end.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

from bench.torch_gpt import MLP as TorchMLP
from bench.torch_gpt import CausalSelfAttention as TorchSelfAttention
from models import CausalSelfAttention
from models.encoder_decoder import (
    BOS,
    EOS,
    PAD,
    CrossAttention,
    DecoderBlock,
    EncoderBlock,
    EncoderDecoder,
    digit_reversal_batch,
    reversal_accuracy,
    train_digit_reversal,
)
from models.gpt import GPTConfig
from tinygrad_tx import Tensor, gradcheck, gradcheck_directional
from tinygrad_tx.errors import DTypeError, ShapeError

from helpers import REPO, assert_close

CONFIG = GPTConfig(block_size=8, vocab_size=13, n_layer=2, n_head=2, n_embd=16)


# ---------------------------------------------------------------- PyTorch references
def torch_heads(t, n_head):
    B, T, C = t.shape
    return t.view(B, T, n_head, C // n_head).transpose(1, 2)


def torch_merge(y):
    B, H, T, D = y.shape
    return y.transpose(1, 2).contiguous().view(B, T, H * D)


class TorchCrossAttention(tnn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_q = tnn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.c_kv = tnn.Linear(cfg.n_embd, 2 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = tnn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.n_head, self.n_embd = cfg.n_head, cfg.n_embd

    def forward(self, x, context=None, key_padding_mask=None):
        context = x if context is None else context
        q = torch_heads(self.c_q(x), self.n_head)
        k, v = (torch_heads(t, self.n_head) for t in self.c_kv(context).split(self.n_embd, dim=2))
        mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        return self.c_proj(torch_merge(TF.scaled_dot_product_attention(q, k, v, attn_mask=mask)))


class TorchEncoderBlock(tnn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1, self.attn = tnn.LayerNorm(cfg.n_embd, bias=cfg.bias), TorchCrossAttention(cfg)
        self.ln_2, self.mlp = tnn.LayerNorm(cfg.n_embd, bias=cfg.bias), TorchMLP(cfg)

    def forward(self, x, key_padding_mask=None):
        x = x + self.attn(self.ln_1(x), key_padding_mask=key_padding_mask)
        return x + self.mlp(self.ln_2(x))


class TorchDecoderBlock(tnn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1, self.attn = tnn.LayerNorm(cfg.n_embd, bias=cfg.bias), TorchSelfAttention(cfg, causal=True)
        self.ln_2, self.cross_attn = tnn.LayerNorm(cfg.n_embd, bias=cfg.bias), TorchCrossAttention(cfg)
        self.ln_3, self.mlp = tnn.LayerNorm(cfg.n_embd, bias=cfg.bias), TorchMLP(cfg)

    def forward(self, x, memory, memory_padding_mask=None):
        x = x + self.attn(self.ln_1(x))
        x = x + self.cross_attn(self.ln_2(x), memory, key_padding_mask=memory_padding_mask)
        return x + self.mlp(self.ln_3(x))


def torch_embeddings(cfg):
    return tnn.ModuleDict(
        dict(wte=tnn.Embedding(cfg.vocab_size, cfg.n_embd), wpe=tnn.Embedding(cfg.block_size, cfg.n_embd))
    )


class TorchEncoderDecoder(tnn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.encoder = tnn.ModuleDict(
            dict(
                embed=torch_embeddings(cfg),
                ln_f=tnn.LayerNorm(cfg.n_embd, bias=cfg.bias),
                h=tnn.ModuleList([TorchEncoderBlock(cfg) for _ in range(cfg.n_layer)]),
            )
        )
        self.decoder = tnn.ModuleDict(
            dict(
                embed=torch_embeddings(cfg),
                ln_f=tnn.LayerNorm(cfg.n_embd, bias=cfg.bias),
                h=tnn.ModuleList([TorchDecoderBlock(cfg) for _ in range(cfg.n_layer)]),
            )
        )
        self.lm_head = tnn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)

    @staticmethod
    def embed(stack, idx):
        return stack.embed.wte(idx) + stack.embed.wpe(torch.arange(idx.shape[1]))

    def forward(self, src, tgt, targets, src_padding_mask):
        memory = self.embed(self.encoder, src)
        for block in self.encoder.h:
            memory = block(memory, src_padding_mask)
        x = self.embed(self.decoder, tgt)
        for block in self.decoder.h:
            x = block(x, self.encoder.ln_f(memory), src_padding_mask)
        logits = self.lm_head(self.decoder.ln_f(x))
        return logits, TF.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)


# ---------------------------------------------------------------- helpers
def copy_weights(ours, theirs):
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)


def assert_grads_match(ours, theirs, rtol=1e-4):
    torch_params = dict(theirs.named_parameters())
    assert set(dict(ours.named_parameters())) == set(torch_params)
    for name, param in ours.named_parameters():
        assert_close(param.grad.numpy(), torch_params[name].grad.numpy(), rtol, what=f"grad of {name}")


def padding_mask(lengths, keys):
    """(B, keys) True at the positions past each sequence's length."""
    return np.arange(keys)[None, :] >= np.asarray(lengths)[:, None]


def random(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def check_against_torch(ours, theirs, arrays, masks=()):
    """Forward with a random upstream gradient: output, every input gradient, every parameter gradient."""
    copy_weights(ours, theirs)
    inputs = [Tensor(a, requires_grad=True) for a in arrays]
    torch_inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = ours(*inputs, *masks)
    ref = theirs(*torch_inputs, *(torch.from_numpy(m) for m in masks))
    upstream = np.random.default_rng(1).standard_normal(ref.shape).astype(np.float32)
    out.backward(upstream)
    ref.backward(torch.from_numpy(upstream))
    assert_close(out.numpy(), ref.detach().numpy(), 1e-5, what="output")
    for number, (mine, reference) in enumerate(zip(inputs, torch_inputs)):
        assert_close(mine.grad.numpy(), reference.grad.numpy(), 1e-4, what=f"gradient of input {number}")
    assert_grads_match(ours, theirs)


def gradcheck_module(module, arrays, *extra, directional=False):
    """Float64 finite differences of module(*arrays, *extra) w.r.t. every array and every parameter."""
    modules = dict(module.named_modules())
    owners = [(modules[name.rpartition(".")[0]], name.rpartition(".")[2]) for name, _ in module.named_parameters()]
    originals = [owner._parameters[leaf] for owner, leaf in owners]

    def run(*tensors):
        for (owner, leaf), param in zip(owners, tensors[len(arrays) :]):
            owner._parameters[leaf] = param  # the float64 copies the checker perturbs
        return module(*tensors[: len(arrays)], *extra)

    inputs = [Tensor(a, requires_grad=True) for a in arrays] + list(originals)
    try:
        if directional:
            return gradcheck_directional(run, inputs, n_directions=3, rtol=1e-5, atol=1e-8)
        return gradcheck(run, inputs, rtol=1e-5, atol=1e-8)
    finally:
        for (owner, leaf), param in zip(owners, originals):
            owner._parameters[leaf] = param


# ---------------------------------------------------------------- non-causal self-attention
@pytest.mark.parametrize("bias", [True, False])
def test_non_causal_self_attention_matches_pytorch(bias):
    config = GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=4, n_embd=16, bias=bias)
    x = random(np.random.default_rng(0), 2, 7, 16)
    check_against_torch(CausalSelfAttention(config, causal=False), TorchSelfAttention(config, causal=False), [x])


def test_non_causal_self_attention_gradcheck_float64():
    x = np.random.default_rng(1).standard_normal((2, 4, 8))
    config = GPTConfig(block_size=4, vocab_size=5, n_layer=1, n_head=2, n_embd=8)
    assert gradcheck_module(CausalSelfAttention(config, causal=False), [x])


def test_non_causal_self_attention_lets_early_positions_see_later_ones():
    attention = CausalSelfAttention(CONFIG, causal=False)
    x = random(np.random.default_rng(2), 1, 5, 16)
    changed = x.copy()
    changed[0, -1] += 1.0
    assert not np.allclose(attention(Tensor(x)).numpy()[0, 0], attention(Tensor(changed)).numpy()[0, 0])


# ---------------------------------------------------------------- CrossAttention
@pytest.mark.parametrize("bias", [True, False])
def test_cross_attention_matches_pytorch(bias):
    config = GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=4, n_embd=16, bias=bias)
    rng = np.random.default_rng(3)
    x, context, mask = random(rng, 3, 5, 16), random(rng, 3, 7, 16), padding_mask([7, 4, 1], 7)
    check_against_torch(CrossAttention(config), TorchCrossAttention(config), [x, context], [mask])


def test_cross_attention_without_mask_matches_pytorch():
    rng = np.random.default_rng(4)
    check_against_torch(
        CrossAttention(CONFIG), TorchCrossAttention(CONFIG), [random(rng, 2, 3, 16), random(rng, 2, 6, 16)]
    )


def test_cross_attention_gradcheck_float64():
    rng = np.random.default_rng(5)
    config = GPTConfig(block_size=4, vocab_size=5, n_layer=1, n_head=2, n_embd=8)
    x, context = rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 4, 8))
    assert gradcheck_module(CrossAttention(config), [x, context], padding_mask([4, 2], 4))


def test_cross_attention_ignores_padded_keys():
    """Changing the padded context positions changes neither the output nor the other gradients,
    and the padded positions get exactly zero gradient."""
    rng = np.random.default_rng(6)
    attention = CrossAttention(CONFIG)
    x, context, mask = random(rng, 2, 3, 16), random(rng, 2, 6, 16), padding_mask([6, 2], 6)
    scrambled = context.copy()
    scrambled[mask] = random(rng, int(mask.sum()), 16) * 100
    outputs = []
    for keys in (context, scrambled):
        keys = Tensor(keys, requires_grad=True)
        out = attention(Tensor(x), keys, key_padding_mask=mask)
        out.backward(np.ones(out.shape, np.float32))
        outputs.append(out.numpy())
        assert not keys.grad.numpy()[mask].any() and keys.grad.numpy()[~mask].any()
    assert_close(outputs[1], outputs[0], 1e-6, what="output with scrambled padding")


def test_cross_attention_without_context_is_self_attention():
    attention = CrossAttention(CONFIG)
    x = Tensor(random(np.random.default_rng(7), 2, 4, 16))
    assert_close(attention(x).numpy(), attention(x, x).numpy(), 0, what="context defaults to x")


def test_cross_attention_rejects_bad_shapes_and_masks():
    attention = CrossAttention(CONFIG)
    x = Tensor(np.zeros((2, 3, 16), np.float32))
    with pytest.raises(ShapeError, match=r"CrossAttention: x \(2, 3, 16\) and context \(3, 4, 16\)"):
        attention(x, Tensor(np.zeros((3, 4, 16), np.float32)))
    with pytest.raises(ShapeError, match=r"key_padding_mask shape \(2, 3\) must be \(batch, keys\) = \(2, 4\)"):
        attention(x, Tensor(np.zeros((2, 4, 16), np.float32)), key_padding_mask=np.zeros((2, 3), bool))
    with pytest.raises(DTypeError, match="key_padding_mask must be boolean"):
        attention(x, key_padding_mask=np.zeros((2, 3), np.int64))


# ---------------------------------------------------------------- EncoderBlock and DecoderBlock
@pytest.mark.parametrize("bias", [True, False])
def test_encoder_block_matches_pytorch(bias):
    config = GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=2, n_embd=16, bias=bias)
    x = random(np.random.default_rng(8), 3, 6, 16)
    check_against_torch(EncoderBlock(config), TorchEncoderBlock(config), [x], [padding_mask([6, 3, 1], 6)])


@pytest.mark.parametrize("bias", [True, False])
def test_decoder_block_matches_pytorch(bias):
    config = GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=2, n_embd=16, bias=bias)
    rng = np.random.default_rng(9)
    x, memory = random(rng, 3, 5, 16), random(rng, 3, 6, 16)
    check_against_torch(DecoderBlock(config), TorchDecoderBlock(config), [x, memory], [padding_mask([6, 2, 4], 6)])


def test_encoder_and_decoder_blocks_gradcheck_float64():
    rng = np.random.default_rng(10)
    config = GPTConfig(block_size=4, vocab_size=5, n_layer=1, n_head=2, n_embd=8)
    mask = padding_mask([3, 2], 3)
    assert gradcheck_module(EncoderBlock(config), [rng.standard_normal((2, 3, 8))], mask, directional=True)
    decoder_inputs = [rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 3, 8))]
    assert gradcheck_module(DecoderBlock(config), decoder_inputs, mask, directional=True)


def test_encoder_block_output_at_real_positions_ignores_padding():
    block = EncoderBlock(CONFIG)
    rng = np.random.default_rng(11)
    x, mask = random(rng, 2, 5, 16), padding_mask([5, 3], 5)
    scrambled = x.copy()
    scrambled[mask] = random(rng, int(mask.sum()), 16)
    out, out_scrambled = block(Tensor(x), mask).numpy(), block(Tensor(scrambled), mask).numpy()
    assert_close(out_scrambled[~mask], out[~mask], 1e-6, what="real positions")


# ---------------------------------------------------------------- EncoderDecoder
def test_encoder_decoder_matches_pytorch():
    rng = np.random.default_rng(12)
    model, reference = EncoderDecoder(CONFIG), TorchEncoderDecoder(CONFIG)
    copy_weights(model, reference)
    src, tgt = rng.integers(0, 13, (3, 6)), rng.integers(0, 13, (3, 5))
    targets = rng.integers(0, 13, (3, 5))
    targets[1, 3:] = -1
    mask = padding_mask([6, 4, 2], 6)
    logits, loss = model(src, tgt, targets, src_padding_mask=mask)
    loss.backward()
    ref_logits, ref_loss = reference(*(torch.from_numpy(a) for a in (src, tgt, targets, mask)))
    ref_loss.backward()
    assert logits.shape == (3, 5, 13)
    assert_close(logits.numpy(), ref_logits.detach().numpy(), 1e-5, what="logits")
    assert_close(loss.item(), ref_loss.item(), 1e-6, what="loss")
    assert_grads_match(model, reference)


def test_encoder_decoder_ignores_padded_source_tokens():
    model = EncoderDecoder(CONFIG)
    rng = np.random.default_rng(13)
    src, tgt, mask = rng.integers(0, 13, (2, 6)), rng.integers(0, 13, (2, 4)), padding_mask([6, 3], 6)
    other = np.where(mask, rng.integers(0, 13, (2, 6)), src)
    logits, none = model(src, tgt, src_padding_mask=mask)
    assert none is None
    assert_close(model(other, tgt, src_padding_mask=mask)[0].numpy(), logits.numpy(), 1e-6, what="logits")


def test_encoder_decoder_rejects_too_long_sequences():
    model = EncoderDecoder(CONFIG)
    with pytest.raises(ShapeError, match="EncoderDecoder.encode: sequence length 9 exceeds block_size 8"):
        model(np.zeros((1, 9), np.int64), np.zeros((1, 2), np.int64))
    with pytest.raises(ShapeError, match="EncoderDecoder.generate: max_new_tokens 9 exceeds block_size 8"):
        model.generate(np.zeros((1, 3), np.int64), start_token=0, max_new_tokens=9)
    assert model.generate(np.zeros((2, 3), np.int64), start_token=0, max_new_tokens=8).shape == (2, 9)


# ---------------------------------------------------------------- a toy task, end to end
def test_digit_reversal_batch():
    src, padding, decoder_input, targets = digit_reversal_batch(np.random.default_rng(0), 50, max_digits=4)
    for row in range(50):
        digits = src[row][~padding[row]]
        assert (src[row][padding[row]] == PAD).all() and len(digits) >= 1
        expected = list(digits[::-1]) + [EOS]
        assert list(targets[row][: len(expected)]) == expected and (targets[row][len(expected) :] == -1).all()
        assert decoder_input[row, 0] == BOS and list(decoder_input[row, 1 : len(expected)]) == expected[:-1]


def test_encoder_decoder_learns_to_reverse_digit_strings():
    model, losses, seconds = train_digit_reversal()
    accuracy = reversal_accuracy(model, np.random.default_rng(1))
    print(
        f"digit reversal: {len(losses)} steps, final loss {losses[-1]:.4f} (mean of the last 10: "
        f"{np.mean(losses[-10:]):.4f}), exact-match accuracy {accuracy:.3f} on 200 new strings, {seconds:.1f} s"
    )
    assert np.mean(losses[-10:]) < 0.02
    assert accuracy >= 0.98


def test_running_the_module_prints_no_runpy_warning():
    """Regression (issue 24): `python -m models.encoder_decoder` warned that the module was already in sys.modules
    (models/__init__ imported it); it is now imported on first use."""
    script = (
        "import sys, models\n"
        "assert 'models.encoder_decoder' not in sys.modules\n"
        "from models import EncoderDecoder\n"
        "assert EncoderDecoder.__module__ == 'models.encoder_decoder'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
