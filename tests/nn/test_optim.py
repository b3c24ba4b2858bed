"""Optimizers, clipping and the schedule against torch.optim, torch's clip_grad_norm_ and nanoGPT's get_lr."""

import math
import tracemalloc

import numpy as np
import pytest
import torch

from tinygrad_tx import Tensor, TinygradTxError, kernels
from tinygrad_tx.optim import SGD, AdamW, clip_grad_norm_, cosine_lr

from helpers import DEVICES, assert_close

SHAPES = [(4, 3), (3,), (2, 5), (5,)]


def make_params(seed=0, device="cpu"):
    rng = np.random.default_rng(seed)
    return [
        Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True, device=device) for shape in SHAPES
    ]


def gradient_sequence(steps, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(shape).astype(np.float32) for shape in SHAPES] for _ in range(steps)]


def grouped(params, settings):
    """Two groups: the matrices with the given settings (own weight decay, lr), the vectors with none."""
    return [{"params": [params[0], params[2]], **settings}, {"params": [params[1], params[3]], "weight_decay": 0.0}]


def run_ours(optimizer, params, grads):
    for step_grads in grads:
        for param, grad in zip(params, step_grads):
            param.grad = Tensor(grad, device=param.device)
        optimizer.step()


def run_torch(optimizer, params, grads):
    for step_grads in grads:
        for param, grad in zip(params, step_grads):
            param.grad = torch.from_numpy(grad.copy())
        optimizer.step()


def torch_twins(params):
    return [torch.tensor(p.numpy(), requires_grad=True) for p in params]


@pytest.mark.parametrize(
    "case",
    [
        ("plain", {"lr": 0.1}, {}),
        ("momentum", {"lr": 0.05, "momentum": 0.9}, {}),
        (
            "momentum+decay groups",
            {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
            {"weight_decay": 0.1, "lr": 0.02},
        ),
    ],
    ids=lambda case: case[0],
)
def test_sgd_matches_torch_over_ten_steps(case):
    _, kwargs, group_settings = case
    ours, theirs, grads = make_params(), None, gradient_sequence(10)
    theirs = torch_twins(ours)
    our_groups = grouped(ours, group_settings) if group_settings else ours
    their_groups = grouped(theirs, group_settings) if group_settings else theirs
    run_ours(SGD(our_groups, **kwargs), ours, grads)
    run_torch(torch.optim.SGD(their_groups, **kwargs), theirs, grads)
    for mine, reference in zip(ours, theirs):
        assert_close(mine.numpy(), reference.detach().numpy(), rtol=1e-6, what="SGD parameter")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grouped_decay", [False, True])
def test_adamw_matches_torch_over_ten_steps(device, grouped_decay):
    ours, grads = make_params(device=device), gradient_sequence(10)
    theirs = torch_twins(ours)
    kwargs = {"lr": 0.01, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1}
    settings = {"weight_decay": 0.2, "lr": 0.003}
    our_opt = AdamW(grouped(ours, settings) if grouped_decay else ours, **kwargs)
    run_ours(our_opt, ours, grads)
    run_torch(torch.optim.AdamW(grouped(theirs, settings) if grouped_decay else theirs, **kwargs), theirs, grads)
    for mine, reference in zip(ours, theirs):
        assert mine.dtype == np.float32 and mine.device == device
        assert_close(mine.numpy(), reference.detach().numpy(), rtol=1e-6, what="AdamW parameter")


def test_updates_are_in_place_and_stay_float32():
    params = make_params()
    arrays = [p.data for p in params]
    optimizer = AdamW(params, lr=0.01)
    run_ours(optimizer, params, gradient_sequence(1))
    moments = [optimizer.state[id(p)]["exp_avg"] for p in params]
    run_ours(optimizer, params, gradient_sequence(2, seed=3))
    assert all(p.data is array for p, array in zip(params, arrays))
    assert all(optimizer.state[id(p)]["exp_avg"] is m for p, m in zip(params, moments))
    assert all(m.dtype == np.float32 for m in moments) and all(p.dtype == np.float32 for p in params)
    assert optimizer.state[id(params[0])]["step"] == 3


@pytest.mark.parametrize(
    "make", [lambda p: SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1), lambda p: AdamW(p)], ids=["SGD", "AdamW"]
)
def test_steps_after_the_first_allocate_no_arrays(make):
    """SGD's temporaries live in a reused scratch buffer and AdamW's update is one compiled loop that needs
    none; NumPy reports its allocations to tracemalloc."""
    params = [Tensor(np.ones((128, 128), dtype=np.float32), requires_grad=True) for _ in range(3)]
    for param in params:
        param.grad = Tensor(np.ones((128, 128), dtype=np.float32))
    optimizer = make(params)
    with kernels.use("fast"):  # the reference update allocates its temporaries
        optimizer.step()
        tracemalloc.start()
        optimizer.step()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < params[0].data.nbytes // 4


def test_parameters_without_gradient_are_left_alone():
    params = make_params()
    before = params[1].numpy().copy()
    optimizer = SGD(params, lr=0.1, momentum=0.9)
    params[0].grad = Tensor(np.ones(SHAPES[0], dtype=np.float32))
    optimizer.step()
    np.testing.assert_array_equal(params[1].numpy(), before)
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize(
    "make",
    [lambda p: SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01), lambda p: AdamW(p, lr=0.01, weight_decay=0.1)],
    ids=["SGD", "AdamW"],
)
def test_state_save_and_restore_continues_identically(make):
    grads = gradient_sequence(8)
    params = make_params()
    optimizer = make(params)
    run_ours(optimizer, params, grads[:4])
    saved_params = [p.numpy().copy() for p in params]
    saved_state = optimizer.state_dict()
    run_ours(optimizer, params, grads[4:])

    restored = [Tensor(array, requires_grad=True) for array in saved_params]
    resumed = make(restored)
    resumed.load_state_dict(saved_state)
    run_ours(resumed, restored, grads[4:])
    for original, again in zip(params, restored):
        np.testing.assert_array_equal(original.numpy(), again.numpy())


def test_state_dict_holds_numpy_copies_and_plain_values():
    params = make_params()
    optimizer = AdamW(params, lr=0.01)
    run_ours(optimizer, params, gradient_sequence(2))
    saved = optimizer.state_dict()
    assert saved["param_groups"][0]["params"] == [0, 1, 2, 3]
    assert saved["param_groups"][0]["lr"] == 0.01 and saved["param_groups"][0]["betas"] == (0.9, 0.999)
    entry = saved["state"][0]
    assert entry["step"] == 2 and isinstance(entry["exp_avg"], np.ndarray)
    assert entry["exp_avg"] is not optimizer.state[id(params[0])]["exp_avg"]


def test_load_state_dict_reports_every_problem_at_once():
    params = make_params()
    optimizer = AdamW(params)
    run_ours(optimizer, params, gradient_sequence(1))
    saved = optimizer.state_dict()
    saved["state"][0]["exp_avg"] = np.zeros((3, 4), dtype=np.float32)
    saved["state"][1]["momentum"] = np.zeros(3, dtype=np.float32)
    saved["state"][9] = {}
    with pytest.raises(TinygradTxError) as info:
        AdamW(make_params()).load_state_dict(saved)
    message = str(info.value)
    assert message.startswith("AdamW.load_state_dict:")
    assert "parameter 0: 'exp_avg' has shape (3, 4), the parameter has (4, 3)" in message
    assert "parameter 1: unknown state entry 'momentum'" in message
    assert "state for parameter 9, but there are only 4" in message


def test_load_state_dict_rejects_what_is_not_an_optimizer_state():
    with pytest.raises(
        TinygradTxError,
        match=r"SGD.load_state_dict: expected a dict with 'state' and 'param_groups' "
        r"\(from state_dict\(\)\), got keys \['weight'\]",
    ):
        SGD(make_params(), lr=0.1).load_state_dict({"weight": np.ones(3)})
    incomplete = {"state": {0: {"step": 1}}, "param_groups": [{"params": [0, 1, 2, 3]}]}
    with pytest.raises(TinygradTxError, match=r"parameter 0: state \['step'\] is incomplete"):
        AdamW(make_params()).load_state_dict(incomplete)


def test_load_state_dict_rejects_a_different_group_layout():
    saved = AdamW(make_params()).state_dict()
    with pytest.raises(TinygradTxError, match="1 parameter groups saved, this optimizer has 2"):
        AdamW(grouped(make_params(), {})).load_state_dict(saved)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: SGD(p, lr=0.0), "SGD: lr must be a positive number, got 0.0"),
        (lambda p: AdamW(p, lr=-1e-3), "AdamW: lr must be a positive number, got -0.001"),
        (lambda p: AdamW(p, betas=(0.9, 1.0)), r"AdamW: betas must be two numbers in \[0, 1\), got \(0.9, 1.0\)"),
        (lambda p: AdamW(p, betas=(0.9,)), "AdamW: betas must be two numbers"),
        (lambda p: AdamW(p, eps=-1.0), "AdamW: eps must be >= 0"),
        (lambda p: SGD(p, lr=0.1, momentum=-0.5), "SGD: momentum must be >= 0, got -0.5"),
        (lambda p: AdamW([{"params": p, "weight_decay": -0.1}]), "AdamW: weight_decay must be >= 0, got -0.1"),
        (lambda p: AdamW([{"params": p[:2], "lr": 0}, {"params": p[2:]}]), "AdamW: lr must be a positive number"),
        (lambda p: AdamW([]), "AdamW: got an empty parameter list"),
        (lambda p: AdamW(p[0]), "got a single Tensor"),
        (lambda p: AdamW([p[0], p[0]]), r"appears in more than one place"),
        (lambda p: SGD([Tensor([1.0])], lr=0.1), "requires_grad=True"),
    ],
)
def test_bad_settings_raise_clear_errors(make, message):
    with pytest.raises(TinygradTxError, match=message):
        make(make_params())


@pytest.mark.parametrize("ratio", [0.1, 0.99, 1.5, 1e3])
def test_clip_grad_norm_matches_torch(ratio):
    """max_norm = ratio * the true norm: clipped below 1, untouched above."""
    ours = make_params()
    theirs = torch_twins(ours)
    grads = gradient_sequence(1)[0]
    grads[1] = None  # a parameter without a gradient takes no part
    for mine, reference, grad in zip(ours, theirs, grads):
        mine.grad = None if grad is None else Tensor(grad)
        reference.grad = None if grad is None else torch.from_numpy(grad.copy())
    max_norm = ratio * math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads if g is not None))
    norm = clip_grad_norm_(ours, max_norm)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert isinstance(norm, float)
    assert_close(norm, expected.item(), rtol=1e-6, what="total norm")
    for mine, reference in zip(ours, theirs):
        if reference.grad is not None:
            assert_close(mine.grad.numpy(), reference.grad.numpy(), rtol=1e-6, what="clipped gradient")


def test_clip_grad_norm_edge_cases():
    param = Tensor(np.ones(4, dtype=np.float32), requires_grad=True)
    assert clip_grad_norm_([param], 1.0) == 0.0  # nothing to clip yet
    param.grad = Tensor(np.full(4, 2.0, dtype=np.float32))
    assert clip_grad_norm_(param, 1.0) == pytest.approx(4.0)
    assert_close(param.grad.numpy(), np.full(4, 0.5), rtol=1e-6, what="single tensor clipped")
    with pytest.raises(TinygradTxError, match="clip_grad_norm_: max_norm must be a positive number, got -1"):
        clip_grad_norm_([param], -1)


def nanogpt_get_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    """Copied from nanoGPT's train.py."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


@pytest.mark.parametrize("warmup, decay", [(100, 5000), (0, 50), (10, 11)])
def test_cosine_lr_is_nanogpts_get_lr(warmup, decay):
    for it in range(decay + 20):
        expected = nanogpt_get_lr(it, 6e-4, 6e-5, warmup, decay)
        assert cosine_lr(it, 6e-4, 6e-5, warmup, decay) == pytest.approx(expected, rel=1e-12)
    assert cosine_lr(0, 1.0, 0.1, 4, 10) == pytest.approx(1 / 5)  # warmup starts above zero
    assert cosine_lr(10, 1.0, 0.1, 10, 10) == 0.1  # no decay phase: straight to min_lr


def test_cosine_lr_rejects_bad_settings():
    with pytest.raises(TinygradTxError, match="lr_decay_iters >= warmup_iters"):
        cosine_lr(0, 1.0, 0.1, warmup_iters=10, lr_decay_iters=5)
    with pytest.raises(TinygradTxError, match="got it=-1"):
        cosine_lr(-1, 1.0, 0.1, warmup_iters=0, lr_decay_iters=5)
