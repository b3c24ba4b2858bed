"""models/ without PyTorch: sampling (seeds, top_k, top_p, the context window), the key/value cache,
user errors, counting helpers, the optimizer groups, .npz round trips and a float64 gradcheck of a
whole tiny GPT.
"""

import dataclasses

import numpy as np
import pytest

import tinygrad_tx.nn.functional as F
from models import GPT, BigramLanguageModel, GPTConfig, KVCache
from models.generation import sample_next
from tinygrad_tx import backend, gradcheck_directional
from tinygrad_tx.errors import ShapeError, TinygradTxError

from helpers import DEVICES, assert_close

TINY = GPTConfig(block_size=8, vocab_size=40, n_layer=2, n_head=2, n_embd=16)


def tiny_gpt(config=TINY):
    model = GPT(config)
    # spread the logits out so that top_k / top_p cut off tokens that would otherwise be drawn
    model.transformer.wte.weight.data *= 25
    return model


def prompt(batch=3, length=3, vocab=TINY.vocab_size):
    return np.random.default_rng(0).integers(0, vocab, size=(batch, length))


def generate(model, seed, *args, **kwargs):
    backend.manual_seed(seed)
    return model.generate(*args, **kwargs).numpy()


# ---------------------------------------------------------------- sampling
def test_sample_next_respects_top_k_and_top_p():
    logits = np.log(np.array([[0.1, 0.4, 0.2, 0.3]] * 4000))
    rng = np.random.default_rng(0)
    plain = sample_next(logits, rng).ravel()
    assert_close(np.bincount(plain, minlength=4) / plain.size, [0.1, 0.4, 0.2, 0.3], 0.08, what="frequencies")
    assert set(sample_next(logits, rng, top_k=2).ravel()) == {1, 3}
    assert set(sample_next(logits, rng, top_p=0.65).ravel()) == {1, 3}  # 0.4 + 0.3 reaches 0.65
    assert set(sample_next(logits, rng, top_p=0.4).ravel()) == {1}  # the first token alone reaches 0.4
    assert set(sample_next(logits, rng, top_k=1, temperature=5.0).ravel()) == {1}
    cold = sample_next(logits, rng, temperature=0.05).ravel()
    assert (cold == 1).mean() > 0.99


def test_generate_is_reproducible_for_a_seed():
    model = tiny_gpt()
    first = generate(model, 7, prompt(), 12)
    assert first.shape == (3, 15) and (first[:, :3] == prompt()).all()
    assert (generate(model, 7, prompt(), 12) == first).all()
    assert (generate(model, 8, prompt(), 12) != first).any()


@pytest.mark.parametrize("sampling", [dict(), dict(top_k=3, temperature=2.0), dict(top_p=0.6, temperature=1.5)])
def test_kv_cache_gives_the_same_tokens_past_block_size(sampling):
    model = tiny_gpt()
    cached = generate(model, 3, prompt(), 20, use_cache=True, **sampling)
    uncached = generate(model, 3, prompt(), 20, use_cache=False, **sampling)
    assert cached.shape == (3, 23)
    assert (cached == uncached).all()


def test_kv_cache_logits_match_a_full_forward():
    model = tiny_gpt()
    tokens = prompt(length=8)
    full, _ = model(tokens, tokens)
    cache = KVCache(TINY.n_layer, TINY.block_size)
    step_logits = [model(tokens[:, :3], kv_cache=cache)[0]]  # the prompt at once, then one token at a time
    step_logits += [model(tokens[:, t : t + 1], kv_cache=cache)[0] for t in range(3, 8)]
    assert cache.length == 8
    assert_close(
        np.concatenate([s.numpy() for s in step_logits], axis=1), full.numpy()[:, 2:], 1e-5, what="cached logits"
    )
    with pytest.raises(ShapeError, match="8 cached \\+ 1 new positions exceeds block_size 8"):
        model(tokens[:, :1], kv_cache=cache)


@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_never_feeds_more_than_block_size(use_cache):
    model = tiny_gpt()
    seen = []
    forward = model.forward

    def recording_forward(idx, targets=None, kv_cache=None):
        seen.append(idx.shape[1] + (kv_cache.length if kv_cache is not None else 0))
        return forward(idx, targets, kv_cache)

    model.forward = recording_forward
    out = generate(model, 1, prompt(length=5), 15, use_cache=use_cache)
    assert out.shape == (3, 20)
    assert max(seen) == TINY.block_size and len(seen) == 15


def allowed_by_full_forward(model, tokens, start, keep):
    """For each generated token, whether it is in keep(probabilities) of the logits that preceded it."""
    logits, _ = model(tokens[:, :-1], tokens[:, 1:])
    probs = F.softmax(logits, axis=-1).numpy()
    return [keep(probs[b, t - 1])[tokens[b, t]] for b in range(tokens.shape[0]) for t in range(start, tokens.shape[1])]


def test_generated_tokens_stay_inside_top_k():
    model = tiny_gpt()
    tokens = generate(model, 5, prompt(), 5, top_k=3, temperature=3.0)

    def top3(p):
        return p >= np.sort(p)[-3]

    assert all(allowed_by_full_forward(model, tokens, 3, top3))
    tokens = generate(model, 5, prompt(), 5, top_k=1)
    greedy = allowed_by_full_forward(model, tokens, 3, lambda p: p == p.max())
    assert all(greedy)


def test_generated_tokens_stay_inside_top_p():
    model = tiny_gpt()
    temperature, top_p = 2.0, 0.5
    tokens = generate(model, 6, prompt(), 5, top_p=top_p, temperature=temperature)

    def nucleus(p):
        p = p ** (1 / temperature)  # softmax(logits / T) from softmax(logits)
        p /= p.sum()
        descending = np.sort(p)[::-1]
        before = np.cumsum(descending) - descending
        return p >= descending[(before < top_p).sum() - 1] * (1 - 1e-5)

    assert all(allowed_by_full_forward(model, tokens, 3, nucleus))


def test_bigram_generates_with_the_shared_sampler():
    model = BigramLanguageModel(9)
    backend.manual_seed(2)
    out = model.generate([[0], [4]], 10, top_k=2).numpy()
    assert out.shape == (2, 11)
    table = model.token_embedding_table.weight.numpy()
    for row in out:
        for current, following in zip(row[:-1], row[1:]):
            assert table[current, following] >= np.sort(table[current])[-2]


@pytest.mark.parametrize("device", DEVICES)
def test_gpt_runs_and_generates_on_device(device):
    model = tiny_gpt().to(device)
    logits, loss = model(prompt(), prompt())
    loss.backward()
    assert logits.device == device and model.transformer.wte.weight.grad.device == device
    assert (generate(model, 4, prompt(), 10) == generate(model, 4, prompt(), 10, use_cache=False)).all()


# ---------------------------------------------------------------- user errors
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=0.0), "temperature must be > 0, got 0.0"),
        (dict(temperature=-1), "temperature"),
        (dict(top_k=0), "top_k must be an integer >= 1 or None, got 0"),
        (dict(top_k=2.5), "top_k"),
        (dict(top_p=0.0), "top_p must be in \\(0, 1\\] or None, got 0.0"),
        (dict(top_p=1.5), "top_p"),
    ],
)
def test_bad_sampling_arguments(kwargs, message):
    with pytest.raises(TinygradTxError, match=message):
        tiny_gpt().generate(prompt(), 2, **kwargs)
    with pytest.raises(TinygradTxError, match=message):
        BigramLanguageModel(5).generate([[1]], 2, **kwargs)


def test_bad_configs_and_inputs():
    with pytest.raises(TinygradTxError, match="n_embd 10 is not divisible by n_head 3"):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(TinygradTxError, match="gelu_approximate"):
        GPTConfig(gelu_approximate="fast")
    model = tiny_gpt()
    with pytest.raises(ShapeError, match="sequence length 9 exceeds block_size 8"):
        model(np.zeros((1, 9), dtype=np.int64))
    with pytest.raises(TinygradTxError, match="token ids must be integers"):
        model(np.zeros((1, 3)))
    with pytest.raises(ShapeError, match="shape \\(B, T\\)"):
        model(np.zeros(3, dtype=np.int64))
    with pytest.raises(TinygradTxError, match="40"):  # the embedding's own error names the vocabulary size
        model(np.full((1, 3), 40))


# ---------------------------------------------------------------- helpers: counts, MFU, optimizer groups, files
def test_num_params_and_mfu():
    model = GPT(TINY)
    C, V, T, L = TINY.n_embd, TINY.vocab_size, TINY.block_size, TINY.n_layer
    per_block = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    total = V * C + T * C + L * per_block + 2 * C  # the tied lm_head counted once
    assert model.num_params(non_embedding=False) == total
    assert model.num_params() == total - T * C
    flops_per_iter = (6 * (total - T * C) + 12 * L * TINY.n_head * (C // TINY.n_head) * T) * T * 4
    assert model.estimate_mfu(4, dt=0.5, peak_flops=1e9) == pytest.approx(flops_per_iter / 0.5 / 1e9)
    with pytest.raises(TinygradTxError, match="peak_flops"):
        model.estimate_mfu(4, dt=0.5, peak_flops=0)


def test_configure_optimizers_decays_only_matrices():
    model = GPT(GPTConfig(block_size=8, vocab_size=10, n_layer=1, n_head=2, n_embd=8, bias=False))
    optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3, betas=(0.9, 0.95))
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert len(decay["params"]) == 6 and len(no_decay["params"]) == 3  # wte (= lm_head) wpe, 4 Linears; 3 LN gains


def test_npz_round_trip(tmp_path):
    model = tiny_gpt()
    model.save_npz(tmp_path / "m.npz")
    loaded = GPT.from_npz(tmp_path / "m.npz")
    assert loaded.config == TINY
    assert (loaded(prompt())[0].numpy() == model(prompt())[0].numpy()).all()
    other = GPT(dataclasses.replace(TINY, dropout=0.1)).load_npz(tmp_path / "m.npz").eval()
    assert (other(prompt())[0].numpy() == model(prompt())[0].numpy()).all()
    with pytest.raises(TinygradTxError, match="load_npz"):
        GPT(GPTConfig(block_size=8, vocab_size=40, n_layer=1, n_head=2, n_embd=16)).load_npz(tmp_path / "m.npz")
    np.savez(tmp_path / "plain.npz", w=np.zeros(2))
    with pytest.raises(TinygradTxError, match="__model_args__"):
        GPT.from_npz(tmp_path / "plain.npz")
    with pytest.raises(TinygradTxError, match="cannot read .*absent.npz"):
        GPT.from_npz(tmp_path / "absent.npz")


# ---------------------------------------------------------------- finite differences through the whole model
def test_gpt_loss_gradcheck_float64():
    """Directional finite differences of the loss w.r.t. a sample of parameters, all in float64."""
    config = GPTConfig(block_size=6, vocab_size=7, n_layer=2, n_head=2, n_embd=8)
    model = GPT(config)
    for param in model.parameters():
        param.data = param.data.astype(np.float64) * 10  # larger weights: every path contributes
    idx = prompt(2, 6, vocab=7)
    targets = np.roll(idx, -1, axis=1)
    sample = [
        (model.transformer, "wte"),
        (model.transformer.h[0].attn, "c_attn"),
        (model.transformer.h[1].mlp, "c_proj"),
        (model.transformer.h[0], "ln_2"),
        (model.transformer, "ln_f"),
    ]
    modules, names = [getattr(owner, name) for owner, name in sample], ["weight", "bias", "weight", "bias", "weight"]
    originals = [module._parameters[name] for module, name in zip(modules, names)]

    def loss_of(*params):
        # gradcheck hands over float64 copies; they must be the very tensors the model reads
        for module, name, param in zip(modules, names, params):
            module._parameters[name] = param
        model.lm_head._parameters["weight"] = params[0]  # keep the tie: wte and lm_head share one matrix
        return model(idx, targets)[1]

    try:
        assert gradcheck_directional(loss_of, originals, n_directions=3, eps=1e-6, rtol=1e-5, atol=1e-8)
    finally:
        for module, name, param in zip(modules, names, originals):
            module._parameters[name] = param
        model.lm_head._parameters["weight"] = originals[0]
    assert model.lm_head.weight is model.transformer.wte.weight


def test_dropout_acts_in_training_only():
    model = GPT(dataclasses.replace(TINY, dropout=0.3))
    tokens = prompt(length=8)
    first, second = model(tokens, tokens)[1], model(tokens, tokens)[1]
    assert first.item() != second.item()
    first.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    assert model(tokens, tokens)[1].item() == model(tokens, tokens)[1].item()


def test_generate_stream_yields_the_same_tokens_as_generate():
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8))
    prompt = np.array([[1, 2, 3]])
    backend.manual_seed(5)
    whole = model.generate(prompt, 12, top_k=5).numpy()
    backend.manual_seed(5)
    streamed = [int(t[0, 0]) for t in model.generate_stream(prompt, 12, top_k=5)]
    assert streamed == whole[0, 3:].tolist()
    with pytest.raises(Exception, match="temperature must be > 0"):
        model.generate_stream(prompt, 3, temperature=0)
