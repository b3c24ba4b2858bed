"""The public API models/ and train/ are written against: the factories, the no-copy constructor,
attention probabilities on request, and an AST check that models/ and train/ use nothing else of the
engine (no underscore name of tinygrad_tx, no tinygrad_tx.backend, no raw ``.data``) outside the
documented public hooks listed in ALLOWED.
"""

import ast

import numpy as np
import pytest

import tinygrad_tx
from models import GPT, CausalSelfAttention, GPTConfig, Head, KVCache, MultiHeadAttention
from models.attention import record_attention
from models.encoder_decoder import CrossAttention
from tinygrad_tx import (
    DTypeError,
    Tensor,
    arange,
    from_numpy,
    full,
    manual_seed,
    no_grad,
    ones,
    randn,
    rng,
    tril,
    zeros,
)

from helpers import DEVICES, ROOT, assert_close

CHECKED = ("models", "train")
BACKEND_INTERNALS = {"xp_of", "array_module"}
# receivers whose ``.data`` is a configuration field (the dataset path), not a Tensor's array
CONFIG_RECEIVERS = {"args", "config", "cfg"}

# (file, function) -> (what it may use, why). Each function must call itself a public hook in its docstring.
ALLOWED = {
    ("models/generation.py", "<module>"): ({"import tinygrad_tx.backend.xp_of"}, "for sample_next below"),
    ("models/generation.py", "sample_next"): (
        {"xp_of", ".data"},
        "top-k, sort and cumsum on raw arrays: the engine has no such ops",
    ),
    ("models/generation.py", "LayerCache.append"): ({".data"}, "writes into preallocated buffers in place"),
}


def engine_private_names():
    """Every single-underscore name tinygrad_tx defines: functions, classes, attributes, slots."""
    names = set()
    for path in (ROOT / "tinygrad_tx").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
                names.add(node.value)  # __slots__ entries and setattr names
    return {name for name in names if name.startswith("_") and not name.startswith("__")}


ENGINE_PRIVATE = engine_private_names()


def own_names(tree):
    """Names a file defines itself (its own private helpers may share a name with one of the engine's)."""
    nodes = list(ast.walk(tree))
    return {node.name for node in nodes if isinstance(node, (ast.FunctionDef, ast.ClassDef))} | {
        node.attr for node in nodes if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
    }


def findings(source, filename="<test>"):
    """[(function qualname, what)] for each use of an engine internal in ``source``."""
    found = []
    tree = ast.parse(source, filename)
    private = ENGINE_PRIVATE - own_names(tree)

    def visit(node, scope):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = node.name if scope == "<module>" else f"{scope}.{node.name}"
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tinygrad_tx"):
            for alias in node.names:
                if node.module == "tinygrad_tx.backend" or alias.name == "backend" or alias.name.startswith("_"):
                    found.append((scope, f"import {node.module}.{alias.name}"))
        elif isinstance(node, ast.Import):
            found.extend(
                (scope, f"import {alias.name}")
                for alias in node.names
                if alias.name.startswith("tinygrad_tx.backend") or "._" in alias.name
            )
        elif isinstance(node, ast.Attribute):
            if node.attr in private:
                found.append((scope, f".{node.attr}"))
            elif node.attr in BACKEND_INTERNALS:
                found.append((scope, node.attr))
            elif node.attr == "data" and not (isinstance(node.value, ast.Name) and node.value.id in CONFIG_RECEIVERS):
                found.append((scope, ".data"))
        elif isinstance(node, ast.Name) and (node.id in BACKEND_INTERNALS or node.id == "backend"):
            found.append((scope, node.id))
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(tree, "<module>")
    return found


def checked_files():
    return sorted(path for folder in CHECKED for path in (ROOT / folder).rglob("*.py"))


def test_models_and_train_use_only_the_public_api():
    violations, used = [], set()
    for path in checked_files():
        relative = path.relative_to(ROOT).as_posix()
        for scope, what in findings(path.read_text(encoding="utf-8"), relative):
            allowed, _ = ALLOWED.get((relative, scope), (set(), ""))
            if what in allowed:
                used.add((relative, scope, what))
            else:
                violations.append(f"{relative}: {scope}: {what}")
    assert not violations, "engine internals outside the allowed public hooks:\n" + "\n".join(violations)
    stale = [
        f"{file}: {scope}: {what}"
        for (file, scope), (names, _) in ALLOWED.items()
        for what in names
        if (file, scope, what) not in used
    ]
    assert not stale, f"ALLOWED lists exceptions nothing uses any more (remove them): {stale}"


def test_each_allowed_hook_documents_why():
    for file, scope in ALLOWED:
        if scope == "<module>":
            continue
        tree = ast.parse((ROOT / file).read_text(encoding="utf-8"))
        definitions = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                definitions.update(
                    {f"{node.name}.{item.name}": item for item in node.body if isinstance(item, ast.FunctionDef)}
                )
            elif isinstance(node, ast.FunctionDef):
                definitions.setdefault(node.name, node)
        docstring = ast.get_docstring(definitions[scope]) or ""
        assert "public hook" in docstring, f"{file}: {scope} is allowed engine internals but does not say why"


def test_the_checker_sees_each_kind_of_violation():
    source = """
from tinygrad_tx import backend, Tensor
from tinygrad_tx.backend import as_array
import tinygrad_tx.backend
def f(x, config):
    y = Tensor._wrap(x.data)
    return backend.xp_of(y), array_module("cpu"), x._ctx, config.data
"""
    assert sorted(findings(source)) == sorted(
        [
            ("<module>", "import tinygrad_tx.backend"),
            ("<module>", "import tinygrad_tx.backend.as_array"),
            ("<module>", "import tinygrad_tx.backend"),
            ("f", "._wrap"),
            ("f", ".data"),
            ("f", "backend"),
            ("f", "xp_of"),
            ("f", "array_module"),
            ("f", "._ctx"),
        ]
    )


# ---------------------------------------------------------------- factories
@pytest.mark.parametrize("device", DEVICES)
def test_factories_match_numpy(device):
    cases = [
        (arange(5, device=device), np.arange(5)),
        (arange(1, 2, 0.25, device=device), np.arange(1, 2, 0.25)),
        (zeros(2, 3, device=device), np.zeros((2, 3))),
        (zeros((2, 3), device=device), np.zeros((2, 3))),
        (ones(4, device=device), np.ones(4)),
        (full((2, 2), 7, device=device), np.full((2, 2), 7)),
        (full(3, 1.5, device=device), np.full(3, 1.5)),
        (full(2, True, device=device), np.full(2, True)),
        (tril(3, 4, 1, device=device), np.tri(3, 4, 1)),
        (tril(3, dtype="bool", device=device), np.tri(3) > 0),
    ]
    for tensor, expected in cases:
        assert tensor.device == tinygrad_tx.normalize_device(device) and tensor.shape == expected.shape
        np.testing.assert_array_equal(tensor.numpy(), expected)
    assert arange(3).dtype == np.int64 and arange(1, 2, 0.5).dtype == np.float32
    assert zeros(2).dtype == ones(2).dtype == full(2, 0.5).dtype == tril(2).dtype == np.float32
    assert full(2, 3).dtype == np.int64 and full(2, False).dtype == np.bool_
    assert zeros(2, dtype="float64").dtype == np.float64 and arange(3, dtype="float64").dtype == np.float64


def test_randn_draws_from_the_seeded_engine_generator():
    manual_seed(7)
    first = randn(3, 4)
    manual_seed(7)
    expected = rng("cpu").standard_normal((3, 4), dtype=np.float32)
    assert first.dtype == np.float32 and first.shape == (3, 4)
    np.testing.assert_array_equal(first.numpy(), expected)
    assert randn(2, requires_grad=True).requires_grad
    with pytest.raises(DTypeError):
        zeros(2, dtype="int64", requires_grad=True)


def test_from_numpy_shares_memory_both_ways_and_keeps_the_dtype():
    array = np.zeros(3)
    tensor = from_numpy(array, requires_grad=True)
    assert tensor.dtype == np.float64 and tensor.requires_grad and tensor.is_leaf
    array[0] = 5.0
    assert tensor.numpy()[0] == 5.0, "a write into the array is not seen by the tensor"
    optimizer = tinygrad_tx.optim.SGD([tensor], lr=1.0)
    (tensor * tensor).sum().backward()
    optimizer.step()
    assert array[0] == 5.0 - 10.0, "an optimizer step on the tensor did not change the array"
    with pytest.raises(DTypeError, match="from_numpy: expected a numpy.ndarray"):
        from_numpy([1, 2, 3])


def test_tensor_from_array_wraps_without_copying():
    array = np.arange(6, dtype=np.int32).reshape(2, 3)
    tensor = Tensor.from_array(array)
    assert tensor.dtype == np.int32 and np.shares_memory(tensor.numpy(), array)
    assert Tensor(array).numpy() is not array and not np.shares_memory(Tensor(array).numpy(), array)
    with pytest.raises(DTypeError, match="Tensor.from_array: expected a NumPy or CuPy array"):
        Tensor.from_array([1, 2])
    with pytest.raises(DTypeError, match="numbers or booleans"):
        Tensor.from_array(np.array(["a"]))


def test_argmax_and_invert():
    x = Tensor([[1.0, 3.0, 3.0], [4.0, 0.0, -1.0]])
    np.testing.assert_array_equal(x.argmax(axis=-1).numpy(), [1, 0])
    assert x.argmax(axis=1, keepdims=True).shape == (2, 1) and x.argmax().item() == 3
    np.testing.assert_array_equal((~Tensor([True, False])).numpy(), [False, True])
    with pytest.raises(TypeError, match="only boolean and integer"):
        _ = ~x


# ---------------------------------------------------------------- attention probabilities on request
CONFIG = GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16)


def sharpened(module, factor=6):
    """Weights large enough that attention is far from uniform: a sharper check."""
    for param in module.parameters():
        param.data *= factor  # test set-up only: scale the weights in place
    return module


@no_grad()
@pytest.mark.parametrize("causal", [True, False])
def test_recorded_probabilities_give_the_fused_output(causal):
    attn = sharpened(CausalSelfAttention(CONFIG, causal=causal)).eval()
    x = randn(2, 5, 16)
    fused = attn(x).numpy()
    with record_attention(attn) as probabilities:
        recorded_output = attn(x).numpy()
    p = probabilities[""].numpy()
    assert p.shape == (2, 2, 5, 5) and p.max() > 0.9
    assert_close(p.sum(axis=-1), np.ones((2, 2, 5)), 1e-6, what="rows sum to 1")
    assert np.triu(p, k=1).any() != causal, "the causal mask is wrong"
    assert_close(recorded_output, fused, 1e-5, what="output computed from the recorded P vs the fused op")
    assert not attn.keep_attention and attn.attention is None, "recording outlived its block"


@no_grad()
def test_recording_works_with_a_kv_cache_and_in_per_head_modules():
    model = sharpened(GPT(CONFIG)).eval()
    tokens = np.random.default_rng(0).integers(0, 11, (1, 6))
    cache = KVCache(CONFIG.n_layer, CONFIG.block_size)
    model(tokens[:, :5], kv_cache=cache)
    with record_attention(model) as probabilities:
        model(tokens[:, 5:], kv_cache=cache)
    assert sorted(probabilities) == ["transformer.h.0.attn", "transformer.h.1.attn"]
    assert probabilities["transformer.h.0.attn"].shape == (1, 2, 1, 6)  # one new query, six keys
    mha = MultiHeadAttention(16, 2, 8, 8).eval()
    with record_attention(mha) as probabilities:
        mha(randn(1, 4, 16))
    assert sorted(probabilities) == ["heads.0", "heads.1"] and probabilities["heads.0"].shape == (1, 4, 4)
    assert np.triu(probabilities["heads.1"].numpy(), k=1).max() == 0
    assert isinstance(mha.heads[0], Head)


@no_grad()
def test_cross_attention_records_masked_probabilities():
    cross = sharpened(CrossAttention(CONFIG), 3).eval()
    x, context = randn(2, 3, 16), randn(2, 4, 16)
    padding = np.zeros((2, 4), bool)
    padding[1, 2:] = True
    fused = cross(x, context, padding).numpy()
    with record_attention(cross) as probabilities:
        recorded_output = cross(x, context, padding).numpy()
    p = probabilities[""].numpy()
    assert p.shape == (2, 2, 3, 4) and not p[1, :, :, 2:].any()
    assert_close(recorded_output, fused, 1e-5, what="cross-attention output from the recorded P")
