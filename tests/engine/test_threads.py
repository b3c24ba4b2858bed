"""Two threads training two models at once (issue 13): the same weights as one after the other, and
one thread's grad mode, anomaly mode or fused/composed default never reaches the other."""

import threading

import numpy as np

import tinygrad_tx as tx
import tinygrad_tx.nn.functional as F
from tinygrad_tx import no_grad

from helpers.gpt import tiny_gpt

STEPS = 6


def make_model(seed):
    return tiny_gpt(seed, n_embd=16, dropout=0.0)


def batches(seed):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 11, (STEPS, 4, 9))
    return [(t[:, :-1], t[:, 1:]) for t in tokens]


def train(model, data, impl, log):
    """A few AdamW steps; an evaluation under no_grad between steps, in this thread's own default impl."""
    previous = F.get_default_impl()
    F.set_default_impl(impl)
    try:
        optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-2)
        for x, y in data:
            _, loss = model(x, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            with no_grad():
                _, eval_loss = model(x, y)
                log.append(eval_loss.requires_grad)
            log.append(tx.is_grad_enabled())
    finally:
        F.set_default_impl(previous)
    return model


def weights(model):
    return {name: value.copy() for name, value in model.state_dict().items()}


def test_two_threads_train_like_one_after_the_other():
    runs = [(1, "fused"), (2, "composed")]
    sequential = [weights(train(make_model(seed), batches(seed), impl, [])) for seed, impl in runs]
    models = [make_model(seed) for seed, _ in runs]
    logs = [[], []]
    errors = []

    def run(index):
        try:
            seed, impl = runs[index]
            train(models[index], batches(seed), impl, logs[index])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for index, expected in enumerate(sequential):
        got = weights(models[index])
        for name, value in expected.items():
            np.testing.assert_array_equal(got[name], value, err_msg=f"model {index}: {name}")
    # each thread saw its own grad mode: off only inside its own no_grad block
    assert logs == [[False, True] * STEPS] * 2
    assert F.get_default_impl() == "fused" and tx.is_grad_enabled()


def test_no_grad_in_one_thread_while_the_other_builds_a_graph():
    inside, done = threading.Event(), threading.Event()

    def hold_no_grad():
        with no_grad():
            inside.set()
            done.wait(10)

    thread = threading.Thread(target=hold_no_grad)
    thread.start()
    inside.wait(10)
    try:
        x = tx.Tensor(np.ones(3), requires_grad=True)
        (x * x).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), [2, 2, 2])
    finally:
        done.set()
        thread.join()
