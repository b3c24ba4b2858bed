"""Operands of a PTX instruction: registers hold raw bits in uint64 arrays, read and written as a PTX type.

``read`` turns a register, special register, shared-variable address or immediate into values of the
instruction's type for the acting threads; ``write`` stores values back as bits.
"""

import re

import numpy as np

from .memory import EmulationError

DTYPE = {
    "f32": np.float32,
    "f64": np.float64,
    "s8": np.int8,
    "s16": np.int16,
    "s32": np.int32,
    "s64": np.int64,
    "u8": np.uint8,
    "u16": np.uint16,
    "u32": np.uint32,
    "u64": np.uint64,
    "b8": np.uint8,
    "b16": np.uint16,
    "b32": np.uint32,
    "b64": np.uint64,
    "pred": np.bool_,
}
UNSIGNED = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


def unsupported(machine, instruction, why=""):
    from .interpreter import UnsupportedInstruction

    raise UnsupportedInstruction(
        f"{machine.kernel.name}: `{instruction.text.strip()}` (PTX line {instruction.line}) "
        f"is not modelled{': ' + why if why else ''}"
    )


def bits_to(bits, ptx_type):
    """Raw register bits -> values of ``ptx_type``."""
    if ptx_type == "pred":
        return np.asarray(bits) != 0
    width = np.dtype(DTYPE[ptx_type]).itemsize * 8
    raw = np.asarray(bits, dtype=np.uint64)
    if width < 64:
        raw = (raw & np.uint64((1 << width) - 1)).astype(UNSIGNED[width])
    return raw.view(DTYPE[ptx_type]) if raw.ndim else raw.reshape(1).view(DTYPE[ptx_type])[0]


def to_bits(values, ptx_type):
    if ptx_type == "pred":
        return np.asarray(values).astype(np.uint64)
    typed = np.asarray(values).astype(DTYPE[ptx_type])
    width = typed.dtype.itemsize * 8
    unsigned = typed.view(UNSIGNED[width]) if typed.ndim else typed.reshape(1).view(UNSIGNED[width])
    return unsigned.astype(np.uint64)


def immediate_bits(token: str) -> int:
    if token[:2] in ("0f", "0F", "0d", "0D"):  # a float's bits in hex: 0f3F800000 is 1.0f
        return int(token[2:], 16)  # noqa: FURB166 (the prefix is not Python's)
    if re.fullmatch(r"-?(0[xX][0-9a-fA-F]+|\d+)[uU]?", token):
        return int(token.rstrip("uU"), 0) & ((1 << 64) - 1)
    raise ValueError(token)


def read(machine, token: str, threads, ptx_type: str):
    """Operand ``token`` for ``threads`` as ``ptx_type`` values (an array, or a scalar for constants)."""
    if token in machine.special:
        return bits_to(machine.special[token][threads], ptx_type)
    if token.startswith("%"):
        return bits_to(machine.register(token)[threads], ptx_type)
    if token in machine.kernel.shared:
        return bits_to(np.uint64(machine.kernel.shared[token][0]), ptx_type)
    try:
        return bits_to(np.uint64(immediate_bits(token)), ptx_type)
    except ValueError:
        raise EmulationError(f"{machine.kernel.name}: operand {token!r} not understood") from None


def write(machine, token: str, threads, values, ptx_type: str) -> None:
    if token == "_":
        return
    machine.register(token)[threads] = to_bits(values, ptx_type)
