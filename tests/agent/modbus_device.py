"""A Modbus device of our own (TCP and RTU), written from the Modbus specification.

It shares no code with the agent or with pymodbus: the MBAP header, the PDUs
of functions 1-4, exception responses and the RTU CRC are built here by hand.
Each unit id has its own holding/input registers and coils; a unit id that is
not configured does not answer (as on a real RS-485 line), an address outside
the unit's map gets exception 2 (illegal data address), and ``corrupt_next``
sends the next RTU answer with a broken CRC.

``reads[unit]`` counts completed answers per unit, so a test can wait until
the agent has polled the state it just wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections import defaultdict


def crc16(frame: bytes) -> int:
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class Unit:
    def __init__(self, size: int = 64) -> None:
        self.holding = [0] * size
        self.input = [0] * size
        self.coils = [False] * size

    def set32(self, address: int, value: int, word_order: str = "big") -> None:
        hi, lo = (value >> 16) & 0xFFFF, value & 0xFFFF
        self.holding[address : address + 2] = [hi, lo] if word_order == "big" else [lo, hi]


class ModbusDevice:
    def __init__(self, units: dict[int, Unit]) -> None:
        self.units = units
        self.reads: dict[int, int] = defaultdict(int)
        self.changed = asyncio.Condition()
        self.corrupt_next = 0

    def answer(self, unit_id: int, pdu: bytes) -> bytes | None:
        """The response PDU, or None when the unit is not on the line."""
        unit = self.units.get(unit_id)
        if unit is None:
            return None
        func = pdu[0]
        if func not in (1, 2, 3, 4) or len(pdu) != 5:
            return bytes([func | 0x80, 1])  # illegal function
        address, count = struct.unpack(">HH", pdu[1:5])
        table: list[int] | list[bool] = (
            unit.coils if func in (1, 2) else unit.holding if func == 3 else unit.input
        )
        if count < 1 or address + count > len(table):
            return bytes([func | 0x80, 2])  # illegal data address
        values = table[address : address + count]
        if func in (1, 2):
            packed = 0
            for i, bit in enumerate(values):
                packed |= int(bool(bit)) << i
            data = packed.to_bytes((count + 7) // 8, "little")
        else:
            data = b"".join(struct.pack(">H", int(v)) for v in values)
        return bytes([func, len(data)]) + data

    async def _counted(self, unit_id: int) -> None:
        async with self.changed:
            self.reads[unit_id] += 1
            self.changed.notify_all()

    async def polled(self, unit_id: int, times: int = 2, within_s: float = 10.0) -> None:
        """Wait until ``times`` more answers went to ``unit_id`` (one full poll after a write)."""
        async with self.changed:
            target = self.reads[unit_id] + times
            await asyncio.wait_for(
                self.changed.wait_for(lambda: self.reads[unit_id] >= target), within_s
            )

    # -- Modbus TCP -----------------------------------------------------------

    async def serve_tcp(self) -> asyncio.Server:
        return await asyncio.start_server(self._tcp_client, "127.0.0.1", 0)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(7)
                tid, proto, length, unit_id = struct.unpack(">HHHB", head)
                pdu = await reader.readexactly(length - 1)
                reply = self.answer(unit_id, pdu)
                if reply is None:
                    continue
                writer.write(struct.pack(">HHHB", tid, proto, len(reply) + 1, unit_id) + reply)
                await writer.drain()
                await self._counted(unit_id)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    # -- Modbus RTU on a serial line --------------------------------------------

    async def serve_rtu(self, fd: int) -> None:
        """Answer RTU requests on ``fd`` (the device end of a serial line) until cancelled."""
        loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        data: asyncio.Queue[bytes] = asyncio.Queue()

        def readable() -> None:
            with contextlib.suppress(BlockingIOError):
                data.put_nowait(os.read(fd, 256))

        loop.add_reader(fd, readable)
        buffer = b""
        try:
            while True:
                buffer += await data.get()
                while len(buffer) >= 8:  # every request of functions 1-4 is 8 bytes
                    frame, buffer = buffer[:8], buffer[8:]
                    if crc16(frame[:6]) != int.from_bytes(frame[6:8], "little"):
                        buffer = b""  # resynchronise on silence, as a real device does
                        break
                    reply = self.answer(frame[0], frame[1:6])
                    if reply is None:
                        continue
                    out = bytes([frame[0]]) + reply
                    crc = crc16(out)
                    if self.corrupt_next:
                        self.corrupt_next -= 1
                        crc ^= 0x5A5A
                    os.write(fd, out + crc.to_bytes(2, "little"))
                    await self._counted(frame[0])
        finally:
            loop.remove_reader(fd)
