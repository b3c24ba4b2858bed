"""Print the worst error of every emulated CUDA kernel against the reference, over a fixed set of hard inputs.

    PYTHONPATH=.:tests python -m cuda_emulation.report

Widths 1, 255, 256, 257 and 4096 (around and far beyond the 256-thread block), rows at offsets 0 and 1e4,
with and without layer-norm affine parameters, a fully masked softmax row, ignored cross-entropy rows,
GELU and AdamW in float32 and float64. Errors are as ``checks.py`` measures them; the tests' bounds are
``checks.F32_RTOL`` (row kernels) and ``checks.RTOL`` (elementwise kernels).
"""

import time

import numpy as np

from . import checks


def run_all() -> None:
    for width in (1, 255, 256, 257, 4096):
        for offset in (0.0, 1e4):
            x, grad = checks.rows_of(width, 3, width, offset), checks.rows_of(width + 1, 3, width, 0.0)
            masked = x.copy()
            masked[1] = -np.inf
            checks.check_softmax(masked, grad)
            for affine in (False, True):
                checks.check_layer_norm(x, grad, affine)
            checks.check_cross_entropy(x, np.array([0, width - 1, width // 2]), np.array([True, False, True]))
    checks.check_layer_norm_at_offset(checks.offset_rows())
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x, grad = (4 * rng.standard_normal(3000)).astype(dtype), rng.standard_normal(3000).astype(dtype)
        for approximate in ("none", "tanh"):
            checks.check_gelu(x, grad, approximate)
        for step in (1, 10, 1000):
            param, exp_avg = rng.standard_normal(3000).astype(dtype), rng.standard_normal(3000).astype(dtype)
            checks.check_adamw(
                param,
                grad.copy(),
                exp_avg,
                rng.random(3000).astype(dtype),
                lr=3e-3,
                beta1=0.9,
                beta2=0.95,
                eps=1e-8,
                weight_decay=0.1,
                step=step,
            )


def main() -> None:
    start = time.perf_counter()
    run_all()
    print(f"{'kernel output':40s} worst relative error")
    for what, error in sorted(checks.WORST.items()):
        print(f"{what:40s} {error:.2e}")
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
