"""Checks shared by the op tests: drawn data, leaves, and one op against PyTorch (forward and every gradient)."""

import numpy as np
import torch

from tinygrad_tx import Tensor

from . import assert_close


def data(shape, seed, positive=False, dtype=np.float64):
    """Normal values (or uniform in [0.5, 2] when ``positive``) of ``shape``, seeded."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.5, 2.0, shape) if positive else rng.standard_normal(shape)
    return np.asarray(values, dtype=dtype)


def leaves(arrays, device="cpu", dtype=None):
    return [Tensor(a, requires_grad=True, device=device, dtype=dtype) for a in arrays]


def against_torch(ours, theirs, arrays, device="cpu", seed=0, rtol=1e-4):
    """Forward and every input gradient of ``ours`` vs ``theirs`` on the same float32 data, under a random
    upstream gradient (the summed output is blind to some wrong backwards)."""
    arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
    xs = leaves(arrays, device)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = ours(*xs), theirs(*ts)
    assert out.device == device
    assert out.dtype == np.float32, f"forward dtype {out.dtype}"
    assert_close(out.numpy(), ref.detach().numpy(), 1e-5, atol=1e-6, what="forward")
    upstream = np.random.default_rng(seed).standard_normal(ref.shape).astype(np.float32)
    out.backward(Tensor(upstream, device=device))
    ref.backward(torch.tensor(upstream))
    for i, (x, t) in enumerate(zip(xs, ts)):
        assert x.grad is not None, f"input {i} got no gradient"
        assert x.grad.shape == x.shape and x.grad.dtype == np.float32
        expected = t.grad.numpy() if t.grad is not None else np.zeros(t.shape, np.float32)
        assert_close(x.grad.numpy(), expected, rtol, atol=1e-6, what=f"grad of input {i}")
