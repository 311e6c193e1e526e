"""Serial framing (pure): bytes in, field maps or reasons for skipping out.

Two ways to cut records out of the stream:

- ``delimited``: ``START <record> END [checksum] [terminator]`` (by default STX,
  ETX and two hex digits of the XOR). A truncated frame shows as a new start
  byte before the end byte; decoding resynchronises on the next start byte.
- ``line``: one record per line (``[prefix]<record>[sep checksum]<terminator>``),
  as CSV-style and NMEA-style devices send. With a prefix, a second prefix in a
  line marks the text before it as truncated.

The checksum is checked before the record's text is parsed (``records``); a
flipped byte fails it. Every skipped piece is returned with its reason so the
source can count it per station.
"""

from __future__ import annotations

from edge_agent.sources.serial import checksums
from edge_agent.sources.serial.models import Framing, Record
from edge_agent.sources.serial.records import Corrupt, Fields, RecordParser

__all__ = ["Corrupt", "Decoded", "FrameDecoder"]

Decoded = Fields | Corrupt


class FrameDecoder:
    def __init__(self, framing: Framing, record: Record | None = None) -> None:
        self.framing = framing
        self.parser = RecordParser(record or Record(), framing)
        self.buffer = bytearray()
        self._cs_len = checksums.digits(framing.checksum)
        self._trailing_cs = framing.checksum != "none" and framing.checksum_separator is None

    def feed(self, data: bytes) -> list[Decoded]:
        self.buffer += data
        out: list[Decoded] = []
        if self.framing.mode == "line":
            self._lines(out)
        else:
            self._delimited(out)
        return out

    # -- cutting ----------------------------------------------------------

    def _delimited(self, out: list[Decoded]) -> None:
        f = self.framing
        buf = self.buffer
        trailing = self._cs_len if self._trailing_cs else 0
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
            if len(buf) < end + 1 + trailing:
                break
            body = bytes(buf[1:end])
            checksum = bytes(buf[end + 1 : end + 1 + trailing])
            del buf[: end + 1 + trailing]
            terminator = f.terminator.encode()
            if terminator and buf[: len(terminator)] == terminator:
                del buf[: len(terminator)]
            out.append(self._record(body, checksum))

    def _lines(self, out: list[Decoded]) -> None:
        f = self.framing
        buf = self.buffer
        terminator = f.terminator.encode()
        prefix = f.prefix.encode()
        while True:
            end = buf.find(terminator)
            if end < 0:
                if len(buf) > f.max_frame_bytes:
                    out.append(Corrupt("oversized", bytes(buf)))
                    buf.clear()
                break
            line = bytes(buf[:end])
            del buf[: end + len(terminator)]
            if not line.strip():
                continue
            if len(line) > f.max_frame_bytes:
                out.append(Corrupt("oversized", line))
                continue
            if prefix:
                first = line.find(prefix)
                if first < 0:
                    out.append(Corrupt("noise", line))
                    continue
                if line[:first].strip():
                    out.append(Corrupt("noise", line[:first]))
                last = line.rfind(prefix)
                if last > first:
                    out.append(Corrupt("truncated", line[first:last]))
                line = line[last + len(prefix) :]
            if self._trailing_cs:
                if len(line) < self._cs_len:
                    out.append(Corrupt("checksum", line))
                    continue
                out.append(self._record(line[: -self._cs_len], line[-self._cs_len :]))
            else:
                out.append(self._record(line, b""))

    # -- checking and parsing ----------------------------------------------

    def _record(self, body: bytes, checksum: bytes) -> Decoded:
        f = self.framing
        if f.checksum != "none" and f.checksum_separator is not None:
            head, sep, checksum = body.rpartition(f.checksum_separator.encode())
            if not sep:
                return Corrupt("checksum", body)
            body = head
        if not checksums.verify(f.checksum, body, checksum):
            return Corrupt("checksum", body)
        return self.parser.parse(body)
