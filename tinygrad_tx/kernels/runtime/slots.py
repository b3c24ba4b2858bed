"""Argument slots of a team block function, declared once by name.

A block function (a numba ``cfunc``) gets its job as the address of one int64 array. Reading slot
26 where the launcher packed the mask at slot 27 silently reads the wrong memory, so each block
function's slots are declared once, by name, next to it:

    LAYER_NORM = Slots("layer_norm", "x", "weight", "rows", "blocks", floats=("eps",))
    _LN = LAYER_NORM.at                      # a namedtuple of constant indices: _LN.x == 0, _LN.eps == 4
    a[_LN.rows]                              # in the block function (numba folds the constant)
    LAYER_NORM.pack(x=..., weight=..., rows=..., blocks=..., eps=1e-5)   # in the launcher

``pack`` refuses a missing or unknown slot (TinygradTxError) instead of shifting every slot after
it. A slot may span several int64s (``("q", 5)``: an array's address, head count and three strides);
its index is the first, and ``pack`` takes a sequence of exactly that length for it. Float slots
come last and travel as their float64 bits (read them through a float64 view of the same array).
"""

from __future__ import annotations

import collections
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import TinygradTxError

_FLOAT64, _INT64 = struct.Struct("d"), struct.Struct("q")


def float_bits(value: float) -> int:
    """The int64 whose bits are ``value`` as a float64."""
    return _INT64.unpack(_FLOAT64.pack(float(value)))[0]


class Slots:
    """The named int64 slots of one block function; ``at`` holds their indices and ``size`` their count."""

    def __init__(self, name: str, *ints: str | tuple[str, int], floats: Sequence[str] = ()) -> None:
        self.name = name
        self.widths: dict[str, int] = {}
        for slot in ints:
            slot_name, width = (slot, 1) if isinstance(slot, str) else slot
            self.widths[slot_name] = width
        self.floats = tuple(floats)
        for slot_name in self.floats:
            self.widths[slot_name] = 1
        if "size" in self.widths or len(self.widths) != len(ints) + len(self.floats):
            raise ValueError(f"Slots {name!r}: slot names must be unique and not 'size'")
        indices, start = {}, 0
        for slot_name, width in self.widths.items():
            indices[slot_name], start = start, start + width
        self.size = start
        make_tuple: Any = collections.namedtuple  # a name built at run time, which mypy cannot follow
        tuple_type = make_tuple(name.title().replace(" ", "").replace("_", "") + "Slots", [*indices, "size"])
        self.at: Any = tuple_type(*indices.values(), start)
        self._names, self._order = set(self.widths), tuple(self.widths)
        self._float_positions = tuple(self._order.index(slot) for slot in self.floats)
        self._wide = any(width != 1 for width in self.widths.values())

    def pack(self, **named: Any) -> np.ndarray:
        """The int64 array for the block function: every slot by name, none missing, none unknown."""
        if named.keys() != self._names:  # one comparison in C on the hot path; the message only on a mistake
            missing = [slot for slot in self.widths if slot not in named]
            unknown = [slot for slot in named if slot not in self.widths]
            problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unknown {', '.join(unknown)}"] if unknown else []
            )
            raise TinygradTxError(f"{self.name} slots: {'; '.join(problems)} (slots: {', '.join(self.widths)})")
        values = [named[slot] for slot in self._order]
        for position in self._float_positions:
            values[position] = _INT64.unpack(_FLOAT64.pack(values[position]))[0]
        if self._wide:  # a slot spanning several int64s: its values in place of the one entry
            flat: list[int] = []
            for slot, value in zip(self._order, values):
                width = self.widths[slot]
                if width == 1:
                    flat.append(value)
                elif len(value) != width:
                    raise TinygradTxError(f"{self.name} slots: {slot} takes {width} values, got {len(value)}")
                else:
                    flat.extend(value)
            values = flat
        return np.array(values, np.int64)
