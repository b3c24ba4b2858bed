"""create_graph, tinygrad_tx.grad, once_differentiable, gradgradcheck and tinygrad_tx.autograd (issue 26).

Per-op second derivatives against PyTorch are in tests/ops/test_fuzz_second_order.py; the whole GPT's
Hessian-vector product in tests/models/test_gpt_hvp.py.
"""

import numpy as np
import pytest
import torch

import tinygrad_tx as tx
from tinygrad_tx import Function, GradcheckError, GraphError, Tensor, autograd


def leaf(values):
    return Tensor(np.asarray(values, dtype=np.float64), requires_grad=True, dtype="float64")


def test_backward_with_create_graph_gives_a_grad_that_can_be_differentiated():
    x = leaf([1.0, 2.0])
    (x**3).sum().backward(create_graph=True)  # grad = 3x^2, itself a graph
    assert x.grad.requires_grad
    first = x.grad
    x.grad = None
    first.sum().backward()  # d(sum 3x^2)/dx = 6x
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 12.0])


def test_grad_returns_a_tuple_and_never_writes_dot_grad():
    x, w = leaf([1.0, -2.0]), leaf([3.0, 0.5])
    y = (x * w).sum()
    gx, gw = tx.grad(y, (x, w), retain_graph=True)
    np.testing.assert_allclose(gx.numpy(), w.numpy())
    np.testing.assert_allclose(gw.numpy(), x.numpy())
    assert x.grad is None and w.grad is None
    (gx_only,) = tx.grad(y, [x])
    np.testing.assert_allclose(gx_only.numpy(), w.numpy())


def test_grad_of_an_intermediate_and_of_a_tied_weight():
    x = leaf([1.0, 2.0, 3.0])
    h = x * 2
    y = (h * h).sum() + (x * h).sum()  # x used directly and through h
    gh, gx = tx.grad(y, (h, x))
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy() + x.numpy())
    np.testing.assert_allclose(gx.numpy(), 8 * x.numpy() + 4 * x.numpy())


def test_allow_unused_gives_none_and_otherwise_the_error_names_the_input():
    x, unused = leaf([1.0]), leaf([2.0, 3.0])
    y = (x * 2).sum()
    assert tx.grad(y, (x, unused), retain_graph=True, allow_unused=True)[1] is None
    with pytest.raises(GraphError, match=r"input 1 \(shape \(2,\)\) does not reach the outputs.*allow_unused"):
        tx.grad(y, (x, unused))


def test_a_second_backward_through_a_freed_graph_names_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(GraphError, match="retain_graph"):
        y.backward()
    z = (x.exp() * x).sum()
    tx.grad(z, x)
    with pytest.raises(GraphError, match="retain_graph"):
        tx.grad(z, x)


def test_retain_graph_defaults_to_create_graph():
    x = leaf([0.5])
    y = (x.tanh() * x).sum()
    tx.grad(y, x, create_graph=True)
    tx.grad(y, x)  # still there


def test_grad_outputs_that_require_grad_are_differentiated_too():
    x = leaf([1.0, 2.0])
    u = leaf([3.0, -1.0])
    (g,) = tx.grad(x * x, x, u, create_graph=True)  # 2 x u
    gu, gx = tx.grad(g.sum(), (u, x))
    np.testing.assert_allclose(gu.numpy(), 2 * x.numpy())
    np.testing.assert_allclose(gx.numpy(), 2 * u.numpy())


def test_hooks_run_under_create_graph_and_their_replacement_is_differentiated():
    x = leaf([1.0, 2.0])
    seen = []
    handle = x.register_hook(lambda g: seen.append(g.requires_grad) or g * x)  # grad becomes 2x * x
    y = x * x
    y.register_hook(lambda g: g * 1.0)
    (g,) = tx.grad(y.sum(), x, create_graph=True)
    assert seen == [True]
    np.testing.assert_allclose(g.numpy(), 2 * x.numpy() ** 2)
    (gg,) = tx.grad(g.sum(), x)  # d(2 x^2)/dx = 4x, and the leaf's hook runs on this backward too: 4x * x
    np.testing.assert_allclose(gg.numpy(), 4 * x.numpy() ** 2)
    handle.remove()
    (plain,) = tx.grad((x * x).sum(), x)
    np.testing.assert_allclose(plain.numpy(), 2 * x.numpy())


def test_post_accumulate_hooks_see_a_recorded_grad():
    x = leaf([1.0, 2.0])
    seen = []
    x.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.requires_grad))
    (x**3).sum().backward(create_graph=True)
    assert seen == [True]


class CubeOnTensors(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 3 * x * x  # operators only: works on arrays and on Tensors


class CubeOnArrays(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 3 * np.square(x)  # a NumPy function: arrays only


class CubeMarked(CubeOnTensors):
    backward = staticmethod(tx.once_differentiable(CubeOnTensors.backward))


def test_a_custom_function_written_with_operators_is_twice_differentiable():
    x = leaf([1.0, -2.0])
    (g,) = tx.grad(CubeOnTensors.apply(x).sum(), x, create_graph=True)
    (gg,) = tx.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * x.numpy())


@pytest.mark.parametrize("function", [CubeOnArrays, CubeMarked])
def test_an_array_only_backward_gives_first_derivatives_and_refuses_the_second(function):
    x = leaf([1.0, -2.0])
    (g,) = tx.grad(function.apply(x).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    with pytest.raises(GraphError, match=f"{function.__name__}: its backward works on arrays only"):
        tx.grad(g.sum(), x)
    x.grad = None
    function.apply(x).sum().backward()  # without create_graph nothing changes
    np.testing.assert_allclose(x.grad.numpy(), 3 * x.numpy() ** 2)


def test_gradgradcheck_passes_a_right_op_and_catches_a_wrong_second_derivative():
    x = leaf(np.linspace(-1, 1, 5))
    assert tx.gradgradcheck(lambda t: (t.tanh() * t).exp(), [x])

    class WrongSecond(Function):  # d(x^2)/dx = 2x in value, but recorded as 3x - (a constant x): slope 3, not 2
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (3 * x - (x.data if isinstance(x, Tensor) else x))

    assert tx.gradcheck(WrongSecond.apply, [x])
    with pytest.raises(GradcheckError, match="gradgradcheck: input 0 .* second derivative mismatch at index"):
        tx.gradgradcheck(WrongSecond.apply, [x])


def test_the_functional_api_matches_torch():
    rng = np.random.default_rng(0)
    x, v = rng.standard_normal(4), rng.standard_normal(4)

    def ours(t):
        return (t.tanh() ** 3).sum() * t.exp().sum()

    def theirs(t):
        return (t.tanh() ** 3).sum() * t.exp().sum()

    tx_x, tx_v = Tensor(x, dtype="float64"), Tensor(v, dtype="float64")
    t_x, t_v = torch.tensor(x), torch.tensor(v)
    np.testing.assert_allclose(autograd.hessian(ours, tx_x).numpy(), torch.autograd.functional.hessian(theirs, t_x))
    np.testing.assert_allclose(
        autograd.hvp(ours, tx_x, tx_v)[1].numpy(), torch.autograd.functional.hvp(theirs, t_x, t_v)[1]
    )
    vector_ours, vector_theirs = (lambda t: t.exp() * t.sum()), (lambda t: t.exp() * t.sum())
    jac = torch.autograd.functional.jacobian(vector_theirs, t_x).numpy()
    np.testing.assert_allclose(autograd.jacobian(vector_ours, tx_x).numpy(), jac)
    np.testing.assert_allclose(autograd.jvp(vector_ours, tx_x, tx_v)[1].numpy(), jac @ v)
    np.testing.assert_allclose(autograd.vjp(vector_ours, tx_x, tx_v)[1].numpy(), v @ jac)
    assert autograd.grad is tx.grad


def test_softmax_hessian_is_diag_y_minus_y_y_transpose():
    """docs/derivations/second_order.md: the Hessian of cross-entropy in the logits, by hand."""
    import tinygrad_tx.nn.functional as F

    x = np.array([0.3, -1.2, 2.0, 0.5])
    y = np.exp(x) / np.exp(x).sum()
    hessian = autograd.hessian(lambda t: -F.log_softmax(t, -1)[2], Tensor(x, dtype="float64")).numpy()
    np.testing.assert_allclose(hessian, np.diag(y) - np.outer(y, y), atol=1e-14)


def test_one_layer_norm_second_derivative_by_hand():
    """docs/derivations/second_order.md: d^2 y_0 / d x_0^2 = -12 eps d / (d^2 + 4 eps)^(5/2), two features."""
    import tinygrad_tx.nn.functional as F

    eps, x = 0.1, np.array([0.7, 0.2])
    d = x[0] - x[1]
    hessian = autograd.hessian(lambda t: F.layer_norm(t, eps=eps)[0], Tensor(x, dtype="float64")).numpy()
    np.testing.assert_allclose(hessian[0, 0], -12 * eps * d / (d * d + 4 * eps) ** 2.5, rtol=1e-12)
