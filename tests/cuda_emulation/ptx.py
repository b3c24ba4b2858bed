"""Parse the PTX text NVRTC emits into kernels the interpreter can run.

A ``Kernel`` holds its parameters (name, PTX type, size in bytes), its static shared variables (offset
and size inside the block's shared memory, plus the ``.extern .shared`` array that receives the
launch's dynamic shared bytes), its instructions and its labels. Only what the interpreter needs is
parsed; anything else in the body (``.reg`` declarations, ``.pragma``, scoping braces) is skipped, and
an instruction the interpreter does not know is rejected when it runs, naming the instruction.
"""

import dataclasses
import re

SCALAR_BYTES = {"8": 1, "16": 2, "32": 4, "64": 8}
TYPES = {f"{kind}{bits}" for kind in "bsuf" for bits in SCALAR_BYTES} | {"pred"}


class PTXError(Exception):
    """The PTX text does not hold what was asked for (no such entry, a construct not understood)."""


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    ptx_type: str  # u64, u32, f32, ... or b8 for a by-value struct (CuPy's CArray, CIndexer)
    size: int
    align: int


@dataclasses.dataclass(frozen=True)
class Instruction:
    opcode: str  # "add", "ld", ...
    modifiers: tuple  # the dotted parts after the opcode: ("rn", "ftz", "f32")
    operands: tuple  # operand tokens as written
    predicate: str  # guard register, "" when unguarded
    negated: bool  # @!%p
    text: str  # the instruction as written, for messages
    line: int  # 1-based line in the PTX text
    type: str = ""  # the last type modifier ("f32" of add.rn.f32; cvt's source type)


@dataclasses.dataclass
class Kernel:
    name: str
    params: list
    shared: dict  # symbol -> (offset, size); the dynamic array has size None
    shared_static_bytes: int
    instructions: list
    labels: dict  # label -> instruction index

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)


def _split_operands(text: str) -> tuple:
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return tuple(p for p in parts + [current.strip()] if p)


def _element_bytes(type_name: str) -> int:
    return SCALAR_BYTES[re.sub(r"\D", "", type_name)]


_PARAM = re.compile(
    r"\.param\s+(?:\.align\s+(\d+)\s+)?\.(\w+)(?:\s+\.ptr(?:\s+\.\w+)*)?(?:\s+\.align\s+(\d+))?"
    r"\s+([\w$]+)(?:\[(\d+)\])?"
)
_SHARED = re.compile(r"(\.extern\s+)?\.shared\s+(?:\.align\s+(\d+)\s+)?\.(\w+)\s+([\w$]+)\[(\d*)\]")


def parse_kernel(ptx: str, name: str) -> Kernel:
    """The ``.entry`` called ``name`` in ``ptx`` (module-level ``.extern .shared`` arrays included)."""
    match = re.search(r"\.entry\s+" + re.escape(name) + r"\s*\((.*?)\)\s*(?:\.\w+[^{]*)?\{", ptx, re.DOTALL)
    if match is None:
        entries = re.findall(r"\.entry\s+([\w$]+)", ptx)
        raise PTXError(f"no kernel named {name!r} in the PTX (entries: {', '.join(entries) or 'none'})")
    params = []
    for align, ptx_type, align_after, param_name, count in _PARAM.findall(match.group(1)):
        element = _element_bytes(ptx_type)
        params.append(Param(param_name, ptx_type, element * int(count or 1), int(align or align_after or element)))
    body_start = match.end()
    body_end = re.search(r"^\}", ptx[body_start:], re.MULTILINE).start() + body_start
    first_line = ptx.count("\n", 0, body_start) + 1
    module_scope = re.sub(r"\.entry\s.*?^\}", "", ptx, flags=re.DOTALL | re.MULTILINE)  # no kernel's own body
    shared, offset, instructions, labels = {}, 0, [], {}
    declarations = [*_SHARED.finditer(module_scope), *_SHARED.finditer(ptx[body_start:body_end])]
    dynamic = None
    for found in declarations:
        _, align, type_name, symbol, count = found.groups()
        if not count:
            dynamic = symbol
            continue
        alignment = int(align or _element_bytes(type_name))
        offset = -(-offset // alignment) * alignment
        shared[symbol] = (offset, int(count) * _element_bytes(type_name))
        offset += int(count) * _element_bytes(type_name)
    if dynamic is not None:
        offset = -(-offset // 16) * 16
        shared[dynamic] = (offset, None)
    for number, raw in enumerate(ptx[body_start:body_end].splitlines(), start=first_line):
        line = raw.split("//")[0].strip()
        if not line or line in ("{", "}") or line.startswith("."):
            continue
        if line.endswith(":"):
            labels[line[:-1]] = len(instructions)
            continue
        statement = line.rstrip(";").strip()
        predicate, negated = "", False
        if statement.startswith("@"):
            guard, statement = statement.split(None, 1)
            negated = guard.startswith("@!")
            predicate = guard.lstrip("@!")
        head, _, rest = statement.partition(" ")
        opcode, *modifiers = head.split(".")
        ptx_type = next((m for m in reversed(modifiers) if m in TYPES), "")
        instructions.append(
            Instruction(
                opcode, tuple(modifiers), _split_operands(rest.strip()), predicate, negated, line, number, ptx_type
            )
        )
    return Kernel(name, params, shared, offset, instructions, labels)


def entry_names(ptx: str) -> list:
    return re.findall(r"\.entry\s+([\w$]+)", ptx)
