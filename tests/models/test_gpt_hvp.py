"""A whole GPT's second derivatives against PyTorch's: the Hessian-vector product of the loss with respect to
every parameter (tied embedding included), in float64, through fused ops and through their composed twins."""

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import tinygrad_tx as tx
import tinygrad_tx.nn.functional as F
from bench.torch_gpt import TorchGPT
from models import GPT, GPTConfig
from tinygrad_tx import Tensor

CONFIG = GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16, bias=True)
RTOL = 1e-6


def gpt_hvp_errors(config, impl):
    """{parameter name: max |ours - PyTorch's| / max |PyTorch's|} of H v, v random, loss with ignored targets."""
    previous = F.get_default_impl()
    F.set_default_impl(impl)
    try:
        rng = np.random.default_rng(0)
        model, reference = GPT(config), TorchGPT(config).double()
        for param in model.parameters():
            param.data = param.data.astype(np.float64)
        reference.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()}, strict=True)
        idx = rng.integers(0, config.vocab_size, (2, config.block_size))
        targets = rng.integers(0, config.vocab_size, (2, config.block_size))
        targets[0, :2] = -1
        named = dict(model.named_parameters())
        theirs_named = dict(reference.named_parameters())
        names = sorted(theirs_named)
        directions = {name: rng.standard_normal(named[name].shape) for name in names}

        loss = model(idx, targets)[1]
        grads = tx.grad(loss, [named[n] for n in names], create_graph=True)
        total = sum(((g * Tensor(directions[n], dtype="float64")).sum() for g, n in zip(grads, names)), Tensor(0.0))
        ours = tx.grad(total, [named[n] for n in names])

        with sdpa_kernel(SDPBackend.MATH):  # PyTorch's flash attention on the CPU has no double backward
            ref_loss = reference(torch.from_numpy(idx), torch.from_numpy(targets))[1]
            ref_grads = torch.autograd.grad(ref_loss, [theirs_named[n] for n in names], create_graph=True)
            ref_total = sum((g * torch.from_numpy(directions[n])).sum() for g, n in zip(ref_grads, names))
            theirs = torch.autograd.grad(ref_total, [theirs_named[n] for n in names])
        return {
            name: float(np.abs(a.numpy() - b.numpy()).max() / np.abs(b.numpy()).max())
            for name, a, b in zip(names, ours, theirs)
        }
    finally:
        F.set_default_impl(previous)


@pytest.mark.parametrize("impl", ["fused", "composed"])
def test_gpt_hessian_vector_product_matches_pytorch(impl):
    errors = gpt_hvp_errors(CONFIG, impl)
    assert "transformer.wte.weight" in errors  # the tied embedding / lm_head weight
    worst = max(errors, key=errors.get)
    print(f"GPT H v ({impl}): worst relative error {errors[worst]:.3g} ({worst})")
    assert errors[worst] < RTOL, f"H v of {worst}: relative error {errors[worst]:.3g}"
