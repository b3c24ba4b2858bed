"""GPT.from_pretrained against Hugging Face ``transformers`` itself: a tiny random GPT2LMHeadModel, saved with
``save_pretrained`` (model.safetensors and config.json as the hub serves them), loaded by the project.

In float64 on both sides (the same float32 file values, cast), the logits, the loss and every parameter's gradient
agree to rounding. transformers's Conv1D weights are (in, out), so their gradients are transposed to compare with
ours (nanoGPT's Linear layout); the tied lm_head is counted once, as the token embedding. The largest errors are
printed (``pytest -s``) and recorded in docs/gpt2.md.
"""

import numpy as np
import pytest

from models import pretrained
from models.gpt import GPT
from tinygrad_tx import Tensor

from helpers.optional import requires_transformers

pytestmark = requires_transformers

TINY = dict(n_layer=2, n_head=2, n_embd=16, n_positions=32, vocab_size=50)
TOLERANCE = 1e-10  # float64: what is left is rounding (a few 1e-15 relative), far below any mapping error


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(directory written by save_pretrained, the float64 transformers model loaded back from it)."""
    import torch
    import transformers

    config = transformers.GPT2Config(
        **TINY,
        bos_token_id=49,
        eos_token_id=49,  # inside the tiny vocabulary (GPT-2's 50256 is not)
        attn_pdrop=0.0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        activation_function="gelu_new",
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():  # larger than GPT-2's 0.02 init, so that every path moves the logits
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    directory = tmp_path_factory.mktemp("hf") / "gpt2-tiny"
    model.save_pretrained(directory)  # transformers 5: always model.safetensors
    reference = transformers.GPT2LMHeadModel.from_pretrained(directory, attn_implementation="eager")
    return directory, reference.double().eval()


def max_relative_error(ours, theirs):
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-300))


def test_logits_loss_and_every_gradient_equal_transformers(checkpoint):
    import torch

    directory, reference = checkpoint
    assert (directory / "model.safetensors").is_file() and (directory / "config.json").is_file()
    model = GPT.from_pretrained(directory)
    assert model.config.gelu_approximate == "tanh" and model.config.block_size == 32
    for param in model.parameters():
        param.data = param.data.astype(np.float64)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, TINY["vocab_size"], (3, TINY["n_positions"]))
    targets = rng.integers(0, TINY["vocab_size"], idx.shape)
    targets[0, :5] = -1  # ignored positions, as both losses allow

    logits, loss = model(Tensor(idx), Tensor(targets))
    loss.backward()
    reference.zero_grad()
    ref_logits = reference(torch.from_numpy(idx)).logits
    ref_loss = torch.nn.functional.cross_entropy(
        ref_logits.reshape(-1, TINY["vocab_size"]), torch.from_numpy(targets).reshape(-1), ignore_index=-1
    )
    ref_loss.backward()
    assert logits.numpy().dtype == np.float64 and ref_logits.dtype == torch.float64

    errors = {
        "logits": max_relative_error(logits.numpy(), ref_logits.detach().numpy()),
        "loss": abs(loss.item() - ref_loss.item()) / abs(ref_loss.item()),
    }
    ours = dict(model.named_parameters())
    theirs = dict(reference.named_parameters())  # the tied lm_head.weight comes once, as transformer.wte.weight
    assert sorted(theirs) == sorted(ours), "parameter names differ"
    gradient_errors = {}
    for name, param in theirs.items():
        expected = param.grad.numpy()
        if pretrained.is_conv1d(name):
            expected = expected.T  # Conv1D (in, out) -> Linear (out, in)
        got = ours[name].grad.numpy()
        assert got.shape == expected.shape, name
        gradient_errors[name] = max_relative_error(got, expected)
    worst = max(gradient_errors, key=gradient_errors.__getitem__)
    errors["gradients"] = gradient_errors[worst]
    print(
        f"\nagainst transformers (float64, max |ours - theirs| / max |theirs|): logits {errors['logits']:.1e}, "
        f"loss {errors['loss']:.1e}, gradients {errors['gradients']:.1e} (worst: {worst}, "
        f"{len(gradient_errors)} parameters)"
    )
    for what, error in errors.items():
        assert error < TOLERANCE, f"{what}: {error:.2e}"


def test_hugging_faces_own_shifted_loss_is_ours_with_shifted_targets(checkpoint):
    """``labels=idx`` makes transformers shift the targets by one; ours takes them shifted, -1 at the end."""
    import torch

    directory, reference = checkpoint
    model = GPT.from_pretrained(directory)
    idx = np.random.default_rng(1).integers(0, TINY["vocab_size"], (2, 20))
    targets = np.concatenate([idx[:, 1:], np.full((2, 1), -1)], axis=1)
    _, loss = model(Tensor(idx), Tensor(targets))
    with torch.no_grad():  # transformers computes this loss in float32 (it casts the logits)
        ref_loss = reference(torch.from_numpy(idx), labels=torch.from_numpy(idx)).loss
    np.testing.assert_allclose(loss.item(), ref_loss.item(), rtol=1e-5)
