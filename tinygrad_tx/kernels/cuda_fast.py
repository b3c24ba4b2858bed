"""The fast layer on CuPy arrays: the CUDA kernels of cuda.py where one applies, else the reference.

Same names and signatures as reference.py. The row kernels (softmax, layer norm, cross-entropy) take
float32 arrays over their last axis; GELU and AdamW any float dtype. Anything else (another dtype,
softmax over another axis, and the ops without a kernel: log-softmax, dropout, attention, embedding
backward, the cross-entropy backward) runs the reference formula, which CuPy evaluates as it is.
"""

from __future__ import annotations

from . import cuda, reference
from .reference import Array


def softmax_forward(x: Array, axis: int) -> Array:
    if axis == x.ndim - 1 and cuda.fits_row_kernel(x):
        return cuda.softmax_last_axis(x)
    return reference.softmax_forward(x, axis)


def softmax_backward(y: Array, grad: Array, axis: int) -> Array:
    if axis == y.ndim - 1 and cuda.fits_row_kernel(y, grad):
        return cuda.softmax_backward_last_axis(y, grad)
    return reference.softmax_backward(y, grad, axis)


def cross_entropy_forward(logits: Array, targets: Array, counted: Array) -> tuple[Array, Array]:
    if cuda.fits_row_kernel(logits):
        return cuda.cross_entropy_rows(logits, targets, counted)
    return reference.cross_entropy_forward(logits, targets, counted)


def layer_norm_forward(x: Array, weight: Array | None, bias: Array | None, eps: float) -> tuple[Array, Array, Array]:
    if cuda.fits_row_kernel(x, weight, bias):
        return cuda.layer_norm(x, weight, bias, eps)
    return reference.layer_norm_forward(x, weight, bias, eps)


def layer_norm_backward(
    grad: Array, xhat: Array, rstd: Array, weight: Array | None
) -> tuple[Array, Array | None, Array]:
    if not cuda.fits_row_kernel(grad, xhat, weight):
        return reference.layer_norm_backward(grad, xhat, rstd, weight)
    features = xhat.shape[-1]
    grad_weight = None if weight is None else (grad * xhat).reshape(-1, features).sum(axis=0)
    return cuda.layer_norm_backward(grad, xhat, rstd, weight), grad_weight, grad.reshape(-1, features).sum(axis=0)


def gelu_forward(x: Array, approximate: str) -> Array:
    return cuda.gelu(x, approximate)[0]


def gelu_backward(x: Array, grad: Array, approximate: str) -> Array:
    _, gate = cuda.gelu(x, approximate)  # recomputed from x, as on the CPU: only x is kept after the forward
    return cuda.gelu_backward(x, gate, grad, approximate)


def adamw_update(
    param: Array,
    grad: Array,
    exp_avg: Array,
    exp_avg_sq: Array,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: int,
) -> None:
    """One fused launch."""
    cuda.adamw_update(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step)
