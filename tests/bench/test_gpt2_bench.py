"""bench/gpt2.py smoke runs at a tiny size (no timing assertions): both sides start, time the forward and
sampling, agree on the logits, and the table marks what a side cannot do."""

import os
import re

import pytest

pytest.importorskip("torch")

from bench import gpt2  # noqa: E402  (after the torch check)
from bench.gpt2_sides import NO_CACHE, hf_gpt2  # noqa: E402

from helpers.optional import requires_transformers  # noqa: E402


def test_gpt2_bench_runs_both_sides_and_prints_the_table(capsys):
    before = dict(os.environ)
    assert gpt2.main(["--config", "tiny", "--repeats", "1", "--warmup", "1", "--threads", "1"]) == 0
    assert dict(os.environ) == before, "the workers' BLAS settings leaked into the parent's environment"
    table = capsys.readouterr().out
    for row in ("forward B 1 T 32", "forward tokens/s", "sampling 8 tokens after 4", "peak memory (MiB)"):
        assert row in table
    assert "ours / PyTorch, forward" in table
    difference = re.search(r"logits differ by at most (\S+) ", table)
    assert difference and float(difference.group(1)) < 1e-5, table
    if gpt2.resolve_torch_model("auto") == "transformers":
        assert "unavailable" not in table and "ours / PyTorch, sampling" in table
    else:
        assert NO_CACHE in table


def test_report_marks_a_side_that_could_not_run_or_sample():
    results = {name: gpt2.SideResult(name, [0.01, 0.02], [0.1], 10.0) for name in gpt2.SIDES}
    results["pytorch"] = gpt2.SideResult("pytorch", [0.01], sample_error=NO_CACHE)
    table = gpt2.report("tiny", results, 1000, 1, "nanogpt")
    assert f"unavailable ({NO_CACHE})" in table
    assert "ours / PyTorch, forward" in table and "ours / PyTorch, sampling" not in table
    results["pytorch"] = gpt2.SideResult("pytorch", error="ImportError: no torch")
    table = gpt2.report("tiny", results, 1000, 1, "transformers")
    assert "unavailable (ImportError: no torch)" in table and "ours / PyTorch" not in table


@requires_transformers
def test_transformers_copy_of_our_weights_computes_our_logits():
    """The PyTorch side's GPT2LMHeadModel gets our state dict with the Conv1D weights transposed back."""
    import numpy as np
    import torch

    from models.gpt import GPT, GPTConfig
    from tinygrad_tx import Tensor

    config, _, _ = gpt2.model_config("tiny")
    ours = GPT(GPTConfig(**config))
    rng = np.random.default_rng(0)
    for param in ours.parameters():  # larger than the 0.02 init, so that every path moves the logits
        param.data = param.data + rng.standard_normal(param.shape).astype(np.float32) * 0.2
    theirs = hf_gpt2(config, ours.state_dict())
    idx = gpt2.tokens(0, 0, 2, config["block_size"], config["vocab_size"])
    targets = gpt2.tokens(0, 1, 2, config["block_size"], config["vocab_size"])
    logits, _ = ours(Tensor(idx), Tensor(targets))
    with torch.no_grad():
        expected = theirs(torch.from_numpy(idx)).logits.numpy()
    np.testing.assert_allclose(logits.numpy(), expected, atol=1e-4, rtol=1e-4)
