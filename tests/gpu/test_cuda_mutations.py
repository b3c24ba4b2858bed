"""Test the tester: the emulation harness must reject deliberately broken versions of the real kernels.

Each mutation edits the very RawModule source string of tinygrad_tx.kernels.cuda (asserting first that
the edited text is there, so a mutation can never silently become a no-op), runs the mutated kernels
through the same checks as test_cuda_kernels_emulated, and asserts that the harness fails:
a dropped __syncthreads is a shared-memory race, an off-by-one bound an out-of-bounds access or wrong
values, a wrong reduction operator wrong values, a lost ``threadIdx.x == 0`` guard a global-memory race,
and a layer norm without its first-element shift the precision regression of issue 12.
"""

import numpy as np
import pytest
from cuda_emulation import (
    EmulationError,
    GlobalMemoryRace,
    MemoryFault,
    SharedMemoryRace,
    interpreter,
    sources,
)
from cuda_emulation.checks import (
    check_cross_entropy,
    check_layer_norm,
    check_layer_norm_at_offset,
    check_softmax,
    offset_rows,
    rows_of,
)

from helpers.optional import requires_cuda_emulation

# NVRTC (through CuPy) compiles, the PTX emulator runs: skipped, with the extra to install, without them
pytestmark = requires_cuda_emulation

SOURCE = sources.row_source()


def mutated(old: str, new: str, occurrence: int = 0) -> str:
    """SOURCE with the ``occurrence``-th appearance of ``old`` replaced by ``new``."""
    assert SOURCE.count(old) > occurrence, f"mutation target {old!r} is no longer in the kernel source"
    start = -1
    for _ in range(occurrence + 1):
        start = SOURCE.index(old, start + 1)
    return SOURCE[:start] + new + SOURCE[start + len(old) :]


def run_all_row_kernels(source: str, width: int = 257, offset: float = 0.0) -> None:
    x, grad = rows_of(1, 3, width, offset), rows_of(2, 3, width, 0.0)
    check_softmax(x, grad, row_source=source)
    check_layer_norm(x, grad, affine=True, row_source=source)
    check_cross_entropy(x, np.array([0, width - 1, 3 % width]), np.array([True, True, False]), row_source=source)


def test_the_unmutated_source_passes():
    run_all_row_kernels(SOURCE)


# block_reduce holds three barriers: after the first store, after each halving step, after reading buffer[0]
@pytest.mark.parametrize("occurrence", [0, 1, 2], ids=["after-store", "in-the-halving-loop", "before-reuse"])
def test_a_dropped_syncthreads_in_block_reduce_is_a_race(occurrence):
    with pytest.raises(SharedMemoryRace, match="since the last barrier"):
        run_all_row_kernels(mutated("__syncthreads();", ";", occurrence))


def test_an_off_by_one_row_loop_reads_past_the_array():
    source = mutated(
        "for (int j = threadIdx.x; j < cols; j += blockDim.x) row_max = fmaxf(row_max, xr[j]);",
        "for (int j = threadIdx.x; j <= cols; j += blockDim.x) row_max = fmaxf(row_max, xr[j]);",
    )
    with pytest.raises(
        MemoryFault,
        match=r"softmax_rows: block 2 .*out-of-bounds access of 4 bytes .*byte 3084 of "
        r"argument 0",
    ):
        run_all_row_kernels(source)


def test_an_off_by_one_halving_bound_reads_past_shared_memory():
    with pytest.raises(MemoryFault, match="block_reduce|softmax_rows: .* outside the block's 1024 bytes"):
        run_all_row_kernels(mutated("if (threadIdx.x < half)", "if (threadIdx.x <= half)"))


def test_a_halving_loop_that_never_ends_is_stopped(monkeypatch):
    monkeypatch.setattr(interpreter, "MAX_STEPS", 5_000)  # the real kernels need well under 2,000 steps
    with pytest.raises(EmulationError, match="softmax_rows: still running after 5000 steps"):
        run_all_row_kernels(mutated("half > 0; half >>= 1", "half >= 0; half >>= 1"))


def test_an_off_by_one_row_loop_start_gives_wrong_values():
    source = mutated(
        "for (int j = threadIdx.x; j < cols; j += blockDim.x) dx[offset + j]",
        "for (int j = threadIdx.x + 1; j < cols; j += blockDim.x) dx[offset + j]",
    )
    with pytest.raises(AssertionError, match="softmax_backward_rows"):
        run_all_row_kernels(source)


def test_a_wrong_sum_operator_gives_wrong_values():
    with pytest.raises(AssertionError, match="softmax_rows: max relative error"):
        run_all_row_kernels(mutated("buffer[threadIdx.x] + other", "buffer[threadIdx.x] - other"))


def test_a_min_instead_of_max_gives_wrong_values_on_wide_ranges():
    """softmax is shift-invariant, so min for max only shows when exp overflows: logits spread over 200."""
    x = rows_of(1, 2, 257, 0.0, scale=60.0)
    with pytest.raises(AssertionError, match="softmax_rows"):
        check_softmax(
            x,
            rows_of(2, 2, 257, 0.0),
            row_source=mutated("fmaxf(buffer[threadIdx.x], other)", "fminf(buffer[threadIdx.x], other)"),
        )


def test_every_thread_writing_the_row_statistic_is_a_race():
    with pytest.raises(GlobalMemoryRace, match="layer_norm_rows: .* in the same instruction as another thread"):
        run_all_row_kernels(mutated("if (threadIdx.x == 0) rstd[blockIdx.x] = r;", "rstd[blockIdx.x] = r;"))


def test_layer_norm_without_the_first_element_shift_loses_precision_at_a_1e4_offset():
    """Defect 2 of issue 12, kept as a mutation: the check that guards the fix must fail without it."""
    source = mutated("float shift = cols > 0 ? x[offset] : 0.0f;", "float shift = 0.0f;")
    with pytest.raises(AssertionError, match="offset 1e4: max relative error"):
        check_layer_norm_at_offset(offset_rows(), row_source=source)
