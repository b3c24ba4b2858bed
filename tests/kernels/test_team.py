"""kernels/runtime/team.py and the op modules' team blocks (kernels/cpu/<op>.py):
the engine's spinning threads and the kernels they run.

The runtime's promises: every block of a job runs exactly once, jobs can follow each other at any
pace (helpers spinning or asleep), a paused team or a second calling thread still completes its
work on the caller, and bad block counts are refused. The kernels' promise: each team launcher
computes what its reference computes, with the thresholds lowered so that small test arrays are
cut into many blocks. Last, a GPT training step gives the same loss and gradients with the team as
without it.
"""

import json
import os
import threading
import time

import numba
import numpy as np
import pytest
from numba import carray, types

from tinygrad_tx import TinygradTxError
from tinygrad_tx.kernels.cpu import layer_norm, linear
from tinygrad_tx.kernels.runtime import jobs, openblas, row_blocks, team
from tinygrad_tx.kernels.runtime.native import atomic_add, int64_pointer
from tinygrad_tx.kernels.runtime.slots import Slots

from helpers.kernel_cases import FAST, REFERENCE
from helpers.kernel_checks import check_adamw, check_attention, check_gelu, check_layer_norm


@numba.cfunc(types.void(types.int64, types.int64), nogil=True, cache=True)
def count_block(arguments, block):
    """counts[block] += 1 (atomically: a block run twice, or by two threads at once, shows)."""
    fields = carray(int64_pointer(arguments), (2,))
    counts = carray(int64_pointer(fields[0]), (fields[1],))
    atomic_add(counts, block, 1)


@pytest.fixture
def on_team(monkeypatch):
    """The kernels route through a team of (at least) two threads; the previous state comes back after."""
    if openblas.sgemm_address() is None:
        pytest.skip("NumPy's BLAS is not the bundled ILP64 OpenBLAS: the team has no sgemm to split GEMMs with")
    previous = row_blocks.team()
    current = previous or team.Team(helpers=max(1, row_blocks.WORKERS - 1))
    row_blocks.use_team(current)
    current.pause(False)
    yield current
    current.pause(False)
    row_blocks.use_team(previous)


@pytest.fixture
def many_blocks(monkeypatch, on_team):
    """Every launcher cuts even a tiny array into as many blocks as it can."""
    monkeypatch.setattr(jobs, "MIN_ELEMENTS", 1)
    monkeypatch.setattr(linear, "MIN_GEMM_PRODUCTS", 1)
    monkeypatch.setattr(jobs, "BLOCKS_PER_WORKER", 8)
    monkeypatch.setattr(linear, "GEMM_BANDS_PER_WORKER", 3)
    return on_team


def run_counted(current, blocks, jobs=1):
    counts = np.zeros(blocks, np.int64)
    arguments = np.array([counts.ctypes.data, blocks], np.int64)
    for _ in range(jobs):
        current.run(count_block.address, arguments, blocks)
    return counts


def test_every_block_runs_once_per_job(on_team):
    assert np.array_equal(run_counted(on_team, 1000, jobs=50), np.full(1000, 50))
    assert np.array_equal(run_counted(on_team, 1), [1])


def test_jobs_after_the_helpers_fell_asleep(on_team, monkeypatch):
    on_team.start_helpers()
    monkeypatch.setattr(on_team, "_spin_limit", 1)  # a helper sleeps right after each job
    for pause_seconds in (0.0, 0.01, 0.0, 0.02):
        time.sleep(pause_seconds)
        assert np.array_equal(run_counted(on_team, 64, jobs=3), np.full(64, 3))


def test_a_paused_team_runs_every_block_on_the_caller(on_team):
    on_team.start_helpers()
    on_team.pause(True)
    deadline = time.monotonic() + 5
    while not all(on_team.state[team._SLEEPING + 8 * i] for i in range(on_team.helpers)):
        assert time.monotonic() < deadline, "paused helpers did not go to sleep"
        time.sleep(0.001)
    assert np.array_equal(run_counted(on_team, 200, jobs=5), np.full(200, 5))
    on_team.pause(False)
    assert np.array_equal(run_counted(on_team, 200, jobs=5), np.full(200, 5))


def test_a_second_calling_thread_runs_its_job_alone(on_team):
    """One job at a time: a thread that finds the team busy does all its blocks itself."""
    results = []
    with on_team._busy:  # as if another thread's job were running
        worker = threading.Thread(target=lambda: results.append(run_counted(on_team, 300)))
        worker.start()
        worker.join(timeout=30)
    assert results and np.array_equal(results[0], np.ones(300, np.int64))


@pytest.mark.parametrize("cut", ["many_blocks", "on_team"])
def test_linear_kernels_equal_the_reference_on_the_team(cut, request):
    request.getfixturevalue(cut)
    rng = np.random.default_rng(3)
    rows, weight = rng.standard_normal((96, 40), dtype=np.float32), rng.standard_normal((24, 40), dtype=np.float32)
    bias, grad = rng.standard_normal(24, dtype=np.float32), rng.standard_normal((96, 24), dtype=np.float32)
    out = FAST["linear_forward"](rows, weight, bias)
    assert np.abs(out - REFERENCE["linear_forward"](rows, weight, bias)).max() <= 1e-5 * np.abs(out).max()
    fast = FAST["linear_backward"](grad, rows, weight, (True, True, True))
    for actual, expected in zip(fast, REFERENCE["linear_backward"](grad, rows, weight, (True, True, True))):
        assert np.abs(actual - expected).max() <= 1e-5 * np.abs(expected).max()
    assert FAST["linear_backward"](grad, rows, weight, (False, True, False))[::2] == (None, None)


@pytest.mark.parametrize("blocks", [0, -1, team.MAX_BLOCKS + 1])
def test_block_counts_out_of_range_are_refused(on_team, blocks):
    with pytest.raises(ValueError, match="blocks"):
        on_team.run(count_block.address, np.zeros(2, np.int64), blocks)


def _operands(rng, m, k, n, layout):
    a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
    if layout == "transposed":  # column-major storage: what grad_rows.T and weight.T look like
        return np.asfortranarray(a), np.asfortranarray(b)
    if layout == "row strided":  # a band of a wider matrix: rows further apart than their length
        return np.pad(a, ((0, 0), (0, 3)))[:, :k], np.pad(b, ((0, 0), (0, 5)))[:, :n]
    if layout == "element strided":  # neither rows nor columns contiguous: NumPy's matmul takes it
        return np.repeat(a, 2, axis=1)[:, ::2], b
    if layout == "float64":
        return a.astype(np.float64), b.astype(np.float64)
    return a, b


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "row strided", "element strided", "float64"])
@pytest.mark.parametrize("m, k, n", [(96, 40, 72), (1, 17, 9), (33, 1, 5), (5, 64, 300), (0, 4, 3), (4, 0, 3)])
def test_matmuls_equal_numpy(many_blocks, layout, m, k, n):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a, b = _operands(rng, m, k, n, layout)
    c, d = _operands(rng, n, m, k, layout)
    first, second = linear.matmuls((a, b), (c, d))
    alone = linear.matmul(a, b)  # one product: cut into bands of rows (or of columns when wider)
    for result, (x, y) in ((first, (a, b)), (second, (c, d)), (alone, (a, b))):
        expected = np.matmul(x.astype(np.float64), y.astype(np.float64))
        assert result.shape == expected.shape and result.dtype == np.result_type(x, y)
        bound = 1e-5 * max(1.0, float(np.abs(x).max(initial=0) * np.abs(y).max(initial=0) * x.shape[1]))
        assert np.abs(result - expected).max(initial=0) <= bound


def test_fast_kernels_equal_the_reference_on_the_team(many_blocks):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 40, 96)).astype(np.float32)
    grad = rng.standard_normal(x.shape).astype(np.float32)
    weight, bias = rng.standard_normal((2, 96)).astype(np.float32)
    for w, b in ((weight, bias), (weight, None), (None, None)):
        check_layer_norm(FAST, x, w, b, grad)
    check_gelu(FAST, x, grad, "none")

    def make_state():
        return tuple(np.full((64, 33), value, np.float32) for value in (0.5, 0.0, 0.0))

    check_adamw(FAST, make_state, [rng.standard_normal((64, 33)).astype(np.float32) for _ in range(3)], 0.1)
    projection = rng.standard_normal((4, 16, 3 * 24)).astype(np.float32)  # q, k, v as views of one (B, T, 3C)
    q, k, v = (projection[..., i * 24 : (i + 1) * 24].reshape(4, 16, 3, 8).transpose(0, 2, 1, 3) for i in range(3))
    for allowed in (np.tri(16, 16, dtype=bool), None, rng.random((16, 16)) < 0.6):
        for dropout_p in (0.0, 0.3):
            check_attention(FAST, q, k, v, allowed, dropout_p, rng.standard_normal(q.shape).astype(np.float32), 3)


@pytest.mark.parametrize("cut", ["many_blocks", "on_team"])  # on_team's thresholds keep these arrays whole
def test_a_training_step_is_the_same_with_and_without_the_team(cut, request):
    from models.gpt import GPT, GPTConfig

    the_team = request.getfixturevalue(cut)
    config = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=65, dropout=0.0, bias=True)
    rng = np.random.default_rng(5)
    idx, targets = rng.integers(0, 65, (4, 16)), rng.integers(0, 65, (4, 16))
    results = []
    for current in (the_team, None):
        row_blocks.use_team(current)
        model = GPT(config)
        model.load_state_dict(GPT(config).state_dict() if not results else results[0][2])
        _, loss = model(idx, targets)
        loss.backward()
        state = {name: value.copy() for name, value in model.state_dict().items()}
        results.append((float(loss.item()), {n: p.grad.numpy().copy() for n, p in model.named_parameters()}, state))
    (loss_team, grads_team, _), (loss_plain, grads_plain, _) = results
    assert abs(loss_team - loss_plain) <= 1e-5 * abs(loss_plain)
    for name, grad in grads_plain.items():
        scale = max(1e-3, float(np.abs(grad).max()))
        assert np.abs(grads_team[name] - grad).max() <= 1e-4 * scale, name


def test_a_busy_machine_pauses_the_team(on_team):
    """Another program using a core (simulated, as in test_row_blocks) pauses the team; quiet resumes it."""
    if not row_blocks.follow_free_cores():
        pytest.skip("no /proc/stat, no settable OpenBLAS thread count, or one core: nothing to follow")
    watch = row_blocks._watch
    watch["ceiling"] = max(watch["ceiling"], 2)
    watch.update(time=watch["time"] - 1.0, busy=watch["busy"] - 1.0, last_call=time.monotonic())
    row_blocks.fit_blas_threads()
    assert on_team.state[team._PAUSED] == (row_blocks.WORKERS - 1 < 2)
    watch.update(time=watch["time"] - 1.0, last_call=time.monotonic())
    row_blocks.fit_blas_threads()
    assert on_team.state[team._PAUSED] == 0


def test_attention_backward_takes_a_strided_probability_array(on_team):
    """P given as a transposed view of its transpose (same values, not C-contiguous): the per-head
    loops read P as contiguous memory, so such a P must take the NumPy path and still be right."""
    rng = np.random.default_rng(9)
    q, k, v, grad = (rng.standard_normal((4, 2, 16, 8)).astype(np.float32) for _ in range(4))
    _, probs, _ = REFERENCE["attention_forward"](q, k, v, np.tri(16, 16, dtype=bool), 0.0, 0.35)
    strided = np.swapaxes(np.ascontiguousarray(np.swapaxes(probs, -1, -2)), -1, -2)
    fast = FAST["attention_backward"](q, k, v, strided, strided, grad, 0.35)
    for actual, expected in zip(fast, REFERENCE["attention_backward"](q, k, v, probs, probs, grad, 0.35)):
        assert np.abs(actual - expected).max() <= 1e-5 * max(1.0, float(np.abs(expected).max()))


# ---------------------------------------------------------------- argument slots, declared once by name
def test_slots_give_names_constant_indices_and_pack_by_name():
    slots = Slots("demo", "x", ("view", 3), "rows", floats=("eps",))
    assert (slots.at.x, slots.at.view, slots.at.rows, slots.at.eps, slots.at.size) == (0, 1, 4, 5, 6)
    packed = slots.pack(rows=7, eps=0.5, x=11, view=(1, 2, 3))
    assert packed.dtype == np.int64 and list(packed[:5]) == [11, 1, 2, 3, 7]
    assert packed.view(np.float64)[slots.at.eps] == 0.5


def test_a_missing_slot_raises_where_positional_packing_would_shift_every_slot_after_it():
    arguments = dict(x=1, weight=0, bias=0, xhat=2, rstd=3, out=4, rows=8, features=16, blocks=2, eps=1e-5)
    assert layer_norm.FORWARD.pack(**arguments).size == layer_norm.FORWARD.size
    del arguments["bias"]
    with pytest.raises(TinygradTxError, match=r"^layer_norm slots: missing bias \(slots: x, weight, bias, "):
        layer_norm.FORWARD.pack(**arguments)


def test_an_unknown_slot_raises():
    arguments = dict(x=1, weight=0, bias=0, xhat=2, rstd=3, out=4, rows=8, features=16, blocks=2, eps=1e-5)
    with pytest.raises(TinygradTxError, match=r"^layer_norm slots: unknown mask "):
        layer_norm.FORWARD.pack(**arguments, mask=0)
    with pytest.raises(TinygradTxError, match=r"takes 3 values, got 2"):
        Slots("demo", ("view", 3)).pack(view=(1, 2))


def _one_training_step():
    """The loss of one AdamW step's forward on a tiny GPT (seeded), and the loss after the step."""
    from helpers.gpt import tiny_gpt

    model = tiny_gpt(seed=3)
    optimizer = model.configure_optimizers(0.1, 1e-2)
    rng = np.random.default_rng(3)
    idx, targets = rng.integers(0, 11, (4, 8)), rng.integers(0, 11, (4, 8))
    losses = []
    for _ in range(2):
        _, loss = model(idx, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.item()))
    return losses


def _in_forked_child(the_team):
    """What a child forked mid-job finds: the job lock, then the helpers after a job, then a training step."""
    report = {"busy_at_start": the_team._busy.locked(), "started_at_start": the_team._started}
    report["counts_ok"] = bool(np.array_equal(run_counted(the_team, 500, jobs=3), np.full(500, 3)))
    helpers = [t for t in threading.enumerate() if t.name.startswith("tinygrad_tx-team-") and t.is_alive()]
    report["helpers"] = len(helpers)
    report["losses"] = _one_training_step()
    return report


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python 3.12+ warns about fork() with threads
def test_a_child_forked_mid_job_gets_a_fresh_team_and_trains(many_blocks):
    run_counted(many_blocks, 64)  # every compiled function compiled before the fork: the child only runs them
    expected = _one_training_step()
    read, write = os.pipe()
    with many_blocks._busy:  # the parent is in the middle of a job when it forks
        pid = os.fork()
        if pid == 0:  # the child: report, then leave without running pytest's teardown
            code = 1
            try:
                os.close(read)
                os.write(write, json.dumps(_in_forked_child(many_blocks)).encode())
                code = 0
            finally:
                os._exit(code)
    os.close(write)
    deadline = time.monotonic() + 120
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.01)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    assert text, "the forked child failed before reporting"
    report = json.loads(text)
    assert not report["busy_at_start"] and not report["started_at_start"]
    assert report["counts_ok"]
    assert report["helpers"] == many_blocks.helpers  # its own helper threads, started by its first job
    assert np.allclose(report["losses"], expected, rtol=1e-5)
