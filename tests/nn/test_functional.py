"""tinygrad_tx.nn.functional in float32 against torch.nn.functional: forward values and every input
gradient, relative error < 1e-5 forward and < 1e-4 gradients, fused and composed implementations.

The worst relative error seen per op is printed at the end of the module (run with -s to see it).
Finite-difference gradchecks, stability, fused/composed agreement and bad inputs are in
tests/nn/test_functional_checks.py.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_tx.nn.functional as F
from tinygrad_tx import Tensor

from helpers import DEVICES, assert_close

FORWARD_RTOL, GRAD_RTOL = 1e-5, 1e-4
WORST = {}  # op -> [worst forward error, worst gradient error]
seeds = st.integers(0, 2**16)
sizes = st.integers(1, 6)
IMPLS = ["fused", "composed"]


@pytest.fixture(scope="module", autouse=True)
def _report_worst_errors():
    yield
    print("\nworst relative error against PyTorch (float32): op, forward, gradients")
    for op, (forward, grad) in sorted(WORST.items()):
        print(f"  {op:34s} {forward:.2e}  {grad:.2e}")


def relative_error(actual, expected):
    """The measure helpers.assert_close bounds, max |actual - expected| / max |expected|, with the scale
    floored at 1e-2 so results that are zero up to rounding (layer_norm over one feature) read as absolute."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.abs(actual - expected).max(initial=0.0) / max(np.abs(expected).max(initial=0.0), 1e-2))


def check(op, kind, actual, expected, what):
    rtol = FORWARD_RTOL if kind == 0 else GRAD_RTOL
    worst = WORST.setdefault(op, [0.0, 0.0])
    worst[kind] = max(worst[kind], relative_error(actual, expected))
    assert_close(actual, expected, rtol, atol=1e-6, what=f"{op} {what}")


def compare(op, ours, theirs, arrays, device, constants=(), seed=0):
    """Run ``ours(*tensors, *constants)`` in float32 and ``theirs(*torch_tensors, *torch_constants)`` on the
    same float32 ``arrays`` (all require grad), with the same random upstream gradient; check everything.

    PyTorch computes in float64 from those float32 values: the reference is then exact, and the error
    measured is ours alone (torch's own float32 rounding reaches 1e-3 on ill-conditioned layer norms).
    """
    arrays = [np.asarray(a, np.float32) for a in arrays]
    xs = [Tensor(a, requires_grad=True, device=device) for a in arrays]
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = ours(*xs, *[Tensor(c, device=device) for c in constants])
    ref = theirs(*ts, *[torch.tensor(c) for c in constants])
    assert out.dtype == np.float32, f"{op} output upcast to {out.dtype}"
    check(op, 0, out.numpy(), ref.detach().numpy(), "forward")
    upstream = np.random.default_rng(seed).standard_normal(ref.shape).astype(np.float32)
    out.backward(Tensor(upstream, device=device))
    ref.backward(torch.tensor(upstream, dtype=torch.float64))
    for i, (x, t) in enumerate(zip(xs, ts)):
        assert x.grad is not None and x.grad.shape == x.shape and x.grad.dtype == np.float32, f"{op} input {i}"
        check(op, 1, x.grad.numpy(), t.grad.numpy(), f"gradient of input {i}")


def normal(seed, *shape, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


# ------------------------------------------------------------------ softmax family
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
@given(rows=sizes, cols=sizes, depth=sizes, axis=st.sampled_from([-1, 0, 1]), seed=seeds)
def test_softmax_and_log_softmax(device, impl, rows, cols, depth, axis, seed):
    x = normal(seed, rows, cols, depth, scale=3.0)
    compare("softmax", lambda t: F.softmax(t, axis=axis, impl=impl), lambda t: torch.softmax(t, axis), [x], device)
    compare(
        "log_softmax",
        lambda t: F.log_softmax(t, axis=axis, impl=impl),
        lambda t: torch.log_softmax(t, axis),
        [x],
        device,
    )


# ------------------------------------------------------------------ cross-entropy
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(
    lead=st.sampled_from([(5,), (1,), (2, 3), (3, 1)]),
    classes=sizes,
    ignore_index=st.sampled_from([-1, -100, 0]),
    seed=seeds,
)
def test_cross_entropy(device, impl, reduction, lead, classes, ignore_index, seed):
    rng = np.random.default_rng(seed)
    if ignore_index >= classes - 1:
        ignore_index = -1  # keep a class that counts (all ignored: checks file)
    logits = rng.standard_normal(lead + (classes,)) * 2
    targets = rng.integers(0, classes, lead)
    targets[rng.random(lead) < 0.3] = ignore_index
    targets.flat[0] = classes - 1  # at least one counted position (torch's mean is nan otherwise)

    def theirs(z, t):
        flat = z.reshape(-1, classes)
        loss = TF.cross_entropy(flat, t.reshape(-1), ignore_index=ignore_index, reduction=reduction)
        return loss.reshape(lead) if reduction == "none" else loss

    compare(
        f"cross_entropy[{reduction}]",
        lambda z, t: F.cross_entropy(z, t, ignore_index=ignore_index, reduction=reduction, impl=impl),
        theirs,
        [logits],
        device,
        constants=[targets],
    )


def test_cross_entropy_gpt_shaped_batch():
    rng = np.random.default_rng(0)
    logits, targets = rng.standard_normal((4, 32, 65)) * 3, rng.integers(0, 65, (4, 32))
    targets[:, -5:] = -1
    compare(
        "cross_entropy[mean]",
        lambda z, t: F.cross_entropy(z, t),
        lambda z, t: TF.cross_entropy(z.reshape(-1, 65), t.reshape(-1), ignore_index=-1),
        [logits],
        "cpu",
        constants=[targets],
    )


# ------------------------------------------------------------------ layer norm
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("affine", ["none", "weight", "both"])
@given(lead=st.sampled_from([(3,), (2, 3), (1,)]), features=st.integers(3, 6), seed=seeds)
def test_layer_norm(device, impl, affine, lead, features, seed):
    x = normal(seed, *lead, features, scale=2.0) + 0.5
    # 1 or 2 features are degenerate (the output is 0 or +-1 up to eps, the x gradient ~0 and all rounding
    # noise in float32): the float64 gradchecks in the checks file cover them
    params = [normal(seed + 1, features) for _ in range({"none": 0, "weight": 1, "both": 2}[affine])]
    compare(
        "layer_norm",
        lambda t, *p: F.layer_norm(t, *p, impl=impl),
        lambda t, *p: TF.layer_norm(t, (features,), *p),
        [x] + params,
        device,
    )


# ------------------------------------------------------------------ embedding, linear, gelu
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("table_rows", [7, 300])  # both CPU scatter-add strategies (one-hot / sort)
def test_embedding_with_repeated_indices(device, table_rows):
    rng = np.random.default_rng(table_rows)
    indices = rng.integers(0, table_rows, (4, 50))
    indices[0, :10] = 3  # many reads of one row
    weight = rng.standard_normal((table_rows, 5))
    compare(
        "embedding",
        lambda w, i: F.embedding(i, w),
        lambda w, i: TF.embedding(i, w),
        [weight],
        device,
        constants=[indices],
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(3, 4), (2, 5, 4), (1, 1, 4)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear(device, shape, with_bias):
    arrays = [normal(0, *shape), normal(1, 6, 4)] + ([normal(2, 6)] if with_bias else [])
    compare("linear", F.linear, TF.linear, arrays, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(device, approximate):
    x = np.concatenate([np.linspace(-8, 8, 801), normal(0, 200, scale=3.0)])
    compare(
        f"gelu[{approximate}]",
        lambda t: F.gelu(t, approximate),
        lambda t: TF.gelu(t, approximate=approximate),
        [x],
        device,
    )


def test_relu():
    compare("relu", F.relu, TF.relu, [normal(0, 4, 5)], "cpu")


# ------------------------------------------------------------------ dropout
@pytest.mark.parametrize("device", DEVICES)
def test_dropout_mask_statistics_and_backward_uses_the_same_mask(device):
    p, n = 0.3, 200_000
    x = Tensor(np.full(n, 2.0, np.float32), requires_grad=True, device=device)
    out = F.dropout(x, p)
    values = out.numpy()
    kept = values != 0
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)  # 5 sigma
    assert_close(values[kept], np.full(kept.sum(), 2.0 / (1 - p)), 1e-6, what="kept values scaled by 1/(1-p)")
    upstream = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    out.backward(Tensor(upstream, device=device))
    assert_close(x.grad.numpy(), upstream * kept / (1 - p), 1e-6, what="dropout backward reuses the mask")
    reference = TF.dropout(torch.full((n,), 2.0), p)  # torch keeps the same fraction
    assert abs((reference != 0).float().mean().item() - kept.mean()) < 0.01


# ------------------------------------------------------------------ attention
def _attention_inputs(seed, batch, heads, queries, keys, dim):
    return [
        normal(seed, batch, heads, queries, dim),
        normal(seed + 1, batch, heads, keys, dim),
        normal(seed + 2, batch, heads, keys, dim + 1),
    ]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("causal", [True, False])
@given(batch=st.integers(1, 2), heads=st.integers(1, 3), time=sizes, dim=sizes, seed=seeds)
def test_attention_causal_and_full(device, impl, causal, batch, heads, time, dim, seed):
    compare(
        f"attention[causal={causal}]",
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal, impl=impl),
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=causal),
        _attention_inputs(seed, batch, heads, time, time, dim),
        device,
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
@given(queries=sizes, keys=sizes, seed=seeds)
def test_attention_boolean_mask(device, impl, queries, keys, seed):
    mask = np.random.default_rng(seed).random((2, 1, queries, keys)) < 0.7
    mask[..., 0] = True  # every query sees a key (torch gives nan otherwise)
    compare(
        "attention[mask]",
        lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, causal=False, attn_mask=m, impl=impl),
        lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m),
        _attention_inputs(seed, 2, 3, queries, keys, 4),
        device,
        constants=[mask],
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
def test_attention_causal_with_fewer_queries_is_aligned_bottom_right(device, impl):
    queries, keys = 3, 7
    bottom_right = np.tril(np.ones((queries, keys), bool), k=keys - queries)
    compare(
        "attention[causal, Tq<Tk]",
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True, scale=0.3, impl=impl),
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=torch.tensor(bottom_right), scale=0.3),
        _attention_inputs(5, 2, 2, queries, keys, 4),
        device,
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernels", ["reference", "fast"])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "queries, keys, dim, value_dim, causal",
    [(0, 0, 4, 4, True), (0, 3, 4, 4, False), (3, 0, 4, 4, False), (3, 3, 0, 0, True), (3, 3, 0, 4, True)],
)
def test_attention_with_no_positions_or_no_features_is_pytorchs(
    device, kernels, impl, queries, keys, dim, value_dim, causal
):
    """T = 0 gives an empty output, no keys an output of zeros, D = 0 the softmax of zero scores (uniform)."""
    from tinygrad_tx.kernels import use

    rng = np.random.default_rng(queries * 100 + keys * 10 + dim)
    arrays = [
        rng.standard_normal(shape) for shape in ((2, 2, queries, dim), (2, 2, keys, dim), (2, 2, keys, value_dim))
    ]
    with use(kernels):
        compare(
            "attention[empty]",
            lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal, impl=impl),
            lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=causal),
            arrays,
            device,
        )
