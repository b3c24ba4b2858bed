"""Tensor hooks (tinygrad_tx/tensor.py), with PyTorch's names and semantics: ``register_hook`` sees and may
replace a gradient, ``register_post_accumulate_grad_hook`` sees a leaf's final ``.grad``."""

import numpy as np
import pytest

import tinygrad_tx as tx
from tinygrad_tx import Tensor


def leaf(values):
    return Tensor(np.asarray(values, dtype=np.float64), requires_grad=True, dtype="float64")


def test_a_leaf_hook_sees_the_summed_gradient_once_before_grad_is_written():
    x = leaf([1.0, 2.0, 3.0])
    seen = []
    x.register_hook(lambda grad: seen.append((grad.numpy().copy(), x.grad)))
    (x * 2 + x * x).sum().backward()  # two uses: 2 + 2x, summed before the hook runs
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0][0], 2 + 2 * x.numpy())
    assert seen[0][1] is None  # called before the gradient is accumulated into .grad
    np.testing.assert_array_equal(x.grad.numpy(), 2 + 2 * x.numpy())


def test_a_replacement_changes_a_leafs_grad():
    x = leaf([1.0, -2.0])
    x.register_hook(lambda grad: grad * 10)
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [30.0, 30.0])


def test_a_replacement_on_an_intermediate_flows_on_to_its_inputs():
    x = leaf([1.0, 2.0])
    y = x * x
    z = y * 3
    seen = []
    y.register_hook(lambda grad: seen.append(grad.numpy().copy()))
    y.register_hook(lambda grad: grad * 0 + np.array([1.0, -1.0]))
    y.retain_grad()
    z.sum().backward()
    np.testing.assert_array_equal(seen, [[3.0, 3.0]])
    np.testing.assert_array_equal(y.grad.numpy(), [1.0, -1.0])  # .grad of a retained intermediate: the replacement
    np.testing.assert_array_equal(x.grad.numpy(), 2 * x.numpy() * [1.0, -1.0])  # dy/dx times the replacement


def test_hooks_run_in_registration_order_each_seeing_the_previous_replacement():
    x = leaf([1.0])
    order = []
    x.register_hook(lambda grad: order.append(("first", grad.item())) or grad + 1)
    x.register_hook(lambda grad: order.append(("second", grad.item())) or grad * 2)
    (x * 5).sum().backward()
    assert order == [("first", 5.0), ("second", 6.0)]
    assert x.grad.item() == 12.0


def test_remove_unregisters_a_hook():
    x = leaf([1.0, 2.0])
    calls = []
    handle = x.register_hook(lambda grad: calls.append(1))
    post = x.register_post_accumulate_grad_hook(lambda tensor: calls.append(2))
    x.sum().backward()
    handle.remove()
    post.remove()
    handle.remove()  # a second remove does nothing
    x.sum().backward()
    assert calls == [1, 2]
    y = x * 2
    with y.register_hook(lambda grad: grad * 0):  # a handle is also a context manager
        pass
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0])


def test_a_replacement_of_the_wrong_shape_is_refused_in_one_line():
    x = leaf([1.0, 2.0, 3.0])

    def cut(grad):
        return grad.numpy()[:2]

    x.register_hook(cut)
    message = r"hook 'cut' returned a gradient of shape \(2,\) for a tensor of shape \(3,\)"
    with pytest.raises(tx.ShapeError, match=message):
        x.sum().backward()


def test_hooks_need_a_tensor_that_requires_grad_and_post_hooks_a_leaf():
    with pytest.raises(tx.GraphError, match="register_hook: this tensor does not require grad"):
        Tensor([1.0]).register_hook(print)
    with pytest.raises(tx.GraphError, match="does not require grad"):
        Tensor([1.0]).register_post_accumulate_grad_hook(print)
    with pytest.raises(tx.GraphError, match="only leaf tensors accumulate a .grad"):
        (leaf([1.0]) * 2).register_post_accumulate_grad_hook(print)


def test_post_accumulate_hook_sees_the_final_grad_once_also_for_a_tied_weight():
    shared = leaf([0.0, 1.0, 2.0])  # used by two ops, like GPT's tied wte
    late = leaf([2.0, 2.0, 2.0])  # used twice by one branch
    constant = Tensor(np.ones(3), dtype="float64")  # needs no gradient: never reported
    seen = []
    for tensor in (shared, late):
        tensor.register_post_accumulate_grad_hook(lambda t: seen.append((t, t.grad.numpy().copy())))
    loss = (shared * constant).sum() + ((shared * late) * late).sum()
    loss.backward()
    assert sorted(id(t) for t, _ in seen) == sorted([id(shared), id(late)])  # each once
    for tensor, grad_when_reported in seen:  # final when reported: nothing was added afterwards
        np.testing.assert_array_equal(grad_when_reported, tensor.grad.numpy())
    np.testing.assert_array_equal(shared.grad.numpy(), 1 + late.numpy() ** 2)
    np.testing.assert_array_equal(late.grad.numpy(), 2 * shared.numpy() * late.numpy())


def test_post_accumulate_hook_on_a_leaf_root_and_after_an_earlier_grad():
    x = leaf(1.0)
    seen = []
    x.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.item()))
    x.backward()
    x.backward()  # .grad accumulates: the hook sees the running total
    assert seen == [1.0, 2.0]


def test_hooks_run_once_per_backward_with_retain_graph():
    x = leaf([1.0, 2.0])
    y = x * x
    loss = (y + y).sum()
    grads, intermediate, finals = [], [], []
    x.register_hook(lambda grad: grads.append(grad.numpy().copy()))
    y.register_hook(lambda grad: intermediate.append(grad.numpy().copy()))
    x.register_post_accumulate_grad_hook(lambda t: finals.append(t.grad.numpy().copy()))
    loss.backward(retain_graph=True)
    loss.backward()
    expected = 4 * x.numpy()
    np.testing.assert_array_equal(grads, [expected, expected])
    np.testing.assert_array_equal(intermediate, [[2.0, 2.0], [2.0, 2.0]])
    np.testing.assert_array_equal(finals, [expected, 2 * expected])
    with pytest.raises(tx.GraphError, match="retain_graph"):
        loss.backward()


def test_backward_keeps_its_positional_gradient_and_retain_graph():
    x = leaf([1.0, 2.0])
    y = x * 3
    y.backward(np.array([1.0, 2.0]), True)
    y.backward(gradient=Tensor([1.0, 1.0], dtype="float64"))
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 9.0])
