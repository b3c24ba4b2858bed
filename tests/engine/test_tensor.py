"""Graph behaviour: construction, accumulation, no_grad, retain_graph, detach, deep graphs, devices."""

import builtins

import numpy as np
import pytest

import tinygrad_tx as tx
from tinygrad_tx import Function, Tensor, backend, no_grad


def test_construction_dtypes():
    assert Tensor(1.5).dtype == np.float32 and Tensor(1.5).shape == ()
    assert Tensor([[1.0, 2.0]]).dtype == np.float32
    assert Tensor(np.zeros(3, dtype=np.float64)).dtype == np.float32
    assert Tensor(np.zeros(3), dtype="float64").dtype == np.float64
    assert Tensor([1, 2, 3]).dtype.kind == "i"
    assert Tensor([True, False]).dtype == np.bool_


def test_construction_copies_the_data():
    source = np.ones(3, dtype=np.float32)
    t = Tensor(source)
    source[0] = 5
    assert t.numpy()[0] == 1


def test_only_float_tensors_require_grad():
    with pytest.raises(tx.DTypeError, match="only float tensors can require gradients, got dtype int64"):
        Tensor([1, 2], requires_grad=True)


def test_accessors_and_repr():
    t = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and t.device == "cpu" and len(t) == 2
    assert isinstance(t.numpy(), np.ndarray)
    assert Tensor(3.0).item() == 3.0
    assert "requires_grad=True" in repr(t) and "float32" in repr(t)
    assert "grad_fn=Mul" in repr(t * 2)
    assert t.to("cpu") is t
    with pytest.raises(tx.ShapeError, match=r"item: only a one-element tensor .* shape \(2, 3\)"):
        t.item()


def test_diamond_graph_accumulates():
    x = Tensor(3.0, requires_grad=True)
    a, b = x * 2, x * x  # x reaches y by two paths
    y = a * b  # y = 2x^3, dy/dx = 6x^2 = 54
    y.backward()
    assert x.grad.item() == pytest.approx(54.0)


def test_tensor_used_twice_in_one_op():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_leaf_gradients_accumulate_across_backwards_without_aliasing():
    x = Tensor(np.ones(3), requires_grad=True)
    y = Tensor(np.ones(3), requires_grad=True)
    (x + y).sum().backward()  # add's backward hands the same array to both inputs
    assert x.grad.data is not y.grad.data
    first = x.grad.numpy().copy()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), first + 3)
    np.testing.assert_allclose(y.grad.numpy(), np.ones(3))


def test_non_leaf_grad_only_when_retained():
    x = Tensor(np.ones(2), requires_grad=True)
    h = (x * 2).retain_grad()
    k = x * 3
    (h * k).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), [3.0, 3.0])
    assert k.grad is None


def test_no_grad_context_and_decorator():
    x = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf

    @no_grad()
    def evaluate(t):
        return t * 2

    assert not evaluate(x).requires_grad
    assert (x * 2).requires_grad and tx.is_grad_enabled()


def test_retain_graph_allows_second_backward():
    x = Tensor(2.0, requires_grad=True)
    y = x * x
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == pytest.approx(8.0)


def test_second_backward_without_retain_graph_fails_clearly():
    x = Tensor(2.0, requires_grad=True)
    y = x.exp() * 3
    y.backward()
    with pytest.raises(tx.GraphError, match="graph was already freed .* retain_graph=True"):
        y.backward()


def test_backward_through_freed_subgraph_fails_clearly():
    x = Tensor(2.0, requires_grad=True)
    shared = x.exp()
    (shared * 2).backward()
    with pytest.raises(tx.GraphError, match="already freed"):
        (shared * 3).backward()


def test_non_scalar_backward_needs_a_gradient():
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2
    with pytest.raises(tx.GraphError, match=r"gradient is needed for a non-scalar output of shape \(2, 3\)"):
        y.backward()
    with pytest.raises(tx.ShapeError, match=r"gradient shape \(3,\) does not match tensor shape \(2, 3\)"):
        y.backward(np.ones(3))


def test_backward_without_requires_grad_fails_clearly():
    with pytest.raises(tx.GraphError, match="does not require grad"):
        (Tensor(1.0) * 2).backward()


def test_detach_and_requires_grad_():
    x = Tensor(np.ones(2), requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])
    x.zero_grad()
    assert x.grad is None
    assert Tensor(np.ones(1)).requires_grad_().requires_grad


def test_deep_graph_is_iterative():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(20000):
        y = y + 1e-4
    y.backward()
    assert x.grad.item() == 1.0


def test_graph_is_freed_after_backward():
    x = Tensor(np.ones(4), requires_grad=True)
    y = (x * x).sum()
    node = y._ctx
    y.backward()
    assert node.released and node.inputs == () and node.saved_tensors == ()


def test_wrong_gradient_shape_from_a_function_is_caught():
    class Broken(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return grad.sum(axis=0)

    with pytest.raises(
        tx.ShapeError, match=r"Broken.backward returned a gradient of shape \(3,\) for an input of shape \(2, 3\)"
    ):
        Broken.apply(Tensor(np.ones((2, 3)), requires_grad=True)).sum().backward()


def test_mixed_devices_name_both(monkeypatch):
    gpu_like = Tensor(np.ones(2))
    real_device_of = backend.device_of
    monkeypatch.setattr(backend, "device_of", lambda a: "gpu" if a is gpu_like.data else real_device_of(a))
    with pytest.raises(tx.DeviceError, match=r"Add: tensors on different devices \(cpu and gpu\)"):
        Tensor(np.ones(2)) + gpu_like


def test_gpu_without_cupy_says_how_to_fix(monkeypatch):
    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy":
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cupy)
    monkeypatch.setattr(backend, "_cupy", None)
    with pytest.raises(tx.DeviceError, match=r"needs CuPy.*pip install \"tinygrad-tx\[gpu\]\""):
        Tensor([1.0], device="gpu")


def test_unknown_device():
    with pytest.raises(tx.DeviceError, match="unknown device 'tpu'"):
        Tensor([1.0], device="tpu")


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, tinygrad_tx; print(sorted(m for m in ('torch', 'matplotlib', 'cupy') if m in sys.modules))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def test_a_0d_intermediate_used_three_times_gets_every_gradient():
    # NumPy sums two 0-d arrays into a scalar; the walk once summed the third contribution into a copy of it
    x = Tensor(np.array(0.3), requires_grad=True, dtype="float64")
    y = x * 1
    (y * y * y * y).backward()
    assert np.isclose(x.grad.item(), 4 * 0.3**3)
