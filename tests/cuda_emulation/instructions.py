"""The PTX instructions the interpreter models, each vectorised over the acting threads.

Registers hold raw bits in uint64 arrays; an instruction reads its operands as its PTX type
(``f32`` reads the low 32 bits as float32, ``s64`` the 64 bits as int64, ...), computes with NumPy in
that type (integer arithmetic wraps as on the GPU) and writes the bits back. Floating-point rounding
follows ``rounding.py``. A modifier the handlers do not understand raises ``UnsupportedInstruction``
rather than being ignored.
"""

import re

import numpy as np

from . import rounding
from .memory import EmulationError
from .operands import DTYPE, read, to_bits, unsupported, write

ROUNDING = ("rn", "rz", "rm", "rp")


def _float_in(machine, instruction, threads, tokens, ptx_type):
    values = [read(machine, t, threads, ptx_type) for t in tokens]
    if ptx_type == "f32" and "ftz" in instruction.modifiers:
        values = [rounding.ftz32(v) for v in values]
    return values


def _float_out(machine, instruction, threads, result, ptx_type):
    result = np.asarray(result, dtype=DTYPE[ptx_type])
    if "sat" in instruction.modifiers:  # clamp to [0, 1], NaN to 0
        result = np.where(np.isnan(result), 0, np.clip(result, 0, 1)).astype(result.dtype)
    if ptx_type == "f32" and "ftz" in instruction.modifiers:
        result = rounding.ftz32(result)
    write(machine, instruction.operands[0], threads, result, ptx_type)


def _mode(instruction, default="rn"):
    return next((m for m in instruction.modifiers if m in ROUNDING), default)


def _shift(values, amounts, width, right):
    """PTX shifts: amounts of ``width`` or more give 0, or all sign bits for an arithmetic right shift."""
    values = np.asarray(values)
    amounts = np.asarray(amounts).astype(np.uint64)
    clipped = np.minimum(amounts, width - 1).astype(values.dtype)
    if right:  # arithmetic for signed types (NumPy's >> on signed integers), logical otherwise
        return np.where(amounts >= width, values >> (width - 1) if values.dtype.kind == "i" else 0, values >> clipped)
    return np.where(amounts >= width, 0, values << clipped).astype(values.dtype)


def _high_64(a, b, signed):
    """The high 64 bits of the 128-bit product (NVRTC divides by constants with mul.hi.s64)."""
    a_bits, b_bits = (np.asarray(v).astype(np.int64 if signed else np.uint64).view(np.uint64) for v in (a, b))
    low_mask, shift = np.uint64(0xFFFFFFFF), np.uint64(32)
    a_low, a_high, b_low, b_high = a_bits & low_mask, a_bits >> shift, b_bits & low_mask, b_bits >> shift
    cross_1, cross_2 = a_high * b_low, a_low * b_high
    carry = ((a_low * b_low) >> shift) + (cross_1 & low_mask) + (cross_2 & low_mask)
    high = a_high * b_high + (cross_1 >> shift) + (cross_2 >> shift) + (carry >> shift)
    if signed:  # two's complement: subtract b where a < 0 and a where b < 0 (mod 2**64)
        high = (
            high - np.where(a_bits >> np.uint64(63) == 1, b_bits, 0) - np.where(b_bits >> np.uint64(63) == 1, a_bits, 0)
        )
        return high.astype(np.uint64).view(np.int64)
    return high


def arithmetic(machine, instruction, threads):
    """add sub mul mad fma div rem min max neg abs and or xor not shl shr sqrt rcp ex2 lg2 rsqrt."""
    op, ptx_type, mods = instruction.opcode, instruction.type, instruction.modifiers
    sources = instruction.operands[1:]
    if ptx_type in ("f32", "f64"):
        return _float_arithmetic(machine, instruction, threads, op, ptx_type, sources)
    if {"cc", "sat"} & set(mods):
        unsupported(machine, instruction, "carry or saturating integer arithmetic")
    width = int(ptx_type[1:]) if ptx_type != "pred" else 1
    values = [read(machine, t, threads, ptx_type) for t in sources]
    if op in ("shl", "shr"):
        values[1] = read(machine, sources[1], threads, "u32")
    with np.errstate(over="ignore"):
        if op in ("mul", "mad") and "wide" in mods:
            wide = {"s16": "s32", "u16": "u32", "s32": "s64", "u32": "u64"}[ptx_type]
            product = values[0].astype(DTYPE[wide]) * np.asarray(values[1]).astype(DTYPE[wide])
            result = product + (np.asarray(values[2]).astype(DTYPE[wide]) if op == "mad" else 0)
            return write(machine, instruction.operands[0], threads, result, wide)
        if op in ("mul", "mad") and "hi" in mods:
            if width == 64:
                result = _high_64(values[0], values[1], signed=ptx_type[0] == "s")
            else:
                wide = DTYPE[("s" if ptx_type[0] == "s" else "u") + "64"]
                result = (np.asarray(values[0]).astype(wide) * np.asarray(values[1]).astype(wide)) >> width
            result = result + (values[2] if op == "mad" else 0)
        elif op == "add":
            result = values[0] + values[1]
        elif op == "sub":
            result = values[0] - values[1]
        elif op == "mul":
            result = values[0] * values[1]
        elif op == "mad":
            result = values[0] * values[1] + values[2]
        elif op in ("div", "rem"):
            numerator, denominator = (
                np.asarray(v).astype(np.int64 if ptx_type[0] == "s" else np.uint64) for v in values
            )
            if (np.asarray(denominator) == 0).any():
                raise EmulationError(f"{machine.kernel.name}: integer division by zero in `{instruction.text.strip()}`")
            quotient = (
                np.abs(numerator) // np.abs(denominator) * np.sign(numerator) * np.sign(denominator)
                if ptx_type[0] == "s"
                else numerator // denominator
            )
            result = quotient if op == "div" else numerator - quotient * denominator
        elif op in ("min", "max"):
            result = (np.minimum if op == "min" else np.maximum)(values[0], values[1])
        elif op == "neg":
            result = -values[0]
        elif op == "abs":
            result = np.abs(values[0])
        elif op in ("and", "or", "xor"):
            result = {"and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor}[op](values[0], values[1])
        elif op == "not":
            result = ~values[0]
        elif op == "shl":
            result = _shift(values[0], values[1], width, right=False)
        elif op == "shr":
            result = _shift(values[0], values[1], width, right=True)
        else:
            unsupported(machine, instruction)
    write(machine, instruction.operands[0], threads, result, ptx_type)


def _float_arithmetic(machine, instruction, threads, op, ptx_type, sources):
    mods, mode = instruction.modifiers, _mode(instruction)
    values = _float_in(machine, instruction, threads, sources, ptx_type)
    approx = "approx" in mods
    with np.errstate(all="ignore"):
        if op in ("add", "sub", "mul", "fma", "mad"):
            name = "fma" if op == "mad" else op
            if ptx_type == "f32":
                result = rounding.f32_arith(name, values, mode)
            elif mode != "rn":
                unsupported(machine, instruction, "directed rounding in float64")
            elif name == "fma":
                result = rounding.fma_f64(*values)
            else:
                result = {"add": np.add, "sub": np.subtract, "mul": np.multiply}[name](values[0], values[1])
        elif op == "neg":
            result = -values[0]
        elif op == "abs":
            result = np.abs(values[0])
        elif op in ("min", "max"):
            result = (np.fmin if op == "min" else np.fmax)(values[0], values[1])  # PTX: NaN loses to a number
        elif op in ("div", "rcp", "sqrt", "rsqrt", "ex2", "lg2"):
            if mode != "rn" and not approx and "full" not in mods:
                unsupported(machine, instruction, "directed rounding")
            wide = [np.asarray(v, dtype=np.float64) for v in values]
            result = {
                "div": lambda: wide[0] / wide[1],
                "rcp": lambda: 1.0 / wide[0],
                "sqrt": lambda: np.sqrt(wide[0]),
                "rsqrt": lambda: 1.0 / np.sqrt(wide[0]),
                "ex2": lambda: np.exp2(wide[0]),
                "lg2": lambda: np.log2(wide[0]),
            }[op]()
        else:
            unsupported(machine, instruction)
        result = np.asarray(result).astype(DTYPE[ptx_type])  # float32 ops computed wider round here, once
    _float_out(machine, instruction, threads, result, ptx_type)


def set_predicate(machine, instruction, threads):
    comparison, ptx_type = instruction.modifiers[0], instruction.type
    if "|" in instruction.operands[0] or len(instruction.operands) != 3:
        unsupported(machine, instruction, "paired or combined predicates")
    a, b = (read(machine, t, threads, ptx_type) for t in instruction.operands[1:])
    if ptx_type in ("f32", "f64"):
        if ptx_type == "f32" and "ftz" in instruction.modifiers:
            a, b = rounding.ftz32(a), rounding.ftz32(b)
        unordered = np.isnan(a) | np.isnan(b)
        base = comparison.rstrip("u") if comparison not in ("num", "nan") else comparison
        ordered = {
            "eq": lambda: a == b,
            "ne": lambda: (a != b) & ~unordered,
            "lt": lambda: a < b,
            "le": lambda: a <= b,
            "gt": lambda: a > b,
            "ge": lambda: a >= b,
            "num": lambda: ~unordered,
            "nan": lambda: unordered,
        }[base]()
        result = ordered | unordered if comparison.endswith("u") and comparison != "nan" else ordered
    else:
        result = {
            "eq": np.equal,
            "ne": np.not_equal,
            "lt": np.less,
            "le": np.less_equal,
            "gt": np.greater,
            "ge": np.greater_equal,
            "lo": np.less,
            "ls": np.less_equal,
            "hi": np.greater,
            "hs": np.greater_equal,
        }[comparison](a, b)
    write(machine, instruction.operands[0], threads, np.broadcast_to(result, _count(machine, threads)), "pred")


def _count(machine, threads):
    return (machine.size,) if isinstance(threads, slice) else threads.shape


def select(machine, instruction, threads):
    destination, a, b, guard = instruction.operands
    ptx_type = instruction.type
    chosen = np.where(
        read(machine, guard, threads, "pred"), read(machine, a, threads, ptx_type), read(machine, b, threads, ptx_type)
    )
    write(machine, destination, threads, np.broadcast_to(chosen, _count(machine, threads)), ptx_type)


def move(machine, instruction, threads):
    destination, source = instruction.operands
    ptx_type = instruction.type
    width = np.dtype(DTYPE[ptx_type]).itemsize * 8
    if destination.startswith("{"):  # unpack: mov.b64 {lo, hi}, %fd
        parts = [p.strip() for p in destination.strip("{}").split(",")]
        bits = read(machine, source, threads, ptx_type).astype(np.uint64)
        piece = width // len(parts)
        for number, part in enumerate(parts):
            value = (bits >> np.uint64(piece * number)) & np.uint64((1 << piece) - 1)
            write(machine, part, threads, np.broadcast_to(value, _count(machine, threads)), f"b{piece}")
        return
    if source.startswith("{"):  # pack: mov.b64 %fd, {lo, hi}
        parts = [p.strip() for p in source.strip("{}").split(",")]
        piece = width // len(parts)
        bits = np.zeros(_count(machine, threads), dtype=np.uint64)
        for number, part in enumerate(parts):
            bits |= read(machine, part, threads, f"b{piece}").astype(np.uint64) << np.uint64(piece * number)
        machine.register(destination)[threads] = bits
        return
    value = read(machine, source, threads, ptx_type)
    write(machine, destination, threads, np.broadcast_to(value, _count(machine, threads)), ptx_type)


def convert(machine, instruction, threads):
    destination_type, source_type = [m for m in instruction.modifiers if m in DTYPE][-2:]
    mods = instruction.modifiers
    value = read(machine, instruction.operands[1], threads, source_type)
    if source_type == "f32" and "ftz" in mods:
        value = rounding.ftz32(value)
    with np.errstate(all="ignore"):
        if destination_type[0] == "f":
            if source_type[0] == "f" and any(m in mods for m in ("rni", "rzi", "rmi", "rpi")):
                integral = next(m for m in mods if m in ("rni", "rzi", "rmi", "rpi"))
                value = {"rni": np.rint, "rzi": np.trunc, "rmi": np.floor, "rpi": np.ceil}[integral](value)
            elif _mode(instruction) != "rn":
                unsupported(machine, instruction, "directed rounding")
            result = np.asarray(value).astype(DTYPE[destination_type])  # NumPy casts round to nearest-even
            if "sat" in mods:
                result = np.where(np.isnan(result), 0, np.clip(result, 0, 1)).astype(result.dtype)
            if destination_type == "f32" and "ftz" in mods:
                result = rounding.ftz32(result)
        elif source_type[0] == "f":
            integral = next((m for m in mods if m in ("rni", "rzi", "rmi", "rpi")), None)
            if integral is None:
                unsupported(machine, instruction)
            rounded = {"rni": np.rint, "rzi": np.trunc, "rmi": np.floor, "rpi": np.ceil}[integral](
                np.asarray(value, dtype=np.float64)
            )
            info = np.iinfo(DTYPE[destination_type])  # PTX saturates float -> integer; NaN gives 0
            saturated = np.where(np.isnan(rounded), 0, np.clip(rounded, info.min, info.max))
            result = saturated.astype(DTYPE[destination_type])
        else:
            result = np.asarray(value).astype(DTYPE[destination_type])  # integer: sign/zero extend or truncate
    result = np.broadcast_to(result, _count(machine, threads))
    write(machine, instruction.operands[0], threads, result, destination_type)


def cvta(machine, instruction, threads):
    if "shared" in instruction.modifiers and "to" not in instruction.modifiers:
        unsupported(machine, instruction, "generic addressing of shared memory")
    move(machine, instruction, threads)


def _address(machine, token, threads):
    """[base+offset] -> ('param', name, offset) or (space-relative uint64 addresses)."""
    inner = token.strip()[1:-1].replace(" ", "")
    match = re.fullmatch(r"([%\w$.]+)(?:([+-])(\d+|0x[0-9a-fA-F]+))?", inner)
    base, sign, offset = match.groups()
    offset = (int(offset, 0) if offset else 0) * (-1 if sign == "-" else 1)
    if base in machine.params:
        return base, offset
    if base in machine.kernel.shared:
        start = machine.kernel.shared[base][0] + offset
        return None, np.full(_count(machine, threads), start, dtype=np.uint64)
    addresses = read(machine, base, threads, "u64").astype(np.uint64) + np.uint64(offset % (1 << 64))
    return None, np.broadcast_to(addresses, _count(machine, threads))


def load_store(machine, instruction, threads):
    space = next((m for m in instruction.modifiers if m in ("global", "shared", "param", "local", "const")), None)
    if space not in ("global", "shared", "param") or any(
        m.startswith("v") and m[1:].isdigit() for m in instruction.modifiers
    ):
        unsupported(machine, instruction, f"{space or 'generic'} space or vector access")
    ptx_type = instruction.type
    width = np.dtype(DTYPE[ptx_type]).itemsize
    storing = instruction.opcode == "st"
    target, value_token = instruction.operands if storing else instruction.operands[::-1]
    param, addresses = _address(machine, target, threads)
    fault = machine.fault(instruction, threads)
    if space == "param":
        raw = machine.params[param][addresses : addresses + width]
        write(
            machine,
            value_token,
            threads,
            np.broadcast_to(raw.view(DTYPE[ptx_type])[0], _count(machine, threads)),
            ptx_type,
        )
        return
    if space == "global":
        who = machine.accessors(threads)
        if storing:
            machine.memory.store(
                addresses, width, to_bits(read(machine, value_token, threads, ptx_type), ptx_type), who, fault
            )
        else:
            machine.register(value_token)[threads] = machine.memory.load(addresses, width, who, fault)
        return
    block, thread = machine.block_slot[threads], machine.thread_in_block[threads]
    if storing:
        machine.shared.store(
            block, thread, addresses, width, to_bits(read(machine, value_token, threads, ptx_type), ptx_type), fault
        )
    else:
        machine.register(value_token)[threads] = machine.shared.load(block, thread, addresses, width, fault)


HANDLERS = {
    op: arithmetic
    for op in (
        "add",
        "sub",
        "mul",
        "mad",
        "fma",
        "div",
        "rem",
        "min",
        "max",
        "neg",
        "abs",
        "and",
        "or",
        "xor",
        "not",
        "shl",
        "shr",
        "sqrt",
        "rcp",
        "rsqrt",
        "ex2",
        "lg2",
    )
}
HANDLERS.update(setp=set_predicate, selp=select, mov=move, cvt=convert, cvta=cvta, ld=load_store, st=load_store)
