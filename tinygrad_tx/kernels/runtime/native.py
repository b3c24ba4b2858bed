"""The few machine operations the compiled loops need that numba does not offer, as numba intrinsics.

- ``sgemm``: call the BLAS sgemm found at an address (openblas.sgemm_address), row-major, on raw
  pointers; attention calls it per head and the team (team.py) per block of a GEMM.
- Atomic load, store, add and compare-and-swap on an int64 array slot, and the CPU's spin-wait hint
  (``pause``): the team's threads hand work to each other through them, without the interpreter.
- ``call_block``: call a compiled block function (a numba ``cfunc``) at an address.
- ``float32_view``: an array over memory given by address, shape and strides, and
  ``pointer_to`` for ``numba.carray`` over contiguous memory, so a block function can rebuild the
  arrays its caller packed into integers.

Addresses travel as int64 arguments, never as constants, so numba can cache the loops on disk.
Importing this module imports numba; kernels that use it are imported lazily.
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

_ROW_MAJOR = 101  # CBLAS enum values
PLAIN, TRANSPOSED = 111, 112
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")


@intrinsic
def sgemm(typing_context, address, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """C = alpha op(A) op(B) + beta C through the ILP64 cblas_sgemm at ``address`` (row-major); a, b
    and c are the matrices' addresses (int64), trans_* PLAIN or TRANSPOSED, sizes int64, alpha and
    beta float32."""

    def codegen(context, builder, signature, args):
        i32, i64, f32 = ir.IntType(32), ir.IntType(64), ir.FloatType()
        pointer = f32.as_pointer()
        function_type = ir.FunctionType(
            ir.VoidType(), [i32, i32, i32, i64, i64, i64, f32, pointer, i64, pointer, i64, f32, pointer, i64]
        )
        function = builder.inttoptr(args[0], function_type.as_pointer())
        matrices = {7: None, 9: None, 12: None}
        values = [i32(_ROW_MAJOR), builder.trunc(args[1], i32), builder.trunc(args[2], i32)] + list(args[3:])
        for index in matrices:
            values[index] = builder.inttoptr(args[index], pointer)
        builder.call(function, values)
        return context.get_dummy_value()

    return types.void(address, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), codegen


def _slot(context, builder, signature, args):
    """Pointer to element args[1] of the 1-D int64 array args[0]."""
    array = context.make_array(signature.args[0])(context, builder, args[0])
    return builder.gep(array.data, [args[1]])


@intrinsic
def atomic_load(typing_context, state, index):
    """state[index], read with acquire ordering (and re-read on every call: never hoisted out of a loop)."""

    def codegen(context, builder, signature, args):
        return builder.load_atomic(_slot(context, builder, signature, args), "acquire", 8)

    return types.int64(state, index), codegen


@intrinsic
def atomic_store(typing_context, state, index, value):
    """state[index] = value with release ordering: writes before it are seen by whoever reads it."""

    def codegen(context, builder, signature, args):
        builder.store_atomic(args[2], _slot(context, builder, signature, args), "release", 8)
        return context.get_dummy_value()

    return types.void(state, index, value), codegen


@intrinsic
def atomic_add(typing_context, state, index, value):
    """state[index] += value atomically; returns the old value."""

    def codegen(context, builder, signature, args):
        return builder.atomic_rmw("add", _slot(context, builder, signature, args), args[2], "acq_rel")

    return types.int64(state, index, value), codegen


@intrinsic
def compare_and_swap(typing_context, state, index, expected, value):
    """If state[index] == expected, set it to value; True when this call made the change."""

    def codegen(context, builder, signature, args):
        result = builder.cmpxchg(_slot(context, builder, signature, args), args[2], args[3], "acq_rel", "acquire")
        return builder.extract_value(result, 1)

    return types.boolean(state, index, expected, value), codegen


@intrinsic
def pause(typing_context):
    """The x86 spin-wait hint (frees the core's pipeline for its sibling hyperthread); nothing elsewhere."""

    def codegen(context, builder, signature, args):
        if _X86:
            function = builder.module.declare_intrinsic("llvm.x86.sse2.pause", fnty=ir.FunctionType(ir.VoidType(), []))
            builder.call(function, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def call_block(typing_context, address, arguments, block):
    """Call the ``void(int64 arguments, int64 block)`` function at ``address``."""

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        function_type = ir.FunctionType(ir.VoidType(), [i64, i64])
        builder.call(builder.inttoptr(args[0], function_type.as_pointer()), [args[1], args[2]])
        return context.get_dummy_value()

    return types.void(address, arguments, block), codegen


def _view(dtype):
    @intrinsic
    def view(typing_context, address, shape, strides):
        array_type = types.Array(dtype, len(shape), "A")

        def codegen(context, builder, signature, args):
            array = context.make_array(array_type)(context, builder)
            data = builder.inttoptr(args[0], context.get_data_type(dtype).as_pointer())
            populate_array(
                array,
                data=data,
                shape=cgutils.unpack_tuple(builder, args[1]),
                strides=cgutils.unpack_tuple(builder, args[2]),
                itemsize=context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(dtype))),
                meminfo=None,
            )
            return array._getvalue()

        return array_type(address, shape, strides), codegen

    return view


float32_view = _view(types.float32)  # (address, shape tuple, byte-strides tuple) -> float32 array view


def _pointer(dtype):
    @intrinsic
    def pointer(typing_context, address):
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_data_type(dtype).as_pointer())

        return types.CPointer(dtype)(address), codegen

    return pointer


float32_pointer = _pointer(types.float32)  # for numba.carray(float32_pointer(address), shape): C-order arrays
float64_pointer = _pointer(types.float64)
int64_pointer = _pointer(types.int64)
boolean_pointer = _pointer(types.boolean)
