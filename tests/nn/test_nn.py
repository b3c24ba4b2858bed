"""Modules and layers: registration, names, state dicts, ties, modes, repr; layers against torch.nn."""

import numpy as np
import pytest
import torch

import tinygrad_tx.nn as nn
import tinygrad_tx.nn.functional as F
from tinygrad_tx import Tensor, TinygradTxError, manual_seed

from helpers import DEVICES, assert_close


class TinyNet(nn.Module):
    """A little of everything: nested containers, an optional bias, and a tied weight (as nanoGPT)."""

    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(10, 8)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(8, 16), nn.Linear(16, 8, bias=False)) for _ in range(2)])
        self.ln_f = nn.LayerNorm(8)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(8, 10, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, idx):
        x = self.drop(self.wte(idx))
        for block in self.blocks:
            x = x + block(x)
        return self.head(self.ln_f(x))


class TorchTinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(10, 8)
        self.blocks = torch.nn.ModuleList(
            [torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 8, bias=False)) for _ in range(2)]
        )
        self.ln_f = torch.nn.LayerNorm(8)
        self.drop = torch.nn.Dropout(0.1)
        self.head = torch.nn.Linear(8, 10, bias=False)
        self.head.weight = self.wte.weight


def upstream(shape, seed=7):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------- Module machinery
def test_names_match_pytorch_and_ties_appear_once():
    ours, theirs = TinyNet(), TorchTinyNet()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert len(list(ours.parameters())) == len(list(theirs.parameters())) == 9
    assert list(ours.state_dict()) == list(theirs.state_dict())  # the tied weight under both names
    assert ours.head.weight is ours.wte.weight


def test_state_dict_round_trip_with_torch():
    ours, theirs = TinyNet(), TorchTinyNet()
    mine = ours.state_dict()
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in mine.values())
    assert {k: v.shape for k, v in mine.items()} == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in mine.items()}, strict=True)
    back = TinyNet()
    back.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for key, value in back.state_dict().items():
        np.testing.assert_array_equal(value, mine[key], err_msg=key)


def test_state_dict_is_a_copy():
    net = nn.Linear(3, 2)
    saved = net.state_dict()
    net.weight.data += 1
    assert not np.allclose(saved["weight"], net.weight.numpy())


def test_load_state_dict_writes_in_place_casts_and_keeps_ties():
    net = TinyNet()
    weight_array = net.wte.weight.data
    state = {k: np.full(v.shape, 0.25, dtype=np.float64) for k, v in net.state_dict().items()}
    state["head.weight"] = state["wte.weight"]
    net.load_state_dict(state)
    assert net.wte.weight.data is weight_array and net.head.weight is net.wte.weight
    assert net.wte.weight.dtype == np.float32
    np.testing.assert_array_equal(net.head.weight.numpy(), np.full((10, 8), 0.25, dtype=np.float32))
    net.load_state_dict({k: Tensor(v) for k, v in state.items()})  # Tensors work as values too


def test_load_state_dict_reports_every_bad_key_at_once_and_writes_nothing():
    net = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    state = net.state_dict()
    before = net.state_dict()
    del state["0.bias"], state["1.weight"]
    state["2.weight"] = np.zeros(3, dtype=np.float32)
    state["0.weight"] = np.zeros((4, 3), dtype=np.float32)
    state["1.bias"] = np.ones(4, dtype=np.float32)
    with pytest.raises(TinygradTxError) as info:
        net.load_state_dict(state)
    assert str(info.value) == (
        "Sequential.load_state_dict: missing keys: ['0.bias', '1.weight']; "
        "unexpected keys: ['2.weight']; shape mismatch: '0.weight' expects (3, 4), got (4, 3), "
        "'1.bias' expects (3,), got (4,)"
    )
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_load_state_dict_non_strict_returns_missing_and_unexpected():
    net = nn.Linear(4, 3)
    result = net.load_state_dict({"weight": np.ones((3, 4)), "extra": np.ones(2)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(net.weight.numpy(), np.ones((3, 4)))
    with pytest.raises(TinygradTxError, match=r"shape mismatch: 'weight' expects \(3, 4\), got \(2,\)"):
        net.load_state_dict({"weight": np.ones(2)}, strict=False)


def test_train_and_eval_propagate_to_every_module():
    net = TinyNet()
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad_clears_every_gradient():
    net = TinyNet()
    net(np.array([[1, 2, 3]])).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_named_modules_and_apply_visit_each_module_once():
    net = TinyNet()
    names = [name for name, _ in net.named_modules()]
    assert names == [
        "",
        "wte",
        "blocks",
        "blocks.0",
        "blocks.0.0",
        "blocks.0.1",
        "blocks.1",
        "blocks.1.0",
        "blocks.1.1",
        "ln_f",
        "drop",
        "head",
    ]
    visited = []
    assert net.apply(lambda m: visited.append(type(m).__name__)) is net
    assert visited.count("Linear") == 5 and visited[-1] == "TinyNet"


def test_repr_is_readable():
    net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.LayerNorm(3), nn.Dropout(0.1), nn.Embedding(5, 2))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=3, bias=False)\n"
        "  (1): LayerNorm((3,), eps=1e-05, bias=True)\n"
        "  (2): Dropout(p=0.1)\n"
        "  (3): Embedding(5, 2)\n"
        ")"
    )
    nested = repr(nn.ModuleDict({"h": nn.ModuleList([nn.Dropout(0.0)])}))
    assert nested == "ModuleDict(\n  (h): ModuleList(\n    (0): Dropout(p=0.0)\n  )\n)"
    assert repr(nn.Parameter(np.ones(2))).startswith("Parameter containing:\nTensor([1., 1.]")


def test_containers_index_iterate_and_chain():
    first, second = nn.Linear(3, 4), nn.Linear(4, 2)
    seq = nn.Sequential(first, second)
    assert len(seq) == 2 and seq[0] is first and seq[-1] is second and list(seq) == [first, second]
    assert isinstance(seq[1:], nn.Sequential) and seq[1:][0] is second
    x = Tensor(upstream((5, 3)))
    np.testing.assert_allclose(seq(x).numpy(), second(first(x)).numpy())
    layers = nn.ModuleList().append(first).extend([second])
    assert [n for n, _ in layers.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    table = nn.ModuleDict({"a": first})
    table["b"] = second
    assert list(table) == ["a", "b"] and "b" in table and table["a"] is first and len(table) == 2
    with pytest.raises(IndexError, match="ModuleList: index 2 out of range for length 2"):
        layers[2]
    with pytest.raises(TinygradTxError, match="ModuleList: can only hold Modules, got int"):
        layers.append(3)


def test_attribute_registration_rules():
    net = nn.Linear(3, 2)
    net.weight = nn.Parameter(np.zeros((2, 3)))  # a replaced parameter keeps its place, as in PyTorch
    assert [n for n, _ in net.named_parameters()] == ["weight", "bias"]
    net.bias = None  # an optional parameter switched off stays a known name
    assert [n for n, _ in net.named_parameters()] == ["weight"] and net.bias is None
    with pytest.raises(TinygradTxError, match="cannot assign a plain Tensor to parameter 'weight'"):
        net.weight = Tensor(np.ones((2, 3)))
    net.scale = 2.0  # plain attributes are not registered
    assert "scale" not in dict(net.named_parameters())
    del net.weight
    assert list(net.parameters()) == []

    class Forgetful(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(TinygradTxError, match=r"Forgetful: call super\(\).__init__\(\) before assigning 'fc'"):
        Forgetful()
    with pytest.raises(NotImplementedError, match="Module: a Module subclass must define forward"):
        nn.Module()(1)


# ---------------------------------------------------------------------------- initialisation
def test_initialisation_follows_pytorch_defaults_and_the_seed():
    manual_seed(5)
    linear = nn.Linear(64, 128)
    bound = 1 / np.sqrt(64)
    for p in (linear.weight, linear.bias):
        assert p.dtype == np.float32 and p.requires_grad and np.abs(p.numpy()).max() <= bound
    assert linear.weight.numpy().std() == pytest.approx(bound / np.sqrt(3), rel=0.05)  # U(-b, b)
    embedding = nn.Embedding(200, 64).weight.numpy()
    assert embedding.mean() == pytest.approx(0, abs=0.02) and embedding.std() == pytest.approx(1, rel=0.03)
    norm = nn.LayerNorm(6)
    np.testing.assert_array_equal(norm.weight.numpy(), np.ones(6))
    np.testing.assert_array_equal(norm.bias.numpy(), np.zeros(6))
    manual_seed(5)
    np.testing.assert_array_equal(nn.Linear(64, 128).weight.numpy(), linear.weight.numpy())


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: nn.Linear(0, 3), "Linear: in_features must be a positive integer, got 0"),
        (lambda: nn.Linear(3, 2.5), "Linear: out_features must be a positive integer, got 2.5"),
        (lambda: nn.Embedding(-1, 3), "Embedding: num_embeddings must be a positive integer, got -1"),
        (lambda: nn.LayerNorm((4, 0)), r"LayerNorm: normalized_shape must be positive integers, got \(4, 0\)"),
        (lambda: nn.LayerNorm(4, eps=-1), "LayerNorm: eps must be a number >= 0, got -1"),
        (lambda: nn.Dropout(1.0), r"Dropout: dropout probability must be a number in \[0, 1\), got 1.0"),
        (lambda: nn.LayerNorm(4)(Tensor(np.ones((2, 3)))), r"LayerNorm: input of shape \(2, 3\) does not end in"),
    ],
)
def test_bad_layer_arguments_raise_clear_errors(make, message):
    with pytest.raises(TinygradTxError, match=message):
        make()


# ---------------------------------------------------------------------------- layers against torch.nn
def compare_with_torch(ours, theirs, x, what, atol=1e-6):
    """Copy our weights into the torch layer, run both on x with a random upstream gradient, compare all."""
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)
    x_ours = Tensor(x, requires_grad=x.dtype.kind == "f")
    x_theirs = torch.from_numpy(x.copy()).requires_grad_(x.dtype.kind == "f")
    y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
    assert_close(y_ours.numpy(), y_theirs.detach().numpy(), rtol=1e-5, atol=atol, what=f"{what} forward")
    grad = upstream(y_theirs.shape)
    y_ours.backward(grad)
    y_theirs.backward(torch.from_numpy(grad))
    if x_theirs.requires_grad:
        assert_close(x_ours.grad.numpy(), x_theirs.grad.numpy(), rtol=1e-5, atol=atol, what=f"{what} d/dx")
    mine = dict(ours.named_parameters())
    for name, param in theirs.named_parameters():
        assert_close(mine[name].grad.numpy(), param.grad.numpy(), rtol=1e-5, atol=atol, what=f"{what} d/d{name}")


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(bias):
    compare_with_torch(nn.Linear(6, 5, bias=bias), torch.nn.Linear(6, 5, bias=bias), upstream((2, 3, 6), 1), "Linear")


def test_embedding_matches_torch_with_repeated_ids():
    ids = np.array([[1, 4, 4], [0, 4, 9]])
    compare_with_torch(nn.Embedding(10, 3), torch.nn.Embedding(10, 3), ids, "Embedding")


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_matches_torch(bias):
    ours = nn.LayerNorm(8, bias=bias)
    ours.weight.data[...] = upstream(8, 2)  # non-trivial affine parameters so their gradients matter
    if bias:
        ours.bias.data[...] = upstream(8, 3)
    compare_with_torch(ours, torch.nn.LayerNorm(8, bias=bias), upstream((2, 3, 8), 4), "LayerNorm", atol=1e-5)


def test_layernorm_over_two_trailing_axes_matches_torch():
    ours = nn.LayerNorm((3, 4))
    ours.weight.data[...] = upstream((3, 4), 2)
    compare_with_torch(ours, torch.nn.LayerNorm((3, 4)), upstream((2, 3, 4), 5), "LayerNorm 2-d", atol=1e-5)


def test_dropout_zeroes_and_rescales_in_training_and_is_identity_in_eval():
    drop = nn.Dropout(0.25)
    x = Tensor(np.ones((200, 100), dtype=np.float32), requires_grad=True)
    y = drop(x)
    values = y.numpy()
    assert set(np.unique(values)) <= {0.0, np.float32(1 / 0.75)}
    assert (values == 0).mean() == pytest.approx(0.25, abs=0.02)
    y.backward(np.ones_like(values))
    np.testing.assert_array_equal(x.grad.numpy(), values)  # d/dx = mask / (1 - p), the same mask
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())
    np.testing.assert_array_equal(nn.Dropout(0.0)(x).numpy(), x.numpy())


# ---------------------------------------------------------------------------- devices
@pytest.mark.parametrize("device", DEVICES)
def test_to_device_moves_parameters_in_place_and_keeps_ties(device):
    net = TinyNet()
    params = list(net.parameters())
    expected = net.state_dict()
    net(np.array([[1, 2]])).sum().backward()
    assert net.to(device) is net
    assert list(net.parameters()) == params and net.head.weight is net.wte.weight
    assert all(p.device == device and p.grad.device == device for p in params)
    saved = net.state_dict()
    assert all(isinstance(v, np.ndarray) for v in saved.values())
    for key, value in expected.items():
        np.testing.assert_array_equal(saved[key], value)
    net.load_state_dict(expected)
    assert all(p.device == device for p in net.parameters())


def test_layer_norm_eps_zero_is_one_rule_for_module_and_function():
    """Regression: nn.LayerNorm refused eps=0 while F.layer_norm accepted it; both now follow PyTorch."""
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    expected = torch.nn.functional.layer_norm(torch.from_numpy(x), (5,), eps=0.0).numpy()
    module = nn.LayerNorm(5, eps=0)
    assert_close(module(Tensor(x)).numpy(), expected, rtol=1e-5, what="nn.LayerNorm eps=0")
    for impl in ("fused", "composed"):
        assert_close(F.layer_norm(Tensor(x), eps=0.0, impl=impl).numpy(), expected, rtol=1e-5, what=impl)
        with pytest.raises(TinygradTxError, match="layer_norm: eps must be a number >= 0, got -1"):
            F.layer_norm(Tensor(x), eps=-1, impl=impl)
