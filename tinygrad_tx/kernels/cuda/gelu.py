"""GELU on the GPU (reference.gelu_forward / gelu_backward, docs/derivations/gelu.md): CuPy elementwise
kernels for any float dtype, exact (erf) and tanh forms. The forward also returns its gate; the
backward recomputes it from x, as on the CPU (only x is kept after the forward)."""

from __future__ import annotations

from ..reference import Array
from .common import elementwise_kernels, kernels


@elementwise_kernels
def _gelu_kernels(cupy) -> dict:
    return {
        "gelu_exact": cupy.ElementwiseKernel(
            "T x",
            "T y, T gate",
            "gate = (T)0.5 * ((T)1 + erf(x * (T)0.7071067811865476)); y = x * gate;",
            "tinygrad_tx_gelu_exact",
        ),
        "gelu_exact_backward": cupy.ElementwiseKernel(
            "T x, T gate, T g",
            "T dx",
            "dx = g * (gate + x * (T)0.3989422804014327 * exp((T)-0.5 * x * x));",
            "tinygrad_tx_gelu_exact_backward",
        ),
        "gelu_tanh": cupy.ElementwiseKernel(
            "T x",
            "T y, T gate",
            "gate = tanh((T)0.7978845608028654 * (x + (T)0.044715 * x * x * x)); y = (T)0.5 * x * ((T)1 + gate);",
            "tinygrad_tx_gelu_tanh",
        ),
        "gelu_tanh_backward": cupy.ElementwiseKernel(
            "T x, T gate, T g",
            "T dx",
            "dx = g * (T)0.5 * ((T)1 + gate + x * ((T)1 - gate * gate) * (T)0.7978845608028654"
            " * ((T)1 + (T)0.134145 * x * x));",
            "tinygrad_tx_gelu_tanh_backward",
        ),
    }


def gelu_with_gate(x, approximate="none"):
    """(gelu(x), gate): gate = Phi(x) ("none") or tanh(sqrt(2/pi)(x + 0.044715 x^3)) ("tanh"), kept for backward."""
    return kernels()["gelu_exact" if approximate == "none" else "gelu_tanh"](x)


def gelu_backward_from_gate(x, gate, grad, approximate="none"):
    """dx of gelu from the forward's x and gate (docs/derivations/gelu.md)."""
    return kernels()["gelu_exact_backward" if approximate == "none" else "gelu_tanh_backward"](x, gate, grad)


def gelu_forward(x: Array, approximate: str) -> Array:
    return gelu_with_gate(x, approximate)[0]


def gelu_backward(x: Array, grad: Array, approximate: str) -> Array:
    _, gate = gelu_with_gate(x, approximate)  # recomputed from x, as on the CPU: only x is kept after the forward
    return gelu_backward_from_gate(x, gate, grad, approximate)
