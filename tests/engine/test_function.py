"""The custom-Function API: user-written forward/backward pairs, checked with gradcheck."""

import numpy as np
import pytest

from tinygrad_tx import Function, Tensor, gradcheck


class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 3 * x * x


class ScaleBy(Function):
    """A non-Tensor argument (the factor) gets None as its gradient."""

    @staticmethod
    def forward(ctx, x, factor, *, shift=0.0):
        ctx.factor = factor
        return x * factor + shift

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * ctx.factor, None


class MinMax(Function):
    """Two outputs: the backward gets one gradient per output (zeros for an unused one)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.min(axis=-1), x.max(axis=-1)

    @staticmethod
    def backward(ctx, grad_min, grad_max):
        (x,) = ctx.saved_tensors
        low = (x == x.min(axis=-1, keepdims=True)) * grad_min[..., None]
        high = (x == x.max(axis=-1, keepdims=True)) * grad_max[..., None]
        return low + high


def test_user_function_passes_gradcheck():
    x = Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    assert gradcheck(lambda t: Cube.apply(t), [x])


def test_wrong_backward_is_rejected_with_details():
    class WrongCube(Cube):
        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * 2 * x * x

    x = Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    with pytest.raises(
        AssertionError,
        match=r"input 0 \(shape \(3, 4\)\) gradient mismatch at index \(\d, \d\): "
        r"analytic .*, numeric .*, relative error",
    ):
        gradcheck(lambda t: WrongCube.apply(t), [x])


def test_non_tensor_arguments_and_keywords():
    x = Tensor(np.ones(3), requires_grad=True)
    y = ScaleBy.apply(x, 2.5, shift=1.0)
    np.testing.assert_allclose(y.numpy(), 3.5)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2.5)


def test_needs_input_grad_reports_each_argument():
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, a, b):
            seen["needs"] = ctx.needs_input_grad
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return grad, grad

    Probe.apply(Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2)))
    assert seen["needs"] == (True, False)


def test_multi_output_function():
    x = Tensor(np.array([[1.0, 5.0, 3.0], [4.0, 2.0, 0.0]]), requires_grad=True)
    low, high = MinMax.apply(x)
    high.sum().backward()  # the min output is unused: its gradient arrives as zeros
    np.testing.assert_allclose(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])
    assert gradcheck(
        lambda t: MinMax.apply(t), [Tensor(np.random.default_rng(1).standard_normal((2, 5)), requires_grad=True)]
    )


def test_wrong_number_of_gradients_is_caught():
    class TooFew(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, grad):
            return grad

    with pytest.raises(Exception, match="TooFew.backward returned 1 gradients for 2 inputs"):
        TooFew.apply(Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2))).sum().backward()
