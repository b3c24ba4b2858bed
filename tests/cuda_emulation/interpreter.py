"""A PTX interpreter: run NVRTC's output for a CUDA kernel on the CPU, all threads at once.

Public entry::

    launch(ptx, kernel_name, grid, block, args, shared_bytes=0)

- ``ptx``: PTX text (``nvrtc.compile_to_ptx``); ``kernel_name``: an ``.entry`` in it.
- ``grid``, ``block``: ints or 1-3 tuples, as ``cupy.RawKernel.__call__`` takes them.
- ``args``: one per kernel parameter, in order: a C-contiguous NumPy array for a pointer parameter
  (the kernel reads and writes it in place), a NumPy scalar whose type matches the parameter exactly
  (``np.int32`` for ``int``, ``np.float32`` for ``float``, ``np.bool_`` for ``bool``; a Python number or
  a wider NumPy type is refused, since CuPy would pass bytes of another size), or a ``Struct`` for a
  by-value struct parameter (CuPy's ``CArray``/``CIndexer``; see ``elementwise.py``).
- ``shared_bytes``: the dynamic shared memory (``shared_mem`` in CuPy).

Execution: every register is a NumPy array over all threads of all blocks (``CHUNK_THREADS`` at a
time), so each PTX instruction is a handful of vectorised NumPy operations. Divergent threads are
scheduled by lowest program counter first: the group of runnable threads at the smallest PC runs one
instruction, so branches reconverge where their paths meet and loops run until every thread leaves
them. A thread at ``bar.sync`` waits (wherever the barrier sits in the code) until no thread can run;
then, block by block, every live thread must wait at that same barrier, or ``BarrierDivergence`` is
raised (a thread that exited, or waits at another barrier: __syncthreads under a non-uniform condition).
Checks: ``memory.py`` (bounds, alignment, shared-memory races, reads of unwritten shared memory,
global-memory races on written bytes); floating-point rounding: ``rounding.py``. Not modelled: warps
(warp-synchronous code, shuffles, votes), atomics, a global read followed by another thread's write,
timing; warp and atomic instructions raise ``UnsupportedInstruction``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

from . import instructions
from .memory import EmulationError, GlobalMemory, MemoryFault, SharedMemory
from .ptx import Kernel, parse_kernel

CHUNK_THREADS = 1 << 16  # threads emulated together; more blocks run in successive chunks
MAX_STEPS = 200_000  # instruction-group executions per chunk before a launch is deemed hung (~5 s)
MAX_STATIC_SHARED = 48 * 1024

_SCALAR_FOR_PARAM = {
    "f32": (np.float32,),
    "f64": (np.float64,),
    "s32": (np.int32,),
    "u32": (np.uint32, np.int32),
    "b32": (np.int32, np.uint32, np.float32),
    "s64": (np.int64,),
    "u64": (np.uint64, np.int64),
    "b64": (np.int64, np.uint64, np.float64),
    "s8": (np.int8,),
    "u8": (np.uint8, np.bool_),
    "b8": (np.bool_,),
    "s16": (np.int16,),
    "u16": (np.uint16,),
    "b16": (np.int16, np.uint16),
}


class BarrierDivergence(EmulationError):
    """Threads of one block disagree about a barrier (a __syncthreads under a non-uniform condition)."""


class UnsupportedInstruction(EmulationError):
    """The interpreter does not model this instruction."""


@dataclasses.dataclass(frozen=True)
class Struct:
    """A by-value struct argument: fields laid out in order with natural alignment.

    A NumPy array field becomes an 8-byte device pointer to the array (registered as global memory);
    a NumPy scalar field is stored with its own size.
    """

    fields: tuple

    def __init__(self, *fields):
        object.__setattr__(self, "fields", fields)

    def pack(self, memory: GlobalMemory, what: str) -> bytes:
        packed = bytearray()
        for number, field in enumerate(self.fields):
            if isinstance(field, np.ndarray):
                raw = np.uint64(memory.register(field, f"{what} field {number}")).tobytes()
            elif isinstance(field, np.generic):
                raw = field.tobytes()
            else:
                raise EmulationError(f"{what} field {number}: {type(field).__name__} (need a NumPy array or scalar)")
            packed += bytes(-len(packed) % len(raw)) + raw
        return bytes(packed + bytes(-len(packed) % 8))


def _dims(value, what: str) -> tuple:
    dims = tuple(int(v) for v in (value if isinstance(value, tuple) else (value,)))
    if not 1 <= len(dims) <= 3 or any(d < 1 for d in dims):
        raise EmulationError(f"{what} {value!r}: need 1-3 positive sizes (CUDA rejects an empty launch)")
    return dims + (1,) * (3 - len(dims))


@functools.lru_cache(maxsize=64)
def _kernel(ptx: str, name: str) -> Kernel:
    return parse_kernel(ptx, name)


def _bind_params(kernel: Kernel, args, memory: GlobalMemory) -> dict:
    if len(args) != len(kernel.params):
        raise EmulationError(f"{kernel.name}: {len(args)} arguments for {len(kernel.params)} parameters")
    values = {}
    for number, (arg, param) in enumerate(zip(args, kernel.params)):
        what = f"{kernel.name} argument {number}"
        if isinstance(arg, np.ndarray):
            if param.ptx_type not in ("u64", "b64", "s64"):
                raise EmulationError(f"{what}: array passed for a .{param.ptx_type} parameter")
            raw = np.uint64(memory.register(arg, f"argument {number} ({arg.dtype}{list(arg.shape)})")).tobytes()
        elif isinstance(arg, Struct):
            raw = arg.pack(memory, what)
            if param.ptx_type != "b8" or len(raw) != param.size:
                raise EmulationError(
                    f"{what}: struct of {len(raw)} bytes for a {param.size}-byte .{param.ptx_type} parameter"
                )
        elif isinstance(arg, np.generic) and param.ptx_type in _SCALAR_FOR_PARAM:
            if not isinstance(arg, _SCALAR_FOR_PARAM[param.ptx_type]):
                raise EmulationError(
                    f"{what}: {type(arg).__name__} for a .{param.ptx_type} parameter "
                    f"({arg.nbytes} bytes for {param.size}: the kernel would read other bytes)"
                )
            raw = arg.tobytes()
        else:
            raise EmulationError(
                f"{what}: {type(arg).__name__} for a .{param.ptx_type} parameter (pass a NumPy "
                f"array, a NumPy scalar of the parameter's type, or a Struct)"
            )
        values[param.name] = np.frombuffer(raw + bytes(8), dtype=np.uint8)
    return values


def launch(
    ptx: str, kernel_name: str, grid: int | tuple, block: int | tuple, args: Sequence, shared_bytes: int = 0
) -> None:
    """Run ``kernel_name`` from ``ptx`` over ``grid`` x ``block`` threads; arrays in ``args`` change in place."""
    kernel = _kernel(ptx, kernel_name)
    grid, block = _dims(grid, "grid"), _dims(block, "block")
    threads_per_block = block[0] * block[1] * block[2]
    if threads_per_block > 1024:
        raise EmulationError(f"{kernel_name}: block {block} has {threads_per_block} threads (CUDA allows 1024)")
    if kernel.shared_static_bytes > MAX_STATIC_SHARED:
        raise EmulationError(f"{kernel_name}: {kernel.shared_static_bytes} bytes of static shared memory")
    memory = GlobalMemory()
    params = _bind_params(kernel, args, memory)
    blocks = grid[0] * grid[1] * grid[2]
    per_chunk = max(1, CHUNK_THREADS // threads_per_block)
    for first in range(0, blocks, per_chunk):
        block_ids = np.arange(first, min(blocks, first + per_chunk))
        Machine(kernel, params, memory, grid, block, block_ids, shared_bytes).run()


class Machine:
    """The registers, program counters and memories of a chunk of blocks, and the scheduling loop."""

    def __init__(self, kernel, params, memory, grid, block, block_ids, shared_bytes):
        self.kernel, self.params, self.memory = kernel, params, memory
        per_block = block[0] * block[1] * block[2]
        self.size = len(block_ids) * per_block
        thread = np.tile(np.arange(per_block), len(block_ids))
        block_id = np.repeat(block_ids, per_block)
        self.block_slot = np.repeat(np.arange(len(block_ids)), per_block)  # chunk-local block index
        self.thread_in_block = thread
        # linear ids -> (x, y, z), x fastest, as CUDA numbers threads and blocks
        thread_xyz = np.unravel_index(thread, block[::-1])[::-1]
        block_xyz = np.unravel_index(block_id, grid[::-1])[::-1]
        self.special = {"%laneid": thread % 32}
        for axis, position in zip("xyz", range(3)):
            self.special[f"%tid.{axis}"] = thread_xyz[position]
            self.special[f"%ctaid.{axis}"] = block_xyz[position]
            self.special[f"%ntid.{axis}"] = np.full(self.size, block[position])
            self.special[f"%nctaid.{axis}"] = np.full(self.size, grid[position])
        self.special = {name: values.astype(np.uint64) for name, values in self.special.items()}
        self.block_ids = block_ids
        shared_size = kernel.shared_static_bytes + shared_bytes
        self.shared = SharedMemory(len(block_ids), shared_size)
        self.registers = {}
        self.pc = np.zeros(self.size, dtype=np.int64)  # -1: exited

    def accessors(self, threads) -> tuple:
        """(block id, thread in block, the block's barrier epoch) of ``threads``, for the global race check."""
        slot = self.block_slot[threads]
        return self.block_ids[slot], self.thread_in_block[threads], self.shared.epoch[slot]

    def register(self, name: str) -> np.ndarray:
        found = self.registers.get(name)
        if found is None:
            found = self.registers[name] = np.zeros(self.size, dtype=np.uint64)
        return found

    def fault(self, instruction, threads):
        """A callback for memory.py: raise ``cls(message)`` for the ``offender``-th thread of ``threads``."""

        def raise_fault(offender, message, cls=MemoryFault):
            which = int(np.arange(self.size)[threads][offender])
            block = int(self.block_ids[self.block_slot[which]])
            raise cls(
                f"{self.kernel.name}: block {block} thread {int(self.thread_in_block[which])} {message}; "
                f"instruction `{instruction.text.strip()}` (PTX line {instruction.line})"
            )

        return raise_fault

    def run(self) -> None:
        instructions_list, labels = self.kernel.instructions, self.kernel.labels
        everyone = np.arange(self.size)
        waiting = np.zeros(self.size, dtype=bool)  # arrived at a bar.sync, not yet released
        for _ in range(MAX_STEPS):
            runnable = (self.pc >= 0) & ~waiting
            if not runnable.any():
                if not waiting.any():
                    return
                self._release_barrier(waiting)
                continue
            pc = int(self.pc[runnable].min())
            group = runnable & (self.pc == pc)
            threads = slice(None) if group.all() else np.flatnonzero(group)
            if pc >= len(instructions_list):
                raise EmulationError(f"{self.kernel.name}: ran past the last instruction")
            instruction = instructions_list[pc]
            acting = threads
            if instruction.predicate:
                guard = self.register(instruction.predicate)[threads] != 0
                guard = ~guard if instruction.negated else guard
                acting = everyone[threads][guard]
            if instruction.opcode == "bra":
                self.pc[threads] = pc + 1
                self.pc[acting] = labels[instruction.operands[0]]
            elif instruction.opcode in ("ret", "exit"):
                self.pc[threads] = pc + 1
                self.pc[acting] = -1
            elif instruction.opcode in ("bar", "barrier"):
                if (
                    set(instruction.modifiers) - {"sync", "aligned"}
                    or len(instruction.operands) > 1
                    or instruction.predicate
                ):
                    raise UnsupportedInstruction(
                        f"{self.kernel.name}: `{instruction.text.strip()}` (PTX line "
                        f"{instruction.line}): only a plain block-wide bar.sync is modelled"
                    )
                waiting |= group  # released once every live thread of the block has arrived
            else:
                handler = instructions.HANDLERS.get(instruction.opcode)
                if handler is None:
                    raise UnsupportedInstruction(
                        f"{self.kernel.name}: `{instruction.text.strip()}` "
                        f"(PTX line {instruction.line}) is not modelled"
                    )
                if not isinstance(acting, np.ndarray) or acting.size:
                    handler(self, instruction, acting)
                self.pc[threads] = pc + 1
        raise EmulationError(f"{self.kernel.name}: still running after {MAX_STEPS} steps (endless loop?)")

    def _release_barrier(self, waiting) -> None:
        """Every live thread waits at a barrier: release them if, per block, all wait at the same one."""
        slots = np.unique(self.block_slot[waiting])
        in_those_blocks = np.isin(self.block_slot, slots)
        exited = in_those_blocks & (self.pc < 0)
        lowest = np.full(len(self.block_ids), np.iinfo(np.int64).max)
        highest = np.full(len(self.block_ids), -1)
        np.minimum.at(lowest, self.block_slot[waiting], self.pc[waiting])
        np.maximum.at(highest, self.block_slot[waiting], self.pc[waiting])
        split = in_those_blocks & waiting & (self.pc != lowest[self.block_slot])
        if exited.any() or split.any():
            which = int(np.flatnonzero(exited | split)[0])
            slot = self.block_slot[which]
            barrier = self.kernel.instructions[int(highest[slot] if exited[which] else lowest[slot])]
            state = (
                "has exited"
                if exited[which]
                else f"waits at another barrier (PTX line {self.kernel.instructions[int(self.pc[which])].line})"
            )
            raise BarrierDivergence(
                f"{self.kernel.name}: block {int(self.block_ids[slot])}: thread {int(self.thread_in_block[which])} "
                f"{state} while others wait at `{barrier.text.strip()}` (PTX line {barrier.line}): "
                f"__syncthreads under a condition that differs between threads"
            )
        self.pc[waiting] += 1
        waiting[:] = False
        self.shared.barrier(slots)
