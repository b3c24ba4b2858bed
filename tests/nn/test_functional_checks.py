"""tinygrad_tx.nn.functional: float64 finite-difference gradchecks of every op, numerical stability,
fused and composed implementations agreeing, documented edge cases, and bad inputs.
(Comparisons with PyTorch: tests/nn/test_functional.py.)
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_tx.nn.functional as F
from tinygrad_tx import (
    DTypeError,
    IndexOutOfRangeError,
    ShapeError,
    Tensor,
    TinygradTxError,
    backend,
    gradcheck,
    gradcheck_directional,
)
from tinygrad_tx.kernels.cpu.gelu import erf

from helpers import DEVICES, assert_close

seeds = st.integers(0, 2**16)
sizes = st.integers(1, 4)
IMPLS = ["fused", "composed"]


def leaf(array, device="cpu", dtype="float64"):
    return Tensor(np.asarray(array), requires_grad=True, device=device, dtype=dtype)


def normal(seed, *shape, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


# ------------------------------------------------------------------ gradchecks (float64, every op)
@pytest.mark.parametrize("impl", IMPLS)
@given(shape=st.lists(sizes, min_size=1, max_size=3), axis=st.sampled_from([0, -1]), seed=seeds)
def test_gradcheck_softmax_and_log_softmax(impl, shape, axis, seed):
    x = leaf(normal(seed, *shape, scale=2.0))
    assert gradcheck(lambda t: F.softmax(t, axis=axis, impl=impl), [x])
    assert gradcheck(lambda t: F.log_softmax(t, axis=axis, impl=impl), [x])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(
    lead=st.sampled_from([(3,), (1,), (2, 3), (2, 1)]),
    classes=sizes,
    ignored=st.sampled_from(["some", "all"]),
    seed=seeds,
)
def test_gradcheck_cross_entropy(impl, reduction, lead, classes, ignored, seed):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, classes, lead)
    targets[rng.random(lead) < (0.4 if ignored == "some" else 2.0)] = -1

    def loss(z):
        return F.cross_entropy(z, targets, reduction=reduction, impl=impl)

    assert gradcheck(loss, [leaf(normal(seed, *lead, classes, scale=2.0))])


@pytest.mark.parametrize("impl", IMPLS)
@given(lead=st.sampled_from([(2,), (1,), (2, 3)]), features=sizes, affine=st.booleans(), seed=seeds)
def test_gradcheck_layer_norm(impl, lead, features, affine, seed):
    inputs = [leaf(normal(seed, *lead, features, scale=2.0))]
    if affine:
        inputs += [leaf(normal(seed + 1, features)), leaf(normal(seed + 2, features))]
    assert gradcheck(lambda x, *p: F.layer_norm(x, *p, impl=impl), inputs)


@given(lead=st.sampled_from([(5,), (2, 3), (1,)]), rows=st.integers(1, 4), dim=sizes, seed=seeds)
def test_gradcheck_embedding_with_repeats(lead, rows, dim, seed):
    indices = np.random.default_rng(seed).integers(0, rows, lead)
    assert gradcheck(lambda w: F.embedding(indices, w), [leaf(normal(seed, rows, dim))])


def test_gradcheck_embedding_sorted_scatter_path():
    indices = np.random.default_rng(0).integers(0, 300, 40)  # > 256 rows: sort + reduceat, not one-hot
    indices[:5] = 7
    assert gradcheck_directional(lambda w: F.embedding(indices, w), [leaf(normal(0, 300, 3))])


@given(shape=st.lists(sizes, min_size=1, max_size=3), approximate=st.sampled_from(["none", "tanh"]), seed=seeds)
def test_gradcheck_gelu_and_relu(shape, approximate, seed):
    x = leaf(normal(seed, *shape, scale=3.0))
    assert gradcheck(lambda t: F.gelu(t, approximate), [x])
    assert gradcheck(F.relu, [leaf(normal(seed, *shape) + 0.01)])  # away from the kink at 0


@given(lead=st.sampled_from([(2,), (1,), (2, 3)]), features=sizes, outputs=sizes, bias=st.booleans(), seed=seeds)
def test_gradcheck_linear(lead, features, outputs, bias, seed):
    inputs = [leaf(normal(seed, *lead, features)), leaf(normal(seed + 1, outputs, features))]
    if bias:
        inputs.append(leaf(normal(seed + 2, outputs)))
    assert gradcheck(F.linear, inputs)


def test_gradcheck_dropout():
    def fn(x):
        backend.manual_seed(7)  # every evaluation draws the same mask
        return F.dropout(x, 0.4)

    assert gradcheck(fn, [leaf(normal(0, 3, 5))])


@pytest.mark.parametrize("impl", IMPLS)
@given(
    heads=st.integers(1, 2),
    queries=sizes,
    keys=sizes,
    dim=sizes,
    causal=st.booleans(),
    masked=st.booleans(),
    dropout_p=st.sampled_from([0.0, 0.3]),
    seed=seeds,
)
def test_gradcheck_attention(impl, heads, queries, keys, dim, causal, masked, dropout_p, seed):
    mask = np.random.default_rng(seed).random((1, 1, queries, keys)) < 0.6 if masked else None

    def attention(q, k, v):
        backend.manual_seed(3)
        return F.scaled_dot_product_attention(q, k, v, causal=causal, dropout_p=dropout_p, attn_mask=mask, impl=impl)

    inputs = [
        leaf(normal(seed, 1, heads, queries, dim)),
        leaf(normal(seed + 1, 1, heads, keys, dim)),
        leaf(normal(seed + 2, 1, heads, keys, 2)),
    ]
    assert gradcheck(attention, inputs)


# ------------------------------------------------------------------ stability and accuracy
def test_erf_accuracy_in_float32_and_float64():
    x = np.linspace(-7, 7, 70001)  # float32 runs over more than two blocks
    expected = np.array([math.erf(v) for v in x])
    assert np.abs(erf(x) - expected).max() < 5e-15
    x32 = x.astype(np.float32)
    expected32 = np.array([math.erf(float(v)) for v in x32])
    assert erf(x32).dtype == np.float32
    assert np.abs(erf(x32) - expected32).max() < 5e-7


def test_one_feature_layer_norm_outputs_the_bias_with_zero_gradient():
    x, bias = Tensor(normal(0, 3, 1), requires_grad=True), Tensor(np.array([0.5]))
    out = F.layer_norm(x, Tensor(np.array([2.0])), bias)
    out.backward(Tensor(normal(1, 3, 1)))
    assert_close(out.numpy(), np.full((3, 1), 0.5), 1e-7)
    assert not x.grad.numpy().any()


# ------------------------------------------------------------------ fused and composed agree
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax", "cross_entropy", "layer_norm", "attention"])
def test_fused_and_composed_agree(device, op):
    rng = np.random.default_rng(1)
    targets = np.array([[1, -1, 3], [0, 2, -1]])
    mask = rng.random((1, 1, 4, 6)) < 0.5
    mask[..., 2, :] = False  # a query that sees no key
    shapes = {
        "softmax": [(2, 3, 4)],
        "log_softmax": [(2, 3, 4)],
        "cross_entropy": [(2, 3, 4)],
        "layer_norm": [(2, 3, 4), (4,), (4,)],
        "attention": [(2, 2, 4, 3), (2, 2, 6, 3), (2, 2, 6, 5)],
    }[op]
    calls = {
        "softmax": lambda x, impl: F.softmax(x, impl=impl),
        "log_softmax": lambda x, impl: F.log_softmax(x, axis=1, impl=impl),
        "cross_entropy": lambda x, impl: F.cross_entropy(x, targets, reduction="none", impl=impl),
        "layer_norm": lambda x, w, b, impl: F.layer_norm(x, w, b, impl=impl),
        "attention": lambda q, k, v, impl: F.scaled_dot_product_attention(
            q, k, v, dropout_p=0.2, attn_mask=mask, impl=impl
        ),
    }[op]
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    results = []
    for impl in IMPLS:
        backend.manual_seed(5)
        inputs = [Tensor(a, requires_grad=True, device=device) for a in arrays]
        out = calls(*inputs, impl)
        out.backward(Tensor(np.linspace(-1, 1, out.data.size).reshape(out.shape).astype(np.float32), device=device))
        results.append([out.numpy()] + [t.grad.numpy() for t in inputs])
    for fused, composed in zip(*results):
        assert np.isfinite(fused).all()
        assert_close(fused, composed, 1e-5, atol=1e-7, what=op)


def test_default_impl_switch():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    assert F.get_default_impl() == "fused" and F.softmax(x).grad_fn == "Softmax"
    try:
        F.set_default_impl("composed")
        assert F.softmax(x).grad_fn != "Softmax" and F.layer_norm(x).grad_fn != "LayerNorm"
        assert F.softmax(x, impl="fused").grad_fn == "Softmax"
    finally:
        F.set_default_impl("fused")
    with pytest.raises(TinygradTxError, match="set_default_impl: impl must be one of .*got 'fast'"):
        F.set_default_impl("fast")
    with pytest.raises(TinygradTxError, match="softmax: impl must be one of"):
        F.softmax(x, impl="fast")


# ------------------------------------------------------------------ documented edge cases
@pytest.mark.parametrize("impl", IMPLS)
def test_cross_entropy_all_ignored_is_zero_with_zero_gradient(impl):
    logits = Tensor(normal(0, 2, 3, 4), requires_grad=True)
    loss = F.cross_entropy(logits, np.full((2, 3), -1), impl=impl)
    loss.backward()
    assert loss.item() == 0.0 and not logits.grad.numpy().any()


@pytest.mark.parametrize("impl", IMPLS)
def test_attention_fully_masked_query_outputs_zero_and_kv_cache_alignment(impl):
    q, k, v = (Tensor(normal(s, 1, 2, 5, 3), requires_grad=True) for s in range(3))
    mask = np.ones((5, 5), bool)
    mask[1] = False
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, impl=impl)
    out.sum().backward()
    assert not out.numpy()[:, :, 1].any() and not q.grad.numpy()[:, :, 1].any()
    assert all(np.isfinite(t.grad.numpy()).all() for t in (q, k, v))
    full = F.scaled_dot_product_attention(q, k, v, impl=impl).numpy()
    last_two = F.scaled_dot_product_attention(q[:, :, 3:], k, v, impl=impl).numpy()  # cached keys
    assert_close(last_two, full[:, :, 3:], 1e-6, what="queries 3, 4 against all five keys")


def test_dropout_is_the_identity_when_off():
    x = Tensor(np.ones(4), requires_grad=True)
    assert F.dropout(x, 0.0) is x and F.dropout(x, 0.5, training=False) is x


# ------------------------------------------------------------------ bad inputs
def test_cross_entropy_errors():
    logits = Tensor(np.zeros((2, 3, 5)), requires_grad=True)
    with pytest.raises(IndexOutOfRangeError, match=r"cross_entropy: target 7 is out of range for 5 classes"):
        F.cross_entropy(logits, np.array([[0, 7, 1], [0, 1, 2]]))
    with pytest.raises(IndexOutOfRangeError, match=r"target -3 is out of range"):
        F.cross_entropy(logits, np.array([[0, -3, 1], [0, 1, 2]]))
    with pytest.raises(ShapeError, match=r"targets shape \(2, 4\) does not match logits shape \(2, 3, 5\)"):
        F.cross_entropy(logits, np.zeros((2, 4), int))
    with pytest.raises(DTypeError, match="targets must be integer class indices, got dtype float32"):
        F.cross_entropy(logits, np.zeros((2, 3)))
    with pytest.raises(TinygradTxError, match="reduction must be one of"):
        F.cross_entropy(logits, np.zeros((2, 3), int), reduction="avg")
    with pytest.raises(ShapeError, match=r"logits must be \(N, C\) or \(B, T, C\), got shape \(5,\)"):
        F.cross_entropy(Tensor(np.zeros(5)), np.zeros((), int))


def test_embedding_layer_norm_linear_errors():
    table = Tensor(np.zeros((10, 3)), requires_grad=True)
    with pytest.raises(IndexOutOfRangeError, match=r"embedding: index 10 is out of range for a table of 10 rows"):
        F.embedding(np.array([1, 10]), table)
    with pytest.raises(IndexOutOfRangeError, match=r"embedding: index -1 is out of range"):
        F.embedding(np.array([-1, 2]), table)
    with pytest.raises(DTypeError, match="embedding: indices must be integers, got dtype float32"):
        F.embedding(np.array([1.0]), table)
    x = Tensor(np.zeros((2, 4)))
    with pytest.raises(ShapeError, match=r"layer_norm: weight shape \(3,\) does not match.*\(4,\) of input .*\(2, 4\)"):
        F.layer_norm(x, Tensor(np.ones(3)))
    with pytest.raises(ShapeError, match=r"layer_norm: bias shape \(4, 1\)"):
        F.layer_norm(x, None, Tensor(np.ones((4, 1))))
    with pytest.raises(ShapeError, match=r"linear: input shape \(2, 4\) does not fit weight shape \(3, 5\)"):
        F.linear(x, Tensor(np.zeros((3, 5))))
    with pytest.raises(ShapeError, match=r"linear: bias shape \(4,\) does not match out_features \(3,\)"):
        F.linear(x, Tensor(np.zeros((3, 4))), Tensor(np.zeros(4)))


def test_activation_and_dropout_errors():
    x = Tensor(np.zeros((2, 3)))
    for p in (1.0, -0.1, 1.5):
        with pytest.raises(TinygradTxError, match=f"dropout: dropout probability must be .* in \\[0, 1\\), got {p}"):
            F.dropout(x, p)
    with pytest.raises(TinygradTxError, match="gelu: approximate must be 'none' or 'tanh', got 'erf'"):
        F.gelu(x, "erf")
    with pytest.raises(ShapeError, match="softmax: axis 2 is out of range"):
        F.softmax(x, axis=2)
    with pytest.raises(DTypeError, match="log_softmax: needs a float tensor"):
        F.log_softmax(Tensor(np.zeros(3, int)))


def test_attention_errors():
    q, k = Tensor(np.zeros((1, 2, 4, 3))), Tensor(np.zeros((1, 2, 5, 3)))
    with pytest.raises(ShapeError, match=r"q \(1, 2, 4, 3\), k \(1, 2, 5, 3\), v \(1, 2, 4, 3\) do not fit"):
        F.scaled_dot_product_attention(q, k, q)
    with pytest.raises(DTypeError, match="attn_mask must be boolean"):
        F.scaled_dot_product_attention(q, k, k, attn_mask=np.ones((4, 5)))
    with pytest.raises(ShapeError, match=r"attn_mask shape \(5, 4\) does not broadcast to .* shape \(1, 2, 4, 5\)"):
        F.scaled_dot_product_attention(q, k, k, attn_mask=np.ones((5, 4), bool))
    with pytest.raises(TinygradTxError, match="scaled_dot_product_attention: dropout probability"):
        F.scaled_dot_product_attention(q, k, k, dropout_p=1.0)
