"""Register words → values, by type, word order, byte order and scale (pure)."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from edge_agent.sources.modbus.models import Register, words

_FORMATS = {
    "uint16": ">H",
    "int16": ">h",
    "uint32": ">I",
    "int32": ">i",
    "float32": ">f",
    "uint64": ">Q",
    "int64": ">q",
}


def decode(reg: Register, regs: list[int]) -> int | float | bool | str:
    """The value of ``reg`` from its registers as read (16-bit words, in address order)."""
    if reg.type == "bool":
        return bool(regs[0])
    if len(regs) != words(reg):
        raise ValueError(f"{reg.type} needs {words(reg)} registers, got {len(regs)}")
    ordered = regs if reg.word_order == "big" else list(reversed(regs))
    raw = b"".join(w.to_bytes(2, "big" if reg.byte_order == "big" else "little") for w in ordered)
    if reg.type == "string":
        try:
            return raw.decode("ascii").strip("\x00 ")
        except UnicodeDecodeError:
            raise ValueError(f"{raw!r} is not ASCII text") from None
    value: int | float = struct.unpack(_FORMATS[reg.type], raw)[0]
    if reg.scale != 1:
        return value * reg.scale
    return value


def events(
    registers: Mapping[str, Register], values: Mapping[str, object], last: dict[str, object]
) -> dict[str, object]:
    """This poll's values with event registers kept only where they fired (``last`` updated).

    An event register (``event: rising|change``) is in the result only when this poll
    sees its edge against the previous poll's value; ``last`` holds those previous
    values (per station, across reconnects, so an edge made during an outage is seen).
    """
    out: dict[str, object] = {}
    for name, value in values.items():
        reg = registers[name]
        if reg.event is None:
            out[name] = value
            continue
        before = last.get(name)
        last[name] = value
        if before is None:
            continue
        if reg.event == "rising" and value and not before:
            out[name] = True
        elif reg.event == "change" and value != before:
            out[name] = value
    return out


MAX_REGISTERS = 125
"""Registers one Modbus read may return (function 3/4); bits (1/2) allow far more."""


@dataclass
class Block:
    """One read request: contiguous addresses of one table, and the values inside it."""

    table: str
    address: int
    count: int
    members: list[tuple[str, Register]] = field(default_factory=list)


def blocks(registers: Mapping[str, Register]) -> list[Block]:
    """The profile's registers as few reads as possible: one per contiguous run.

    Only registers that touch or overlap are merged, so a read never asks for an
    address the profile does not name (a device may have gaps in its map and would
    answer exception 2 for the whole read).
    """
    out: list[Block] = []
    ordered = sorted(registers.items(), key=lambda kv: (kv[1].table, kv[1].address))
    for name, reg in ordered:
        size = words(reg) if reg.table in ("holding", "input") else 1
        last = out[-1] if out else None
        end = reg.address + size
        if (
            last is not None
            and last.table == reg.table
            and reg.address <= last.address + last.count
            and max(end, last.address + last.count) - last.address <= MAX_REGISTERS
        ):
            last.count = max(last.count, end - last.address)
        else:
            last = Block(reg.table, reg.address, size)
            out.append(last)
        last.members.append((name, reg))
    return out


def unpack(block: Block, values: list[int]) -> dict[str, int | float | bool | str]:
    """Each member's value from the block's registers (or bits) as read."""
    out: dict[str, int | float | bool | str] = {}
    for name, reg in block.members:
        offset = reg.address - block.address
        if reg.table in ("coil", "discrete"):
            out[name] = bool(values[offset])
        else:
            out[name] = decode(reg, values[offset : offset + words(reg)])
    return out
