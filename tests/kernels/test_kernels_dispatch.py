"""The kernel switch: tinygrad_tx.kernels.use / current / pick, the TINYGRAD_TX_KERNELS default, and a
whole GPT (loss and every gradient) on the reference kernels against the fast ones."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from models.gpt import GPT, GPTConfig
from tinygrad_tx import TinygradTxError, backend, kernels
from tinygrad_tx.kernels import CHOICES, cpu, cuda, reference
from tinygrad_tx.kernels.dispatch import KERNEL_NAMES

from helpers import REPO
from helpers.kernel_cases import relative_error, tolerance

# These tests take "fast" for the default; a run under TINYGRAD_TX_KERNELS=reference skips them.
default_is_fast = pytest.mark.skipif(
    os.environ.get("TINYGRAD_TX_KERNELS", "fast") != "fast",
    reason="the switch tests assume the default kernels, 'fast'",
)


def test_fast_picks_the_cpu_code_and_reference_the_formulas_on_numpy():
    probe = np.zeros(3)
    with kernels.use("fast"):
        for name in KERNEL_NAMES:
            fast = kernels.pick(getattr(reference, name), probe)
            assert fast.__module__.startswith("tinygrad_tx.kernels.cpu.") and fast.__name__ == name, name
            assert any(getattr(op, name, None) is fast for op in cpu.OPS), name
    with kernels.use("reference"):
        for name in KERNEL_NAMES:
            assert kernels.pick(getattr(reference, name), probe) is getattr(reference, name), name


@default_is_fast
def test_use_as_a_call_and_as_a_context_manager():
    assert kernels.current() == "fast"
    with kernels.use("reference") as switch:
        assert isinstance(switch, kernels.use) and kernels.current() == "reference"
        with kernels.use("fast"):
            assert kernels.current() == "fast"
        assert kernels.current() == "reference"
        kernels.use("fast")  # a plain call inside a block lasts until the block ends
        assert kernels.current() == "fast"
    assert kernels.current() == "fast"
    with pytest.raises(RuntimeError), kernels.use("reference"):
        raise RuntimeError("the previous choice comes back on an exception too")
    assert kernels.current() == "fast"


@default_is_fast
def test_a_plain_call_sets_the_thread_until_changed():
    seen = []

    def worker():
        kernels.use("reference")
        seen.append(kernels.current())
        seen.append(kernels.pick(reference.softmax_forward, np.zeros(1)) is reference.softmax_forward)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == ["reference", True]
    assert kernels.current() == "fast"  # another thread's choice is not this one's


@default_is_fast
def test_each_thread_starts_at_the_default():
    seen = []
    with kernels.use("reference"):
        thread = threading.Thread(target=lambda: seen.append(kernels.current()))
        thread.start()
        thread.join()
    assert seen == ["fast"]


@default_is_fast
def test_unknown_kernels_get_one_line():
    with pytest.raises(TinygradTxError, match=r"^kernels.use: unknown kernels 'cuda': use 'reference' or 'fast'$"):
        kernels.use("cuda")
    assert kernels.current() == "fast"


def _run(code, choice):
    environment = {**os.environ, "PYTHONPATH": REPO, "TINYGRAD_TX_KERNELS": choice}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=REPO)


def test_the_environment_variable_sets_the_default():
    result = _run(
        "import tinygrad_tx.kernels as k, numpy as np; print(k.current(), "
        "k.pick(k.reference.gelu_forward, np.zeros(1)).__module__)",
        "reference",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["reference", "tinygrad_tx.kernels.reference"]
    # a bad value: tests/engine/test_errors.py::test_e31_bad_kernels_environment_variable


# ---------------------------------------------------------------- a whole GPT on either kernels
CONFIGS = [
    GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16, dropout=0.1),
    GPTConfig(block_size=8, vocab_size=300, n_layer=1, n_head=4, n_embd=32, bias=False, gelu_approximate="tanh"),
]


def _loss_and_gradients(config, choice):
    """The loss and every parameter's gradient, computed on ``choice``'s kernels.

    (No optimizer step: Adam's first step moves each weight by lr * sign(g), which turns a 1e-9 gradient's
    rounding into a full step; the AdamW kernels are compared on equal gradients in test_kernels_elementwise.py.)
    """
    backend.manual_seed(0)
    model = GPT(config)
    rng = np.random.default_rng(1)
    idx, targets = rng.integers(0, config.vocab_size, (3, 8)), rng.integers(0, config.vocab_size, (3, 8))
    targets[0, :3] = -1
    with kernels.use(choice):
        backend.manual_seed(2)  # the same dropout masks on both sides
        _, loss = model(idx, targets)
        loss.backward()
    return loss.item(), {name: param.grad.numpy() for name, param in model.named_parameters()}


@pytest.mark.parametrize("config", CONFIGS, ids=["dropout", "tanh-large-vocab"])
def test_a_gpt_trains_the_same_on_reference_and_fast_kernels(config):
    """float32 end to end, within the per-kernel bound (observed: loss equal, gradients within 3e-7)."""
    loss, grads = _loss_and_gradients(config, "reference")
    fast_loss, fast_grads = _loss_and_gradients(config, "fast")
    bound = tolerance(np.float32)
    assert abs(loss - fast_loss) <= bound * abs(loss)
    assert grads.keys() == fast_grads.keys() and len(grads) >= 9
    for name in grads:
        assert relative_error(fast_grads[name], grads[name]) <= bound, f"gradient of {name}"


# ---------------------------------------------------------------- the GPU routing, exercised without a GPU
def test_fast_on_a_gpu_array_picks_cuda_where_it_has_the_kernel_else_the_reference(monkeypatch):
    monkeypatch.setattr(backend, "is_gpu_array", lambda array: True)  # as if ``probe`` were a CuPy array
    probe = np.zeros(1)
    with kernels.use("fast"):
        for name in KERNEL_NAMES:
            on_cuda = next((getattr(op, name) for op in cuda.OPS if hasattr(op, name)), getattr(reference, name))
            assert kernels.pick(getattr(reference, name), probe) is on_cuda, name
    with kernels.use("reference"):
        assert all(kernels.pick(getattr(reference, name), probe) is getattr(reference, name) for name in KERNEL_NAMES)


def test_cuda_routing_calls_a_cuda_kernel_only_where_it_applies(monkeypatch):
    """The CUDA launchers replaced by recording stand-ins (the reference on NumPy; "float32 arrays" = CuPy
    arrays the row kernels take): each cuda/<op>.py routing function must route, and reshape, as documented."""
    calls = []

    def recording(name, result):
        return lambda *args: calls.append(name) or result(*args)

    for op in (cuda.softmax, cuda.layer_norm):
        monkeypatch.setattr(
            op, "fits_row_kernel", lambda *arrays: all(a is None or a.dtype == np.float32 for a in arrays)
        )
    monkeypatch.setattr(
        cuda.softmax, "softmax_last_axis", recording("softmax", lambda x: reference.softmax_forward(x, -1))
    )
    monkeypatch.setattr(
        cuda.layer_norm,
        "layer_norm_backward_rows",
        recording("layer_norm_backward", lambda g, xhat, rstd, w: reference.layer_norm_backward(g, xhat, rstd, w)[0]),
    )
    monkeypatch.setattr(
        cuda.gelu,
        "gelu_with_gate",
        recording("gelu", lambda x, approximate: (reference.gelu_forward(x, approximate), None)),
    )
    rng = np.random.default_rng(0)
    x32, x64 = rng.standard_normal((2, 3, 5)).astype(np.float32), rng.standard_normal((2, 3, 5))
    np.testing.assert_array_equal(cuda.softmax.softmax_forward(x32, 2), reference.softmax_forward(x32, 2))
    cuda.softmax.softmax_forward(x32, 1)  # not the last axis: the reference
    cuda.softmax.softmax_forward(x64, 2)  # not float32: the reference
    assert calls == ["softmax"]
    weight = np.ones(5, np.float32)
    _, xhat, rstd = reference.layer_norm_forward(x32, weight, None, 1e-5)
    for actual, expected in zip(
        cuda.layer_norm.layer_norm_backward(x32, xhat, rstd, weight),
        reference.layer_norm_backward(x32, xhat, rstd, weight),
    ):
        np.testing.assert_array_equal(actual, expected)  # the column sums of the parameter gradients included
    cuda.gelu.gelu_forward(x64, "tanh")  # GELU: any float dtype
    assert calls == ["softmax", "layer_norm_backward", "gelu"]


# ---------------------------------------------------------------- kernels.override: a learner's kernel for a whole GPT
def _tiny_gpt_loss():
    backend.manual_seed(0)
    model = GPT(CONFIGS[0])
    rng = np.random.default_rng(1)
    idx, targets = rng.integers(0, 11, (2, 8)), rng.integers(0, 11, (2, 8))
    backend.manual_seed(2)
    _, loss = model(idx, targets)
    loss.backward()
    return loss.item(), {name: p.grad.numpy() for name, p in model.named_parameters()}


@pytest.mark.parametrize("choice", CHOICES)
def test_an_override_runs_for_every_layer_norm_of_a_gpt_and_ends_with_the_block(choice):
    calls = []

    def recording(grad, xhat, rstd, weight):
        calls.append(xhat.shape)
        return reference.layer_norm_backward(grad, xhat, rstd, weight)

    with kernels.use(choice):
        loss, grads = _tiny_gpt_loss()
        with kernels.override(layer_norm_backward=recording):
            assert kernels.current() == choice
            assert kernels.pick(reference.layer_norm_backward, np.zeros(1)) is recording
            overridden_loss, overridden_grads = _tiny_gpt_loss()
        assert len(calls) == 2 * CONFIGS[0].n_layer + 1  # two per block and the final one
        assert kernels.pick(reference.layer_norm_backward, np.zeros(1)) is not recording
        _tiny_gpt_loss()
    assert len(calls) == 2 * CONFIGS[0].n_layer + 1  # nothing after the block
    assert overridden_loss == loss
    for name in grads:
        assert relative_error(overridden_grads[name], grads[name]) <= tolerance(np.float32), name


def test_an_override_routes_gpu_arrays_too(monkeypatch):
    monkeypatch.setattr(backend, "is_gpu_array", lambda array: True)
    mine = lambda *args: None  # noqa: E731
    with kernels.override(softmax_forward=mine):
        assert kernels.pick(reference.softmax_forward, np.zeros(1)) is mine


def test_a_wrong_layer_norm_backward_makes_gradcheck_fail():
    import tinygrad_tx.nn.functional as F
    from tinygrad_tx import GradcheckError, Tensor, gradcheck

    def forgot_the_mean(grad, xhat, rstd, weight):
        grad_x, grad_weight, grad_bias = reference.layer_norm_backward(grad, xhat, rstd, weight)
        d = grad if weight is None else grad * weight
        return grad_x + rstd * d.mean(axis=-1, keepdims=True), grad_weight, grad_bias

    rng = np.random.default_rng(0)
    x, w, b = (Tensor(rng.standard_normal(shape), requires_grad=True) for shape in [(3, 5), (5,), (5,)])
    with kernels.override(layer_norm_backward=forgot_the_mean), pytest.raises(GradcheckError):
        gradcheck(F.layer_norm, (x, w, b))
    assert gradcheck(F.layer_norm, (x, w, b))


def test_overrides_nest_and_stay_in_their_thread():
    first, second = (lambda *args: None), (lambda *args: None)
    seen = []
    with kernels.override(softmax_forward=first, gelu_forward=first):
        with kernels.override(gelu_forward=second):
            assert kernels.pick(reference.softmax_forward, np.zeros(1)) is first  # the outer one still holds
            assert kernels.pick(reference.gelu_forward, np.zeros(1)) is second  # the inner one wins
            thread = threading.Thread(target=lambda: seen.append(kernels.pick(reference.gelu_forward, np.zeros(1))))
            thread.start()
            thread.join()
        assert kernels.pick(reference.gelu_forward, np.zeros(1)) is first
    assert seen and seen[0] is not second and seen[0] is not first
    assert kernels.pick(reference.softmax_forward, np.zeros(1)) is not first


def test_an_unknown_kernel_name_gets_one_line_listing_the_valid_ones():
    with (
        pytest.raises(
            TinygradTxError,
            match=r"^kernels.override: unknown kernel 'layernorm_backward': valid kernels are .*layer_norm_backward",
        ) as info,
        kernels.override(layernorm_backward=lambda *args: None),
    ):
        pass
    assert "\n" not in str(info.value)
