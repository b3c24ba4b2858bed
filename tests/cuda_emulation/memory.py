"""Global and shared memory of an emulated launch, every access checked.

Global memory is the launch's NumPy arrays themselves, addressed by their real host addresses (the
pointer a kernel receives is ``array.ctypes.data``), so a kernel writes its outputs in place. Every
load and store must fall inside one argument array and be naturally aligned; anything else raises
``MemoryFault`` naming the kernel, the instruction, the thread and where the address lies. Each byte
written also remembers its writer: reading or writing it from another thread raises
``GlobalMemoryRace`` unless both threads are in one block with a ``bar.sync`` between (threads of
different blocks cannot synchronise within a launch). A read followed by another thread's write is not
checked in global memory.

Shared memory is one byte array per block. Between two barriers of a block each byte remembers its
writer and its reader(s); a thread touching a byte that another thread wrote, or writing a byte that
another thread read or wrote, since the last ``bar.sync`` raises ``SharedMemoryRace`` (real hardware
would make the result depend on warp scheduling). Reading a byte never written in the launch raises
too (the GPU would return garbage).
"""

import numpy as np

UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


class EmulationError(Exception):
    """A launch the emulator refuses: what a real GPU would do wrongly, or could not run."""


class MemoryFault(EmulationError):
    """Out-of-bounds or misaligned global/shared access."""


class SharedMemoryRace(EmulationError):
    """Two threads of a block touched one shared byte, at least one writing, with no barrier between."""


class GlobalMemoryRace(EmulationError):
    """A thread read or wrote a global byte another thread wrote, with no barrier of one block between."""


class GlobalMemory:
    """The argument arrays, found by address, with each written byte's last writer."""

    def __init__(self):
        self.buffers = []  # (base address, byte view, description)
        self.writers = {}  # buffer index -> (block, thread, block's barrier epoch) per byte, made on first write

    def register(self, array: np.ndarray, description: str) -> int:
        if not array.flags.c_contiguous:
            raise EmulationError(f"{description}: array is not C-contiguous (a kernel sees raw memory)")
        base = array.ctypes.data
        self.buffers.append((base, array.reshape(-1).view(np.uint8), description))
        return base

    def describe(self, address: int) -> str:
        for base, view, description in self.buffers:
            if base - 64 <= address < base + view.size + 4096:
                where = address - base
                if where < 0:
                    return f"{-where} bytes before {description}"
                return f"byte {where} of {description} ({view.size} bytes)"
        return "in no argument array"

    def _locate(self, addresses: np.ndarray, width: int, fault):
        """Per address: index of a buffer holding [address, address + width), or raise via ``fault``.

        Arguments may alias (cuda/layer_norm.py passes x again for an absent weight), so every buffer is tried."""
        owner = np.full(addresses.shape, -1, dtype=np.int64)
        for index, (base, view, _) in enumerate(self.buffers):
            inside = (addresses >= np.uint64(base)) & (addresses + np.uint64(width) <= np.uint64(base + view.size))
            owner[inside & (owner < 0)] = index
        inside = owner >= 0
        if not inside.all():
            bad = int(np.flatnonzero(~inside)[0])
            fault(
                bad,
                f"out-of-bounds access of {width} bytes at address {int(addresses[bad]):#x} "
                f"({self.describe(int(addresses[bad]))})",
            )
        misaligned = addresses % np.uint64(width) != 0
        if misaligned.any():
            bad = int(np.flatnonzero(misaligned)[0])
            fault(bad, f"misaligned {width}-byte access at address {int(addresses[bad]):#x}")
        return owner

    def load(self, addresses: np.ndarray, width: int, who: tuple, fault) -> np.ndarray:
        """``who``: (block id, thread in block, that block's barrier epoch) of each accessing thread."""
        owner = self._locate(addresses, width, fault)
        bits = np.empty(addresses.shape, dtype=np.uint64)
        for index in np.unique(owner):
            base, view, _ = self.buffers[index]
            chosen = owner == index
            offsets = (addresses[chosen] - np.uint64(base)).astype(np.int64)
            self._check_writers(index, offsets, width, [w[chosen] for w in who], "reads", fault, chosen)
            bits[chosen] = self._words(view, base, width, offsets)
        return bits

    def store(self, addresses: np.ndarray, width: int, bits: np.ndarray, who: tuple, fault) -> None:
        owner = self._locate(addresses, width, fault)
        bits = np.broadcast_to(bits, addresses.shape)
        for index in np.unique(owner):
            base, view, _ = self.buffers[index]
            chosen = owner == index
            offsets = (addresses[chosen] - np.uint64(base)).astype(np.int64)
            self._check_writers(index, offsets, width, [w[chosen] for w in who], "writes", fault, chosen)
            values = bits[chosen].astype(UINT[width])
            if base % width == 0:
                view[: view.size - view.size % width].view(UINT[width])[offsets // width] = values
            else:
                view[offsets[:, None] + np.arange(width)] = values.view(np.uint8).reshape(-1, width)

    def _check_writers(self, index, offsets, width, who, verb, fault, chosen) -> None:
        block, thread, epoch = (w[:, None] for w in who)
        cells = offsets[:, None] + np.arange(width)
        recorded = self.writers.get(index)
        if recorded is None and verb == "writes":
            size = self.buffers[index][1].size
            recorded = self.writers[index] = tuple(np.full(size, -1, dtype=np.int64) for _ in range(3))
        if recorded is not None:
            writer_block, writer, writer_epoch = (r[cells] for r in recorded)
            another_block = (writer_block >= 0) & (writer_block != block)
            raced = another_block | ((writer_block == block) & (writer != thread) & (writer_epoch == epoch))
            if raced.any():
                row = int(np.flatnonzero(raced.any(axis=1))[0])
                column = int(np.flatnonzero(raced[row])[0])
                fault(
                    int(np.flatnonzero(chosen)[row]),
                    f"{verb} {self.describe(int(self.buffers[index][0] + cells[row, 0]))}, written by block "
                    f"{int(writer_block[row, column])} thread {int(writer[row, column])} with no barrier between "
                    f"(a data race)",
                    GlobalMemoryRace,
                )
        if verb == "writes":
            flat = cells.reshape(-1)
            unique, counts = np.unique(flat, return_counts=True)
            if (counts > 1).any():
                row = int(np.flatnonzero((cells == unique[counts > 1][0]).any(axis=1))[1])
                where = self.describe(int(self.buffers[index][0] + cells[row, 0]))
                fault(
                    int(np.flatnonzero(chosen)[row]),
                    f"writes {where} in the same instruction as another thread (a data race)",
                    GlobalMemoryRace,
                )
            for record, value in zip(recorded, (block, thread, epoch)):
                record[flat] = np.broadcast_to(value, cells.shape).reshape(-1)

    @staticmethod
    def _words(view, base, width, offsets):
        if base % width == 0:
            return view[: view.size - view.size % width].view(UINT[width])[offsets // width]
        return view[offsets[:, None] + np.arange(width)].copy().view(UINT[width]).reshape(-1)


class SharedMemory:
    """Shared memory of ``blocks`` blocks of ``size`` bytes, with the race check."""

    NOBODY = -1

    def __init__(self, blocks: int, size: int):
        self.size = size
        self.data = np.zeros(blocks * size, dtype=np.uint8)
        self.written = np.zeros(blocks * size, dtype=bool)
        self.writer = np.full(blocks * size, self.NOBODY, dtype=np.int32)
        self.write_epoch = np.full(blocks * size, -1, dtype=np.int64)
        self.reader = np.full(blocks * size, self.NOBODY, dtype=np.int32)
        self.read_epoch = np.full(blocks * size, -1, dtype=np.int64)
        self.many_readers = np.zeros(blocks * size, dtype=bool)
        self.epoch = np.zeros(blocks, dtype=np.int64)  # barriers passed, per block

    def barrier(self, blocks: np.ndarray) -> None:
        self.epoch[blocks] += 1

    def _bytes(self, block, offsets, width, fault):
        offsets = offsets.astype(np.int64)
        outside = (offsets < 0) | (offsets + width > self.size)
        if outside.any():
            bad = int(np.flatnonzero(outside)[0])
            fault(
                bad,
                f"shared-memory access of {width} bytes at offset {int(offsets[bad])} outside the "
                f"block's {self.size} bytes",
            )
        if (offsets % width != 0).any():
            bad = int(np.flatnonzero(offsets % width != 0)[0])
            fault(bad, f"misaligned {width}-byte shared-memory access at offset {int(offsets[bad])}")
        return block[:, None] * self.size + offsets[:, None] + np.arange(width)

    def load(self, block, thread, offsets, width, fault) -> np.ndarray:
        cells = self._bytes(block, offsets, width, fault)
        current = self.epoch[block][:, None]
        raced = (self.write_epoch[cells] == current) & (self.writer[cells] != thread[:, None])
        self._raise_race(raced, cells, thread, "reads", fault)
        unwritten = ~self.written[cells]
        if unwritten.any():
            bad = int(np.flatnonzero(unwritten.any(axis=1))[0])
            fault(bad, f"reads shared byte {int(cells[bad, 0]) % self.size} that no thread of the block wrote")
        self._note_readers(cells.reshape(-1), np.repeat(thread, width), np.repeat(current[:, 0], width))
        return self.data[cells].copy().view(UINT[width]).reshape(-1).astype(np.uint64)

    def store(self, block, thread, offsets, width, bits, fault) -> None:
        cells = self._bytes(block, offsets, width, fault)
        current = self.epoch[block][:, None]
        raced = (self.write_epoch[cells] == current) & (self.writer[cells] != thread[:, None])
        read_by_other = self.many_readers[cells] | (self.reader[cells] != thread[:, None])
        raced |= (self.read_epoch[cells] == current) & read_by_other
        self._raise_race(raced, cells, thread, "writes", fault)
        flat = cells.reshape(-1)
        unique, counts = np.unique(flat, return_counts=True)
        if (counts > 1).any():
            cell = unique[counts > 1][0]
            writers = np.unique(np.repeat(thread, width)[flat == cell])
            if writers.size > 1:
                fault(
                    int(np.flatnonzero((cells == cell).any(axis=1))[1]),
                    f"writes shared byte {int(cell) % self.size} in the same instruction as thread "
                    f"{int(writers[0])} (write-write race)",
                    SharedMemoryRace,
                )
        values = np.broadcast_to(bits, offsets.shape).astype(UINT[width])
        self.data[cells] = values.view(np.uint8).reshape(-1, width)
        self.written[flat] = True
        self.writer[flat] = np.repeat(thread, width)
        self.write_epoch[flat] = np.repeat(current[:, 0], width)

    def _note_readers(self, cells, threads, epochs):
        order = np.argsort(cells, kind="stable")
        cells, threads, epochs = cells[order], threads[order], epochs[order]
        starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
        unique = cells[starts]
        several = np.minimum.reduceat(threads, starts) != np.maximum.reduceat(threads, starts)
        reader = threads[starts]
        fresh = self.read_epoch[unique] != epochs[starts]
        already_other = ~fresh & (self.many_readers[unique] | (self.reader[unique] != reader))
        self.many_readers[unique] = several | already_other
        self.reader[unique] = np.where(fresh, reader, self.reader[unique])
        self.read_epoch[unique] = epochs[starts]

    def _raise_race(self, raced, cells, thread, verb, fault):
        if raced.any():
            row = int(np.flatnonzero(raced.any(axis=1))[0])
            cell = int(cells[row][raced[row]][0])
            other = (
                self.writer[cell]
                if self.write_epoch[cell] == self.epoch[cell // self.size] and self.writer[cell] != thread[row]
                else self.reader[cell]
            )
            fault(
                row,
                f"{verb} shared byte {cell % self.size} touched by thread {int(other)} since the last "
                f"barrier (race: missing __syncthreads?)",
                SharedMemoryRace,
            )
