"""Serial frame decoding (pure): bytes in, field maps or reasons for skipping out.

``STX <fields> ETX <CS><CS> <terminator>``; the checksum is the XOR of the bytes
between STX and ETX as two upper-case hex digits. A flipped byte fails the
checksum; a truncated frame shows as a new STX before the ETX. Both are counted
and skipped, and decoding resynchronises on the next STX.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.sources.serial.models import Framing


@dataclass(frozen=True)
class Corrupt:
    reason: str
    raw: bytes


Decoded = dict[str, str] | Corrupt


def xor_checksum(body: bytes) -> int:
    value = 0
    for byte in body:
        value ^= byte
    return value


def encode_frame(fields: dict[str, str], framing: Framing) -> bytes:
    """The inverse of decoding (used by tests and by anyone writing a device)."""
    body = framing.field_separator.join(
        f"{k}{framing.key_value_separator}{v}" for k, v in fields.items()
    ).encode()
    checksum = b"" if framing.checksum == "none" else f"{xor_checksum(body):02X}".encode()
    return (
        bytes([framing.start])
        + body
        + bytes([framing.end])
        + checksum
        + framing.terminator.encode()
    )


class FrameDecoder:
    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self.buffer = bytearray()
        self._cs_len = 0 if framing.checksum == "none" else 2

    def feed(self, data: bytes) -> list[Decoded]:
        self.buffer += data
        out: list[Decoded] = []
        f = self.framing
        buf = self.buffer
        while True:
            start = buf.find(f.start)
            if start < 0:
                if len(buf.strip()) > 0 and len(buf) > f.max_frame_bytes:
                    out.append(Corrupt("noise", bytes(buf)))
                    buf.clear()
                break
            if buf[:start].strip():
                out.append(Corrupt("noise", bytes(buf[:start])))
            del buf[:start]
            end = buf.find(f.end, 1)
            restart = buf.find(f.start, 1)
            if restart >= 0 and (end < 0 or restart < end):
                out.append(Corrupt("truncated", bytes(buf[:restart])))
                del buf[:restart]
                continue
            if end < 0:
                if len(buf) > f.max_frame_bytes:
                    out.append(Corrupt("oversized", bytes(buf)))
                    buf.clear()
                break
            if len(buf) < end + 1 + self._cs_len:
                break
            body = bytes(buf[1:end])
            checksum = bytes(buf[end + 1 : end + 1 + self._cs_len])
            del buf[: end + 1 + self._cs_len]
            terminator = f.terminator.encode()
            if terminator and buf[: len(terminator)] == terminator:
                del buf[: len(terminator)]
            out.append(self._parse(body, checksum))
        return out

    def _parse(self, body: bytes, checksum: bytes) -> Decoded:
        f = self.framing
        if self._cs_len:
            try:
                expected = int(checksum.decode("ascii"), 16)
            except (UnicodeDecodeError, ValueError):
                return Corrupt("checksum", body)
            if expected != xor_checksum(body):
                return Corrupt("checksum", body)
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            return Corrupt("malformed", body)
        fields: dict[str, str] = {}
        for part in text.split(f.field_separator):
            key, sep, value = part.partition(f.key_value_separator)
            if not sep or not key:
                return Corrupt("malformed", body)
            fields[key] = value
        return fields
