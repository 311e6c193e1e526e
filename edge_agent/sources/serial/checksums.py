"""Checksums that serial devices put on their records, as hex text (pure).

Each algorithm maps the checked bytes to an integer and has a fixed number of
hex digits on the wire; comparison ignores the digits' case.
"""

from __future__ import annotations

from collections.abc import Callable


def xor8(body: bytes) -> int:
    value = 0
    for byte in body:
        value ^= byte
    return value


def sum8(body: bytes) -> int:
    return sum(body) & 0xFF


def crc16_modbus(body: bytes) -> int:
    """CRC-16/MODBUS: reflected polynomial 0xA001, initial 0xFFFF (check value 0x4B37)."""
    crc = 0xFFFF
    for byte in body:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


ALGORITHMS: dict[str, tuple[Callable[[bytes], int], int]] = {
    "xor_hex": (xor8, 2),
    "sum8_hex": (sum8, 2),
    "crc16_modbus_hex": (crc16_modbus, 4),
}
"""name → (function, hex digits on the wire)."""


def digits(name: str) -> int:
    """Hex digits the checksum takes on the wire (0 for ``none``)."""
    return ALGORITHMS[name][1] if name in ALGORITHMS else 0


def render(name: str, body: bytes) -> bytes:
    """The checksum text a device appends (upper-case hex); empty for ``none``."""
    if name not in ALGORITHMS:
        return b""
    func, width = ALGORITHMS[name]
    return f"{func(body):0{width}X}".encode()


def verify(name: str, body: bytes, text: bytes) -> bool:
    if name not in ALGORITHMS:
        return True
    func, width = ALGORITHMS[name]
    if len(text) != width:
        return False
    try:
        return int(text.decode("ascii"), 16) == func(body)
    except (UnicodeDecodeError, ValueError):
        return False
