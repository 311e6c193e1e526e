"""Register words → values, by type, word order, byte order and scale (pure)."""

from __future__ import annotations

import struct

from edge_agent.sources.modbus.models import WORDS, Register

_FORMATS = {
    "uint16": ">H",
    "int16": ">h",
    "uint32": ">I",
    "int32": ">i",
    "float32": ">f",
    "uint64": ">Q",
    "int64": ">q",
}


def decode(reg: Register, words: list[int]) -> int | float | bool:
    """The value of ``reg`` from its registers as read (16-bit words, in address order)."""
    if reg.type == "bool":
        return bool(words[0])
    if len(words) != WORDS[reg.type]:
        raise ValueError(f"{reg.type} needs {WORDS[reg.type]} registers, got {len(words)}")
    ordered = words if reg.word_order == "big" else list(reversed(words))
    raw = b"".join(w.to_bytes(2, "big" if reg.byte_order == "big" else "little") for w in ordered)
    value: int | float = struct.unpack(_FORMATS[reg.type], raw)[0]
    if reg.scale != 1:
        return value * reg.scale
    return value
