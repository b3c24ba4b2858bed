"""Numerical robustness: float32 softmax, log_softmax, cross_entropy, layer_norm and attention stay finite
and match float64 (PyTorch) for inputs of magnitude 1e4 and under a large common offset, fused and composed,
on the CPU and the GPU: the output and every input gradient. The suite's one test of each op at a 1e4 offset
(the kernels' own offset cases are in tests/kernels/ and tests/gpu/).
"""

import numpy as np
import pytest
import torch

import tinygrad_tx.nn.functional as F
from tinygrad_tx import Tensor

from helpers import DEVICES, assert_close

IMPLS = ["fused", "composed"]


def _inputs(kind, shape, seed=0):
    """float32 values of magnitude up to 1e4 ("large"), or unit noise on a common offset of +-1e4 ("offset")."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(shape)
    if kind == "large":
        return (noise / np.abs(noise).max() * 1e4).astype(np.float32)
    return (noise + 1e4 * np.sign(rng.standard_normal(shape[:-1] + (1,)))).astype(np.float32)


def _float64_reference(fn, *arrays):
    """(output, input gradients) of ``fn`` on float64 torch copies, for an upstream gradient of ones on a
    seeded random projection (so softmax-like ops, whose summed output is constant, are still checked)."""
    tensors = [
        torch.tensor(a, dtype=torch.float64, requires_grad=True) if a.dtype.kind == "f" else torch.tensor(a)
        for a in arrays
    ]
    out = fn(*tensors)
    upstream = torch.tensor(np.random.default_rng(1).standard_normal(tuple(out.shape)))
    (out * upstream).sum().backward()
    return out.detach().numpy(), [t.grad.numpy() if t.grad is not None else None for t in tensors], upstream.numpy()


def _ours(fn, *arrays, upstream, device):
    tensors = [Tensor(a, requires_grad=a.dtype.kind == "f", device=device) for a in arrays]
    out = fn(*tensors)
    out.backward(upstream.astype(np.float32))
    return out.numpy(), [t.grad.numpy() if t.requires_grad else None for t in tensors]


def _check(fn_ours, fn_torch, arrays, rtol, what, device="cpu"):
    expected, expected_grads, upstream = _float64_reference(fn_torch, *arrays)
    actual, grads = _ours(fn_ours, *arrays, upstream=upstream, device=device)
    assert np.isfinite(actual).all() and all(np.isfinite(g).all() for g in grads if g is not None), what
    assert_close(actual, expected, rtol, what=f"{what} output")
    # a saturated softmax leaves some inputs with gradients of ~1e-10 in float64 and exactly 0 in float32:
    # gradients are measured against the largest one of the op
    largest = max(np.abs(g).max() for g in expected_grads if g is not None)
    for index, (grad, expected_grad) in enumerate(zip(grads, expected_grads)):
        if expected_grad is not None:
            assert_close(grad, expected_grad, rtol, atol=rtol * largest, what=f"{what} gradient of input {index}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["large", "offset"])
def test_softmax_and_log_softmax_are_stable(impl, kind, device):
    x = _inputs(kind, (6, 40))
    _check(lambda t: F.softmax(t, impl=impl), lambda t: torch.softmax(t, -1), [x], 1e-5, f"softmax {kind}", device)
    _check(
        lambda t: F.log_softmax(t, impl=impl),
        lambda t: torch.log_softmax(t, -1),
        [x],
        1e-5,
        f"log_softmax {kind}",
        device,
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["large", "offset"])
def test_cross_entropy_is_stable(impl, kind, device):
    logits = _inputs(kind, (2, 5, 40))
    targets = np.random.default_rng(2).integers(0, 40, (2, 5))
    _check(
        lambda z, t: F.cross_entropy(z, t, impl=impl),
        lambda z, t: torch.nn.functional.cross_entropy(z.reshape(-1, 40), t.reshape(-1)),
        [logits, targets],
        1e-5,
        f"cross_entropy {kind}",
        device,
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["large", "offset"])
def test_layer_norm_is_stable(impl, kind, device):
    x = _inputs(kind, (4, 64))
    weight, bias = np.random.default_rng(3).standard_normal((2, 64)).astype(np.float32)
    # an offset of 1e4 leaves float32 about 1e-3 of absolute resolution on unit-sized deviations
    rtol = 1e-5 if kind == "large" else 3e-3
    _check(
        lambda x, w, b: F.layer_norm(x, w, b, impl=impl),
        lambda x, w, b: torch.nn.functional.layer_norm(x, (64,), w, b),
        [x, weight, bias],
        rtol,
        f"layer_norm {kind}",
        device,
    )


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["large", "offset"])
def test_attention_is_stable(impl, kind):
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((2, 2, 6, 8)) for _ in range(3))
    if kind == "large":  # scores of magnitude ~1e4
        q, k, v = q * 100, k * 100, v * 1e4
    else:  # one vector added to every key shifts each query's scores by a constant
        k = k + 1e3
    q, k, v = (a.astype(np.float32) for a in (q, k, v))
    _check(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, impl=impl),
        lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
        [q, k, v],
        1e-4,
        f"attention {kind}",
    )
