"""bench/ smoke runs at a tiny size (no timing assertions) and the CuPy kernels against the NumPy path."""

import io
import multiprocessing
import os
import threading

import numpy as np
import pytest

import tinygrad_tx.nn.functional as F
from tinygrad_tx import Tensor, backend
from tinygrad_tx.optim import AdamW

from helpers import assert_close, requires_gpu

torch = pytest.importorskip("torch")

from bench import ops, train_step  # noqa: E402  (after the torch check)
from bench.torch_gpt import TorchGPT  # noqa: E402
from models.gpt import GPT, GPTConfig  # noqa: E402


def tiny_config(**overrides):
    config, _ = train_step.model_config("tiny")
    return GPTConfig(**{**config, **overrides})


def test_reference_gpt_matches_ours_from_the_same_state_dict():
    config = tiny_config(dropout=0.0)
    ours = GPT(config)
    theirs = TorchGPT(config).load_numpy_state(ours.state_dict())
    x, y = train_step.token_batch(0, 0, 3, config.block_size)
    logits, loss = ours(x, y)
    loss.backward()
    ref_logits, ref_loss = theirs(torch.from_numpy(x), torch.from_numpy(y))
    ref_loss.backward()
    assert_close(logits.numpy(), ref_logits.detach().numpy(), 1e-4, what="logits")
    assert_close(loss.item(), ref_loss.item(), 1e-5, what="loss")
    assert_close(
        ours.transformer.wte.weight.grad.numpy(),
        theirs.transformer.wte.weight.grad.numpy(),
        1e-3,
        what="tied embedding gradient",
    )


def test_flops_per_token_agrees_with_the_models_mfu_estimate():
    config = tiny_config()
    model = GPT(config)
    _, batch = train_step.model_config("tiny")
    per_token = train_step.flops_per_token(config.n_layer, config.n_embd, config.block_size, model.num_params())
    assert model.estimate_mfu(batch, 1.0, 1.0) == pytest.approx(per_token * config.block_size * batch)


def test_train_step_bench_runs_both_sides_and_prints_the_table(capsys):
    before = dict(os.environ)
    assert (
        train_step.main(["--config", "tiny", "--repeats", "2", "--steps", "1", "--warmup", "1", "--threads", "1"]) == 0
    )
    assert dict(os.environ) == before, "the workers' BLAS settings leaked into the parent's environment"
    table = capsys.readouterr().out
    for row in ("step time, median (ms)", "tokens/s", "MFU", "peak memory (MiB)", "ours / PyTorch"):
        assert row in table
    assert "unavailable" not in table


def test_report_marks_a_side_that_could_not_run():
    results = {name: train_step.SideResult(name, [0.01], [0.01, 0.02], 1e9, 10.0) for name in train_step.SIDES}
    results["pytorch"] = train_step.SideResult("pytorch", error="RuntimeError: no CUDA")
    table = train_step.report("tiny", "gpu", results, 1000, 1)
    assert "unavailable (RuntimeError: no CUDA)" in table and "ours / PyTorch" not in table


class _InProcessContext:
    """multiprocessing's context API with workers as threads, so a test's monkeypatch reaches them."""

    Pipe = staticmethod(multiprocessing.Pipe)

    class Process(threading.Thread):
        def __init__(self, target, args, daemon):
            super().__init__(target=target, args=args, daemon=daemon)


def test_run_reports_our_worker_failing_to_start_as_unavailable(monkeypatch, capsys):
    """Regression (issue 13): num_params came from our worker, so its failure crashed report() with a TypeError."""

    def fail(*args, **kwargs):
        raise RuntimeError("no device for this test")

    monkeypatch.setattr(train_step.OursSide, "__init__", fail)
    monkeypatch.setattr(train_step.TorchSide, "__init__", fail)
    monkeypatch.setattr(train_step.multiprocessing, "get_context", lambda method: _InProcessContext)
    assert (
        train_step.main(["--config", "tiny", "--repeats", "1", "--steps", "1", "--warmup", "0", "--threads", "1"]) == 0
    )
    table = capsys.readouterr().out
    assert "unavailable (RuntimeError: no device for this test)" in table
    assert "M parameters" in table and "ours / PyTorch" not in table


def test_ops_bench_times_every_op_and_impl():
    results = ops.run("tiny", repeats=1, threads=1)
    assert set(results) == {"attention", "layer_norm", "cross_entropy", "gelu", "embedding"}
    for op, by_impl in results.items():
        assert by_impl["fused"] > 0 and by_impl["pytorch"] > 0
        assert (by_impl["composed"] is None) == (op in ("gelu", "embedding"))
    assert "| attention |" in ops.report("tiny", results)


# ---------------------------------------------------------------- CuPy kernels vs the NumPy path
from tinygrad_tx.kernels import cuda as cuda_kernels  # noqa: E402  (imports no CuPy until a kernel runs)


def _cpu_forward_backward(op, arrays, grad):
    """Outputs and input gradients of ``op`` on the CPU (the NumPy path)."""
    leaves = [Tensor(a, requires_grad=True) for a in arrays]
    out = op(*leaves)
    out.backward(Tensor(grad))
    return out.numpy(), [leaf.grad.numpy() for leaf in leaves]


def _gpu(array):
    return backend.as_array(array, "gpu")


@requires_gpu
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_kernel_matches_numpy(approximate):
    rng = np.random.default_rng(0)
    x, grad = rng.standard_normal((2, 33, 70), dtype=np.float32) * 3, rng.standard_normal((2, 33, 70), dtype=np.float32)
    out, (grad_x,) = _cpu_forward_backward(lambda t: F.gelu(t, approximate=approximate), [x], grad)
    gpu_out, gate = cuda_kernels.gelu_with_gate(_gpu(x), approximate)
    assert_close(backend.to_numpy(gpu_out), out, 1e-5, what="gelu")
    assert_close(
        backend.to_numpy(cuda_kernels.gelu_backward_from_gate(_gpu(x), gate, _gpu(grad), approximate)),
        grad_x,
        1e-5,
        what="gelu backward",
    )


@requires_gpu
@pytest.mark.parametrize("cols", [7, 256, 1000])
def test_softmax_kernel_matches_numpy(cols):
    rng = np.random.default_rng(1)
    x, grad = (
        rng.standard_normal((5, 3, cols), dtype=np.float32) * 4,
        rng.standard_normal((5, 3, cols), dtype=np.float32),
    )
    x[0, 0] = -np.inf  # a fully masked row gives zeros
    out, (grad_x,) = _cpu_forward_backward(lambda t: F.softmax(t, axis=-1), [x], grad)
    y = cuda_kernels.softmax_last_axis(_gpu(x))
    assert_close(backend.to_numpy(y), out, 1e-5, what="softmax")
    assert_close(
        backend.to_numpy(cuda_kernels.softmax_backward_last_axis(y, _gpu(grad))), grad_x, 1e-5, what="softmax backward"
    )


@requires_gpu
def test_layer_norm_kernel_matches_numpy():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 9, 300), dtype=np.float32) + 5
    weight, bias = rng.standard_normal(300, dtype=np.float32), rng.standard_normal(300, dtype=np.float32)
    grad = rng.standard_normal(x.shape, dtype=np.float32)
    out, (grad_x, _, _) = _cpu_forward_backward(lambda *t: F.layer_norm(*t), [x, weight, bias], grad)
    y, xhat, rstd = cuda_kernels.layer_norm_rows(_gpu(x), _gpu(weight), _gpu(bias), 1e-5)
    assert_close(backend.to_numpy(y), out, 1e-5, what="layer_norm")
    grad_x_gpu = cuda_kernels.layer_norm_backward_rows(_gpu(grad), xhat, rstd, _gpu(weight))
    assert_close(backend.to_numpy(grad_x_gpu), grad_x, 1e-4, what="layer_norm backward")


@requires_gpu
def test_cross_entropy_kernel_matches_numpy():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((50, 65), dtype=np.float32) * 3
    targets = rng.integers(0, 65, 50)
    targets[::7] = -1
    counted = targets != -1
    losses = F.cross_entropy(Tensor(logits), targets, reduction="none").numpy()
    probs, row_loss = cuda_kernels.cross_entropy_rows(_gpu(logits), _gpu(np.where(counted, targets, 0)), _gpu(counted))
    assert_close(backend.to_numpy(row_loss), losses, 1e-5, what="row losses")
    assert_close(backend.to_numpy(probs), F.softmax(Tensor(logits)).numpy(), 1e-5, what="probabilities")


@requires_gpu
def test_adamw_kernel_matches_the_optimizer():
    rng = np.random.default_rng(4)
    start = rng.standard_normal((40, 30), dtype=np.float32)
    param = Tensor(start, requires_grad=True)
    optimizer = AdamW([param], lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    gpu_param, exp_avg, exp_avg_sq = _gpu(start), _gpu(np.zeros_like(start)), _gpu(np.zeros_like(start))
    for step in range(1, 4):
        grad = rng.standard_normal(start.shape, dtype=np.float32)
        param.grad = Tensor(grad)
        optimizer.step()
        cuda_kernels.adamw_update(gpu_param, _gpu(grad), exp_avg, exp_avg_sq, 1e-2, 0.9, 0.95, 1e-8, 0.1, step)
    assert_close(backend.to_numpy(gpu_param), param.numpy(), 1e-5, what="parameters after 3 AdamW steps")


def test_nanogpt_parity_gives_the_same_losses_on_the_same_draws():
    from bench import nanogpt_parity
    from train.config import make_config

    text = "".join(f"{word} said the {word}s.\n" for word in ("king", "queen", "fool", "knight", "ghost") * 200)
    config = make_config(
        overrides=dict(
            n_layer=2,
            n_head=2,
            n_embd=32,
            block_size=16,
            batch_size=4,
            max_iters=30,
            warmup_iters=5,
            lr_decay_iters=30,
            eval_interval=10,
            eval_iters=3,
            log_interval=1,
            peak_flops=1e9,
        )
    )
    out = io.StringIO()
    figures = nanogpt_parity.compare(config, text, seed=3, out=out)
    assert sorted(figures["evals"]) == [0, 10, 20, 30]
    for sides in figures["evals"].values():
        for split in ("train", "val"):
            assert sides["ours"][split] == pytest.approx(sides["nanogpt"][split], abs=1e-4)
    assert figures["evals"][30]["ours"]["train"] < figures["evals"][0]["ours"]["train"] - 0.3, "nothing was learned"
    assert figures["train_loss_max_difference"] < 1e-4
    assert figures["whole_val"]["ours"] == pytest.approx(figures["whole_val"]["nanogpt"], abs=1e-4)
    assert "whole val split" in out.getvalue()


def test_nanogpt_parity_refuses_dropout():
    from bench import nanogpt_parity
    from train.config import make_config

    with pytest.raises(ValueError, match="dropout must be 0"):
        nanogpt_parity.compare(make_config(overrides=dict(dropout=0.1)), "abc" * 100, seed=0)
