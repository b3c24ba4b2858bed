"""The AdamW update on the GPU (reference.adamw_update, docs/derivations/adamw.md): torch.optim.AdamW's
update of one parameter and its moments, in place, in one elementwise launch (any float dtype)."""

from __future__ import annotations

from ..reference import Array
from .common import elementwise_kernels, kernels


@elementwise_kernels
def _adamw_kernels(cupy) -> dict:
    return {
        "adamw": cupy.ElementwiseKernel(
            "T grad, T decay, T beta1, T beta2, T step_size, T bias2_sqrt, T eps",
            "T param, T exp_avg, T exp_avg_sq",
            "param *= decay;"
            "exp_avg = beta1 * exp_avg + ((T)1 - beta1) * grad;"
            "exp_avg_sq = beta2 * exp_avg_sq + ((T)1 - beta2) * grad * grad;"
            "param -= step_size * exp_avg / (sqrt(exp_avg_sq) / bias2_sqrt + eps);",
            "tinygrad_tx_adamw",
        )
    }


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
    scalar = param.dtype.type
    step_size = lr / (1 - beta1**step)
    bias2_sqrt = (1 - beta2**step) ** 0.5
    kernels()["adamw"](
        grad,
        scalar(1 - lr * weight_decay),
        scalar(beta1),
        scalar(beta2),
        scalar(step_size),
        scalar(bias2_sqrt),
        scalar(eps),
        param,
        exp_avg,
        exp_avg_sq,
    )
