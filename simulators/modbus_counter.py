"""The simulated Modbus counter (``takt-sim-modbus``): a pymodbus server, TCP or RTU on a pty.

Every Modbus station of the scenario is one unit id on one server: TCP stations
share one "gateway" port, RTU stations share one RS-485 line, a socat pty pair
whose reader end is ``<run>/modbus-rtu`` (as on a real line, the agent polls
every unit over one port). The register map of each unit (holding registers,
big-endian words and bytes) is in :data:`REGISTERS` and docs/simulators.md.

A Modbus device is polled, so it can only show the *current* counters; what
happened between two polls is merged. To keep the truth of the ledger exact
for a poller (units attributed to the operator in force, a reject counted with
its own code, hours cut at the right unit), the device does what a careful
counter box with an operator terminal does: before an operator or state
change, before a reject whose code differs from the last one shown, and before
the clock crosses a ledger bucket, it waits until the master has read every
register it reads twice (one complete poll started after the last update),
and after such a change again. Without a master (nobody polled for
:data:`READER_GONE_S` wall seconds) it does not wait; those changes are
counted in ``unread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators.devicestate import COUNTERS, IDENTITY, DeviceState

log = logging.getLogger(__name__)

REGISTERS: dict[str, tuple[int, int]] = {
    "good": (0, 2),  # uint32: good parts (wraps at the scenario's counter bits)
    "rejects": (2, 2),  # uint32: all rejects
    "last_code": (4, 4),  # string, 8 ASCII characters: code of the last reject
    "badge": (8, 4),  # string, 8 ASCII characters: badge in force, blank = nobody
    "state": (12, 1),  # uint16: 0 idle, 1 running, 2 fault, 3 starved, 4 maint., 5 blocked
    "cycle": (13, 1),  # uint16: last cycle time in tenths of a second
    "time": (14, 4),  # uint64: device clock, epoch milliseconds
}
SIZE = 18
READER_GONE_S = 2.0
"""No read for this long (wall time): nobody polls, changes are not held back."""


def text_registers(text: str, count: int) -> list[int]:
    raw = text.encode("ascii")[: 2 * count].ljust(2 * count, b"\0")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 2 * count, 2)]


def int_registers(value: int, count: int) -> list[int]:
    return [(value >> (16 * (count - 1 - i))) & 0xFFFF for i in range(count)]


def registers(state: DeviceState, epoch_ms: int) -> list[int]:
    """The unit's holding registers for ``state`` (see :data:`REGISTERS`)."""
    regs = (
        int_registers(state.good, 2)
        + int_registers(state.reject_total, 2)
        + text_registers(state.last_code, 4)
        + text_registers(state.badge, 4)
        + [state.state, min(0xFFFF, round(state.last_cycle_s * 10))]
        + int_registers(epoch_ms + state.ts_ms, 4)
    )
    assert len(regs) == SIZE
    return regs


class ModbusCounters:
    """All Modbus stations of a floor: unit ids 1.. in scenario order, TCP and/or RTU."""

    def __init__(
        self,
        stations: dict[str, str],
        states: dict[str, DeviceState],
        epoch0_ms: int,
        workdir: Path,
        host: str,
        port: int,
        bucket_s: float = 3600.0,
    ) -> None:
        """``stations``: station id → transport (tcp or rtu)."""
        self.transports = stations
        self.units = {sid: i + 1 for i, sid in enumerate(stations)}
        self.states = states
        self.epoch0 = epoch0_ms
        self.workdir = workdir
        self.host, self.port = host, port
        self.bucket_ms = round(bucket_s * 1000)
        self.regs = {sid: registers(states[sid], epoch0_ms) for sid in stations}
        self.reads: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.last_read: dict[int, float] = {}
        self.read_event = asyncio.Event()
        self.shown_code = {sid: "" for sid in stations}
        self.dirty = dict.fromkeys(stations, False)
        self.rtu_path = workdir / "modbus-rtu"
        self.unread = 0
        self.held = 0
        self._servers: list[ModbusTcpServer | ModbusSerialServer] = []
        self._socat: asyncio.subprocess.Process | None = None

    # -- server ---------------------------------------------------------------------------

    def _devices(self, transport: str) -> list[SimDevice]:
        return [
            SimDevice(
                id=self.units[sid],
                simdata=SimData(0, count=SIZE, values=0, datatype=DataType.REGISTERS),
                action=partial(self._action, sid),
            )
            for sid, t in self.transports.items()
            if t == transport
        ]

    async def _action(
        self,
        sid: str,
        func_code: int,
        start: int,
        address: int,
        count: int,
        current: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Every request: the registers as the device shows them now; reads are counted."""
        if values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # a counter is read-only
        current[:] = self.regs[sid]
        unit = self.units[sid]
        for a in range(address, address + count):
            self.reads[unit][a] += 1
        self.last_read[unit] = asyncio.get_running_loop().time()
        self.read_event.set()
        return None

    async def start(self) -> None:
        tcp, rtu = self._devices("tcp"), self._devices("rtu")
        if tcp:
            server = ModbusTcpServer(tcp, address=(self.host, self.port))
            await server.serve_forever(background=True)
            self._servers.append(server)
        if rtu:
            await self._start_line()
            line = ModbusSerialServer(
                rtu,
                framer=FramerType.RTU,
                port=str(self.workdir / "modbus-rtu-device"),
                baudrate=115200,
                parity="N",
                timeout=0.5,
            )
            await line.serve_forever(background=True)
            self._servers.append(line)

    async def _start_line(self) -> None:
        """An RS-485 line: a socat pty pair, the agent's end at ``modbus-rtu``."""
        if shutil.which("socat") is None:
            raise RuntimeError("Modbus RTU stations need socat (make setup installs it)")
        device_end = self.workdir / "modbus-rtu-device"
        for path in (self.rtu_path, device_end):
            path.unlink(missing_ok=True)
        self._socat = await asyncio.create_subprocess_exec(
            "socat",
            f"pty,raw,echo=0,link={self.rtu_path}",
            f"pty,raw,echo=0,link={device_end}",
        )
        for _ in range(200):
            if self.rtu_path.exists() and device_end.exists():
                return
            await asyncio.sleep(0.025)
        raise RuntimeError("socat did not create the RS-485 pty pair")

    async def stop(self) -> None:
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.shutdown()  # type: ignore[no-untyped-call]
        self._servers = []
        if self._socat is not None and self._socat.returncode is None:
            self._socat.terminate()
            await self._socat.wait()
        self._socat = None

    # -- replay -------------------------------------------------------------------------

    async def _seen(self, sid: str) -> None:
        """Until the master has read every register it reads twice since now."""
        unit = self.units[sid]
        loop = asyncio.get_running_loop()
        target = {a: n + 2 for a, n in self.reads[unit].items()}
        while True:
            if target and all(self.reads[unit][a] >= n for a, n in target.items()):
                self.held += 1
                return
            last = self.last_read.get(unit)
            if last is None or loop.time() - last > READER_GONE_S:
                self.unread += 1
                return
            self.read_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.read_event.wait(), READER_GONE_S)

    def _show(self, sid: str, state: DeviceState) -> None:
        self.regs[sid] = registers(state, self.epoch0)

    async def publish(self, sid: str, state: DeviceState, ts_ms: int, kind: str) -> None:
        if kind == IDENTITY:
            if self.dirty[sid]:
                await self._seen(sid)  # the units so far belong to the operator before
            self._show(sid, state)
            await self._seen(sid)  # the change is seen before any later unit
            self.dirty[sid] = False
            return
        if kind == COUNTERS:
            if state.last_code != self.shown_code[sid] and self.dirty[sid]:
                # a reject with another code: the counts so far go with the code shown
                await self._seen(sid)
            self.shown_code[sid] = state.last_code
            self._show(sid, state)
            self.dirty[sid] = True
            return
        # heartbeat: the clock moves; units must not slip into the next ledger bucket
        if ts_ms % self.bucket_ms == 0 and self.dirty[sid]:
            await self._seen(sid)
            self.dirty[sid] = False
        self._show(sid, state)


def agent_connection(endpoint: str, unit: int, poll_interval_s: float = 0.05) -> dict[str, Any]:
    """The gateway-config ``connection`` an agent uses for one simulated Modbus station.

    ``endpoint`` is a :class:`~simulators.floor.StationEndpoint`'s ``modbus`` field.
    """
    common: dict[str, Any] = {
        "type": "modbus",
        "unit": unit,
        "poll_interval_s": poll_interval_s,
        "timeout_s": 0.5,
    }
    kind, _, where = endpoint.partition(":")
    if kind == "tcp":
        host, port = where.removeprefix("//").rsplit(":", 1)
        return common | {"transport": "tcp", "host": host, "port": int(port)}
    return common | {"transport": "rtu", "serial_port": where, "baudrate": 115200, "parity": "N"}
