"""The checker itself: it must pass right backwards and fail wrong ones, including sum-blind ones."""

import numpy as np
import pytest

import tinygrad_tx as tx
from tinygrad_tx import Function, Tensor, gradcheck, gradcheck_directional


class SoftmaxWrongBackward(Function):
    """Softmax whose backward forgets the Jacobian's off-diagonal term: the summed output is constant,
    so a check through sum() cannot see the bug; a random upstream gradient does."""

    @staticmethod
    def forward(ctx, x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        y = e / e.sum(axis=-1, keepdims=True)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y * (1 - y)


def random_input(shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True, dtype="float64")


def test_sum_blind_bug_is_caught():
    x = random_input((2, 5))
    SoftmaxWrongBackward.apply(x).sum().backward()
    assert np.abs(x.grad.numpy()).max() > 1e-3  # a plain-sum check would compare against zero
    with pytest.raises(tx.GradcheckError, match="input 0"):
        gradcheck(lambda t: SoftmaxWrongBackward.apply(t), [x])
    with pytest.raises(tx.GradcheckError, match="random direction"):
        gradcheck_directional(lambda t: SoftmaxWrongBackward.apply(t), [x])


def test_every_input_is_checked_not_only_the_first():
    class WrongSecond(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, grad):
            a, b = ctx.saved_tensors
            return grad * b, grad * b

    with pytest.raises(tx.GradcheckError, match=r"^gradcheck: input 1 "):
        gradcheck(lambda a, b: WrongSecond.apply(a, b), [random_input((3,)), random_input((3,), 1)])


def test_constant_inputs_are_skipped_and_float32_is_promoted():
    a = Tensor(np.random.default_rng(0).standard_normal(4), requires_grad=True)  # float32 in
    b = Tensor(np.random.default_rng(1).standard_normal(4))
    assert gradcheck(lambda x, y: (x * y).tanh(), [a, b])
    assert gradcheck_directional(lambda x, y: (x * y).tanh(), [a, b])


def test_needs_an_input_that_requires_grad():
    with pytest.raises(tx.TinygradTxError, match="no input requires grad"):
        gradcheck(lambda x: x * 2, [Tensor(np.ones(2))])
