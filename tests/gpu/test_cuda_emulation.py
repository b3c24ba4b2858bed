"""The PTX interpreter itself (tests/cuda_emulation): exact arithmetic, control flow, and every check it
promises (bounds, races, barrier divergence, argument types), on small kernels compiled by real NVRTC."""

from fractions import Fraction

import numpy as np
import pytest
from cuda_emulation import (
    BarrierDivergence,
    EmulationError,
    GlobalMemoryRace,
    MemoryFault,
    SharedMemoryRace,
    UnsupportedInstruction,
    compile_to_ptx,
    interpreter,
    launch,
)

from helpers.optional import cuda_emulation_missing

# NVRTC (through CuPy) compiles the kernels below at import: skipped, with the extra to install, without it
if cuda_emulation_missing():
    pytest.skip(cuda_emulation_missing(), allow_module_level=True)

RNG = np.random.default_rng(0)


def kernel(body: str, signature: str, name: str = "k") -> str:
    return compile_to_ptx(f'extern "C" __global__ void {name}({signature}) {{\n{body}\n}}', "90")


def nearest_f32(exact: Fraction) -> np.float32:
    """The float32 nearest ``exact``, ties to even, found without floating-point arithmetic on it."""
    guess = np.float32(float(exact))
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    return min(candidates, key=lambda c: (abs(Fraction(float(c)) - exact), int(c.view(np.uint32)) & 1))


FMA = kernel(
    "int i = threadIdx.x + blockIdx.x * blockDim.x; if (i < n) { y[i] = fmaf(a[i], b[i], c[i]); "
    "z[i] = fma(p[i], q[i], r[i]); }",
    "const float* a, const float* b, const float* c, float* y, const double* p, const double* q, "
    "const double* r, double* z, int n",
)


def test_fma_is_exactly_rounded_in_float32_and_float64():
    n = 300
    a, b = RNG.standard_normal(n).astype(np.float32), RNG.standard_normal(n).astype(np.float32)
    c = (-(a.astype(np.float64) * b) * (1 + 1e-6 * RNG.standard_normal(n))).astype(np.float32)  # near-cancelling
    p, q = RNG.standard_normal(n), RNG.standard_normal(n)
    r = -(p * q) * (1 + 1e-12 * RNG.standard_normal(n))
    y, z = np.zeros(n, np.float32), np.zeros(n)
    launch(FMA, "k", (3,), (128,), [a, b, c, y, p, q, r, z, np.int32(n)])
    for i in range(n):
        assert y[i] == nearest_f32(Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))), i
        assert z[i] == float(Fraction(p[i]) * Fraction(q[i]) + Fraction(r[i])), i  # float() rounds exactly


def test_float32_division_square_root_and_exp_follow_ieee_and_the_libdevice_bounds():
    n = 500
    a, b = RNG.standard_normal(n).astype(np.float32), RNG.standard_normal(n).astype(np.float32)
    ptx = kernel(
        "int i = threadIdx.x + blockIdx.x * blockDim.x; if (i < n) { q[i] = a[i] / b[i]; "
        "s[i] = sqrtf(fabsf(a[i])); e[i] = expf(4.0f * a[i]); }",
        "const float* a, const float* b, float* q, float* s, float* e, int n",
    )
    q, s, e = (np.zeros(n, np.float32) for _ in range(3))
    launch(ptx, "k", (4,), (128,), [a, b, q, s, e, np.int32(n)])
    np.testing.assert_array_equal(q, a / b)  # div.rn: correctly rounded, as NumPy's float32 division
    np.testing.assert_array_equal(s, np.sqrt(np.abs(a)))
    exact = np.exp(4.0 * a.astype(np.float64))
    assert (np.abs(e - exact) / exact).max() < 2 * 2.0**-23  # CUDA documents expf within 2 ulp


def test_integer_arithmetic_follows_c():
    ptx = kernel(
        "int i = threadIdx.x; out[5*i] = a[i] / b[i]; out[5*i+1] = a[i] % b[i]; out[5*i+2] = a[i] >> 3;"
        "out[5*i+3] = (int)((unsigned)a[i] >> 3); out[5*i+4] = min(a[i], b[i]) * 3 + wide[i] / 7;",
        "const int* a, const int* b, const long long* wide, int* out",
    )
    a = RNG.integers(-1000, 1000, 64).astype(np.int32)
    b = RNG.choice([-7, -3, 5, 11], 64).astype(np.int32)
    wide = RNG.integers(-(2**40), 2**40, 64)
    out = np.zeros(5 * 64, np.int32)
    launch(ptx, "k", 1, 64, [a, b, wide, out])
    expected = []
    for x, y, w in zip(a.tolist(), b.tolist(), wide.tolist()):
        quotient = int(x / y)
        wide_quotient = abs(w) // 7 * (1 if w >= 0 else -1)
        expected += [
            quotient,
            x - quotient * y,
            x >> 3,
            (x % 2**32) >> 3,
            (min(x, y) * 3 + wide_quotient + 2**31) % 2**32 - 2**31,
        ]
    np.testing.assert_array_equal(out, np.array(expected, np.int64).astype(np.int32))


def test_divergent_loops_and_multidimensional_launches():
    ptx = kernel(
        "int t = threadIdx.x + blockDim.x * threadIdx.y; int b = blockIdx.x + gridDim.x * blockIdx.y;"
        "int total = 0; for (int k = 0; k < t; ++k) { if (k % 3 == 0) continue; total += k; }"
        "out[b * blockDim.x * blockDim.y + t] = total * 1000 + b;",
        "int* out",
    )
    out = np.full(2 * 3 * 8 * 4, -1, np.int32)
    launch(ptx, "k", (2, 3), (8, 4), [out])
    expected = [sum(k for k in range(t) if k % 3) * 1000 + b for b in range(6) for t in range(32)]
    np.testing.assert_array_equal(out, expected)


REVERSE = (
    "extern __shared__ float tile[]; int t = threadIdx.x; tile[t] = x[blockIdx.x * blockDim.x + t];"
    "__syncthreads(); y[blockIdx.x * blockDim.x + t] = tile[blockDim.x - 1 - t];"
)


def test_dynamic_shared_memory_and_many_blocks_in_chunks(monkeypatch):
    ptx = kernel(REVERSE, "const float* x, float* y")
    x = RNG.standard_normal(40 * 64).astype(np.float32)
    y = np.zeros_like(x)
    monkeypatch.setattr(interpreter, "CHUNK_THREADS", 256)  # 4 blocks per chunk, 10 chunks
    launch(ptx, "k", 40, 64, [x, y], shared_bytes=64 * 4)
    np.testing.assert_array_equal(y, x.reshape(40, 64)[:, ::-1].reshape(-1))


def test_a_missing_barrier_is_a_race():
    with pytest.raises(SharedMemoryRace, match=r"k: block 0 thread \d+ reads shared byte .* since the last barrier"):
        launch(
            kernel(REVERSE.replace("__syncthreads();", ""), "const float* x, float* y"),
            "k",
            1,
            64,
            [np.ones(64, np.float32), np.zeros(64, np.float32)],
            shared_bytes=256,
        )


def test_two_threads_writing_one_shared_word_is_a_race():
    ptx = kernel(
        "__shared__ float s[4]; s[threadIdx.x % 4] = 1.0f; __syncthreads(); y[threadIdx.x] = s[0];", "float* y"
    )
    with pytest.raises(SharedMemoryRace, match="write-write race"):
        launch(ptx, "k", 1, 8, [np.zeros(8, np.float32)])


def test_reading_shared_memory_nobody_wrote_is_refused():
    ptx = kernel(
        "__shared__ float s[64]; if (threadIdx.x < 32) s[threadIdx.x] = 1.0f; __syncthreads();"
        "y[threadIdx.x] = s[threadIdx.x];",
        "float* y",
    )
    with pytest.raises(MemoryFault, match="no thread of the block wrote"):
        launch(ptx, "k", 1, 64, [np.zeros(64, np.float32)])


def test_a_barrier_under_a_divergent_condition_is_refused():
    ptx = kernel(
        "__shared__ float s[64]; s[threadIdx.x] = 1.0f; if (threadIdx.x < 16) __syncthreads();"
        "y[threadIdx.x] = s[threadIdx.x];",
        "float* y",
    )
    with pytest.raises(BarrierDivergence, match=r"k: block 0: thread 16 has exited while others wait at `bar.sync"):
        launch(ptx, "k", 1, 64, [np.zeros(64, np.float32)])


def test_threads_waiting_at_two_different_barriers_are_refused():
    ptx = kernel(
        "__shared__ float s[64]; s[threadIdx.x] = x[threadIdx.x];"
        "if (threadIdx.x < 16) { __syncthreads(); y[threadIdx.x] = s[63 - threadIdx.x]; }"
        "else { y[threadIdx.x] = 2.0f * s[threadIdx.x]; __syncthreads(); }",
        "const float* x, float* y",
    )
    with pytest.raises(BarrierDivergence, match="waits at another barrier"):
        launch(ptx, "k", 1, 64, [np.ones(64, np.float32), np.zeros(64, np.float32)])


# A tree sum whose barrier sits *above* the loop body, as NVRTC sometimes lays loops out: threads that
# skip the body reach the barrier (a lower address) while the others are still in the body below it.
BARRIER_ABOVE_BODY = """
.version 8.0
.target sm_90
.address_size 64
.visible .entry tree_sum(.param .u64 tree_sum_param_0)
{
    .shared .align 4 .b8 s[256];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd1, %r1, 4;
    mov.u64 %rd2, s;
    add.s64 %rd3, %rd2, %rd1;
    cvt.rn.f32.u32 %f1, %r1;
    st.shared.f32 [%rd3], %f1;
    mov.u32 %r2, 64;
    bra.uni SYNC;
SYNC:
    bar.sync 0;
    shr.u32 %r2, %r2, 1;
CHECK:
    setp.eq.u32 %p1, %r2, 0;
    @%p1 bra DONE;
    setp.ge.u32 %p2, %r1, %r2;
    @%p2 bra SYNC;
    add.s32 %r3, %r1, %r2;
    mul.wide.u32 %rd4, %r3, 4;
    add.s64 %rd5, %rd2, %rd4;
    ld.shared.f32 %f1, [%rd3];
    ld.shared.f32 %f2, [%rd5];
    add.f32 %f1, %f1, %f2;
    st.shared.f32 [%rd3], %f1;
    bra.uni SYNC;
DONE:
    bar.sync 0;
    ld.shared.f32 %f3, [s];
    ld.param.u64 %rd6, [tree_sum_param_0];
    cvta.to.global.u64 %rd7, %rd6;
    add.s64 %rd8, %rd7, %rd1;
    st.global.f32 [%rd8], %f3;
    ret;
}
"""


def test_a_barrier_placed_above_the_code_that_reaches_it_releases_correctly():
    y = np.zeros(64, np.float32)
    launch(BARRIER_ABOVE_BODY, "tree_sum", 1, 64, [y])
    np.testing.assert_array_equal(y, np.full(64, sum(range(64))))


def test_out_of_bounds_accesses_name_kernel_instruction_and_address():
    ptx = kernel(
        "int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) y[i] = 2.0f * x[i];",
        "const float* x, float* y, int n",
        name="twice",
    )
    x, y = np.ones(10, np.float32), np.zeros(12, np.float32)
    with pytest.raises(
        MemoryFault,
        match=r"twice: block 0 thread 10 out-of-bounds access of 4 bytes at address "
        r"0x[0-9a-f]+ \(byte 40 of argument 0 \(float32\[10\]\).*`ld.global",
    ):
        launch(ptx, "twice", 1, 32, [x, y, np.int32(12)])
    launch(ptx, "twice", 1, 32, [x, y, np.int32(10)])
    np.testing.assert_array_equal(y, [2.0] * 10 + [0.0] * 2)


@pytest.mark.parametrize(
    "args, message",
    [
        ([np.zeros(4, np.float32), np.float64(1.0)], "float64 for a .f32 parameter"),
        ([np.zeros(4, np.float32), 1.0], "float for a .f32 parameter"),
        ([np.zeros(4, np.float32)], "1 arguments for 2 parameters"),
        ([np.zeros((4, 4), np.float32)[:, 0], np.float32(1.0)], "not C-contiguous"),
        ([np.float32(1.0), np.float32(1.0)], "float32 for a .u64 parameter"),
    ],
)
def test_arguments_must_match_the_parameters_exactly(args, message):
    ptx = kernel("y[threadIdx.x] = a;", "float* y, float a")
    with pytest.raises(EmulationError, match=message):
        launch(ptx, "k", 1, 4, args)


def test_instructions_it_does_not_model_are_refused_by_name():
    ptx = kernel("atomicAdd(y, 1.0f);", "float* y")
    with pytest.raises(UnsupportedInstruction, match="atom"):
        launch(ptx, "k", 1, 4, [np.zeros(1, np.float32)])


def test_an_unknown_kernel_name_lists_the_entries():
    with pytest.raises(Exception, match=r"no kernel named 'nope' in the PTX \(entries: k\)"):
        launch(kernel("y[0] = 1.0f;", "float* y"), "nope", 1, 1, [np.zeros(1, np.float32)])


def test_nan_and_infinity_propagate_as_on_the_gpu():
    ptx = kernel("int i = threadIdx.x; y[i] = fmaxf(x[i], 0.0f) + x[i] * 0.5f;", "const float* x, float* y")
    x = np.array([np.nan, np.inf, -np.inf, 1.0], np.float32)
    y = np.zeros(4, np.float32)
    launch(ptx, "k", 1, 4, [x, y])
    np.testing.assert_array_equal(y, [np.nan, np.inf, -np.inf, 1.5])  # fmaxf(NaN, 0) is 0; NaN * 0.5 stays NaN


def test_shifts_by_the_width_or_more_follow_ptx():
    ptx = kernel(
        "int i = threadIdx.x; long long a = v[i]; unsigned long long u = (unsigned long long)v[i];"
        "out[4*i] = a >> s[i]; out[4*i+1] = (long long)(u >> s[i]); out[4*i+2] = a << s[i];"
        "out[4*i+3] = (long long)((unsigned)v[i] >> (s[i] & 31));",
        "const long long* v, const int* s, long long* out",
    )
    v = np.array([-(2**40) - 3, 2**40 + 5, -1, 12345], np.int64)
    s = np.array([3, 17, 63, 31], np.int32)
    out = np.zeros(16, np.int64)
    launch(ptx, "k", 1, 4, [v, s, out])
    expected = []
    for a, amount in zip(v.tolist(), s.tolist()):
        low = a % 2**64
        expected += [a >> amount, low >> amount, ((a << amount) + 2**63) % 2**64 - 2**63, (a % 2**32) >> (amount & 31)]
    expected = [(e + 2**63) % 2**64 - 2**63 for e in expected]
    np.testing.assert_array_equal(out, expected)


def test_global_races_between_threads_and_blocks_are_refused():
    neighbour = kernel(
        "int i = blockIdx.x * blockDim.x + threadIdx.x; y[i] = 1.0f; z[i] = y[(i + 1) % n];",
        "float* y, float* z, int n",
    )
    y, z = np.zeros(64, np.float32), np.zeros(64, np.float32)
    with pytest.raises(
        GlobalMemoryRace,
        match=r"k: block 0 thread 0 reads byte 4 of argument 0 .*written by "
        r"block 0 thread 1 with no barrier between",
    ):
        launch(neighbour, "k", 2, 32, [y, z, np.int32(64)])
    other_block = kernel(
        "y[blockIdx.x] = 1.0f; __syncthreads(); if (blockIdx.x == 1) z[0] = y[0];", "float* y, float* z"
    )
    with pytest.raises(GlobalMemoryRace, match=r"k: block 1 thread 0 reads byte 0 of argument 0 .*written by block 0"):
        launch(other_block, "k", 2, 1, [np.zeros(2, np.float32), np.zeros(1, np.float32)])
    one_slot = kernel("y[blockIdx.x] = (float)threadIdx.x;", "float* y")
    with pytest.raises(GlobalMemoryRace, match="in the same instruction as another thread"):
        launch(one_slot, "k", 1, 32, [np.zeros(1, np.float32)])


def test_a_barrier_orders_global_memory_within_a_block():
    ptx = kernel(
        "int i = threadIdx.x; y[i] = (float)i; __syncthreads(); z[i] = y[(i + 1) % blockDim.x];", "float* y, float* z"
    )
    y, z = np.zeros(32, np.float32), np.zeros(32, np.float32)
    launch(ptx, "k", 1, 32, [y, z])
    np.testing.assert_array_equal(z, np.roll(np.arange(32, dtype=np.float32), -1))
