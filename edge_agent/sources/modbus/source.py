"""Modbus TCP and RTU (pymodbus): one poller per endpoint or serial line.

Stations sharing an RS-485 line (several unit ids) or a TCP gateway share one
client, and their requests are made one after the other, never interleaved.
Each station is read at its own ``poll_interval_s``; one poll of a station is
one reading (all its registers, contiguous ones in one request: fewer round
trips on a slow RS-485 line), stamped with the gateway clock unless the
profile reads a device clock.

A station that answers with a Modbus exception (reason ``exception``), does
not answer in time (``timeout``), or whose answer is garbled (``crc``: pymodbus
drops an RTU frame with a bad CRC silently, so bytes that arrived during a
request without a valid answer tell it from silence) is that station's error:
counted in ``takt_agent_station_errors{reason}``, logged once per problem, its
reading for that poll skipped; the other stations on the line keep being read. Only a
lost connection (TCP closed, serial port gone) makes the poller reconnect.
"""

from __future__ import annotations

import asyncio
import logging

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from edge_agent.config import GatewayConfig
from edge_agent.mapping import RawReading
from edge_agent.metrics import AgentMetrics
from edge_agent.sources.base import Binding, Sink
from edge_agent.sources.modbus.decode import Block, blocks, events, unpack
from edge_agent.sources.modbus.models import ModbusBinding, ModbusConnection, Register
from takt_common.backoff import Backoff
from takt_common.errors import TaktError

log = logging.getLogger(__name__)

Client = AsyncModbusTcpClient | AsyncModbusSerialClient


def _raise_swallowed_cancel() -> None:
    """Re-raise a cancellation that ``asyncio.wait_for`` dropped (Python 3.11).

    pymodbus waits for each answer with ``asyncio.wait_for``; before Python 3.12 it
    returns the answer instead of raising when the task is cancelled at the moment the
    answer arrives. A poller on a busy line (always waiting for some answer) then
    ignored the agent's one cancel at shutdown and ran on: the agent never stopped
    (what made the RTU test "hang"). The task still counts the cancel request, so it
    is raised here after every request.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class StationError(TaktError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ModbusSource:
    def __init__(
        self, bindings: list[Binding], config: GatewayConfig, metrics: AgentMetrics
    ) -> None:
        conn = bindings[0].station.connection
        assert isinstance(conn, ModbusConnection)
        self.conn = conn
        self.bindings = bindings
        self.metrics = metrics
        where = f"{conn.host}:{conn.port}" if conn.transport == "tcp" else conn.serial_port
        self.name = f"modbus:{where}"
        self.connected = asyncio.Event()
        self._reported: set[tuple[str, str]] = set()
        self._last: dict[str, dict[str, object]] = {}
        """Event registers' values at the previous poll, per station."""
        self._rx_bytes = 0
        self._plan: dict[str, list[Block]] = {}
        """Per station: the reads one poll makes (contiguous registers in one request)."""
        """Bytes received on an RTU line so far (a garbled answer is no silence)."""

    def _client(self) -> Client:
        c = self.conn
        if c.transport == "tcp":
            assert c.host is not None
            return AsyncModbusTcpClient(c.host, port=c.port, timeout=c.timeout_s, retries=0)
        assert c.serial_port is not None
        client = AsyncModbusSerialClient(
            c.serial_port,
            framer=FramerType.RTU,
            baudrate=c.baudrate,
            parity=c.parity,
            stopbits=c.stopbits,
            bytesize=c.bytesize,
            timeout=c.timeout_s,
            retries=0,
        )
        self._count_received(client)
        return client

    def _count_received(self, client: Client) -> None:
        """Count the bytes that reach the client's framer (see ``_request``).

        pymodbus drops an RTU answer with a bad CRC without a word and the request then
        times out; bytes that arrived during a request that got no valid answer tell a
        garbled answer (``crc``) from a unit that said nothing (``timeout``).
        """
        ctx = client.ctx
        received = ctx.callback_data

        def counting(data: bytes, addr: tuple[str, int] | None = None) -> int:
            self._rx_bytes += len(data)
            return received(data, addr)

        ctx.callback_data = counting  # type: ignore[method-assign]

    async def run(self, sink: Sink) -> None:
        backoff = Backoff(base=0.2, cap=5.0)
        gauge = self.metrics.source_connected.labels(self.name)
        while True:
            client = self._client()
            try:
                if await client.connect():
                    gauge.set(1)
                    self.connected.set()
                    backoff.reset()
                    await self._poll(client, sink)
                else:
                    log.warning("%s: cannot connect", self.name)
            except (ConnectionException, ConnectionError, OSError) as err:
                log.warning("%s: connection lost: %s", self.name, err)
            except Exception:
                # no device may stop the agent (a serial port can refuse its settings
                # with termios.error, which is no OSError): log it and try again
                log.exception("%s: poller failed unexpectedly; reconnecting", self.name)
            finally:
                gauge.set(0)
                self.connected.clear()
                client.close()
            self.metrics.reconnects.labels(self.name).inc()
            await asyncio.sleep(backoff.next_delay())

    async def _poll(self, client: Client, sink: Sink) -> None:
        loop = asyncio.get_running_loop()
        due = {b.station.id: loop.time() for b in self.bindings}
        while True:
            now = loop.time()
            readings: list[RawReading] = []
            for binding in self.bindings:
                station = binding.station.id
                if due[station] > now:
                    continue
                interval = self._conn(binding).poll_interval_s
                due[station] = max(due[station] + interval, now)
                raw = await self._read_station(client, binding)
                if raw is not None:
                    readings.append(raw)
            if readings:
                await sink(readings)
            if not client.connected:
                raise ConnectionError("connection closed")
            await asyncio.sleep(max(0.0, min(due.values()) - loop.time()))

    @staticmethod
    def _conn(binding: Binding) -> ModbusConnection:
        conn = binding.station.connection
        assert isinstance(conn, ModbusConnection)
        return conn

    async def _read_station(self, client: Client, binding: Binding) -> RawReading | None:
        station = binding.station.id
        unit = self._conn(binding).unit
        values: dict[str, object] = {}
        registers = binding.profile.section(ModbusBinding).registers
        try:
            for block in self._blocks(station, registers):
                values.update(await self._read(client, block, unit))
        except StationError as err:
            self.metrics.station_errors.labels(station, err.reason).inc()
            if (station, str(err)) not in self._reported:
                self._reported.add((station, str(err)))
                log.warning(
                    "%s: station %s (unit %d): %s; poll skipped (logged once)",
                    self.name,
                    station,
                    unit,
                    err,
                )
            return None
        last = self._last.setdefault(station, {})
        return RawReading(station=station, values=events(registers, values, last))

    def _blocks(self, station: str, registers: dict[str, Register]) -> list[Block]:
        if station not in self._plan:
            self._plan[station] = blocks(registers)
        return self._plan[station]

    async def _read(self, client: Client, block: Block, unit: int) -> dict[str, object]:
        values: dict[str, object] = dict(await self._request(client, block, unit))
        _raise_swallowed_cancel()  # an answer came back although the task was cancelled
        return values

    async def _request(
        self, client: Client, block: Block, unit: int
    ) -> dict[str, int | float | bool | str]:
        address, count = block.address, block.count
        received_before = self._rx_bytes
        try:
            if block.table == "holding":
                rr = await client.read_holding_registers(address, count=count, device_id=unit)
            elif block.table == "input":
                rr = await client.read_input_registers(address, count=count, device_id=unit)
            elif block.table == "coil":
                rr = await client.read_coils(address, count=count, device_id=unit)
            else:
                rr = await client.read_discrete_inputs(address, count=count, device_id=unit)
        except ModbusIOException as err:
            if "device id" in str(err):  # a late answer of another unit (after a timeout)
                raise StationError("stray", f"answer of another unit: {err}") from None
            if self.conn.transport == "rtu" and self._rx_bytes > received_before:
                raise StationError(
                    "crc", f"garbled answer (CRC error or broken frame) from unit {unit}"
                ) from None
            raise StationError("timeout", f"no answer in time: {err}") from None
        except ConnectionException:
            raise
        except ModbusException as err:
            raise StationError("error", f"{type(err).__name__}: {err}") from None
        if rr.isError():
            code = getattr(rr, "exception_code", "?")
            raise StationError(
                "exception", f"Modbus exception {code} reading {block.table} {address}+{count}"
            )
        bits = block.table in ("coil", "discrete")
        read = list(rr.bits[:count]) if bits else list(rr.registers)
        if len(read) < count:
            raise StationError("malformed", f"{len(read)} values for a read of {count}")
        try:
            return unpack(block, [int(v) for v in read])
        except ValueError as err:
            raise StationError("malformed", str(err)) from None
