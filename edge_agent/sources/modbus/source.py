"""Modbus TCP and RTU (pymodbus): one poller per endpoint or serial line.

Stations sharing an RS-485 line (several unit ids) or a TCP gateway share one
client, and their requests are made one after the other, never interleaved.
Each station is read at its own ``poll_interval_s``; one poll of a station is
one reading (all its registers), stamped with the gateway clock.

A station that answers with a Modbus exception, does not answer in time, or
whose answers are corrupt (an RTU frame with a bad CRC is dropped by the
framer, so it shows as a timeout) is that station's error: counted in
``takt_agent_station_errors{reason}``, logged once per problem, its reading
for that poll skipped; the other stations on the line keep being read. Only a
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
from edge_agent.sources.modbus.decode import decode
from edge_agent.sources.modbus.models import WORDS, ModbusBinding, ModbusConnection, Register
from takt_common.backoff import Backoff
from takt_common.errors import TaktError

log = logging.getLogger(__name__)

Client = AsyncModbusTcpClient | AsyncModbusSerialClient


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

    def _client(self) -> Client:
        c = self.conn
        if c.transport == "tcp":
            assert c.host is not None
            return AsyncModbusTcpClient(c.host, port=c.port, timeout=c.timeout_s, retries=0)
        assert c.serial_port is not None
        return AsyncModbusSerialClient(
            c.serial_port,
            framer=FramerType.RTU,
            baudrate=c.baudrate,
            parity=c.parity,
            stopbits=c.stopbits,
            bytesize=c.bytesize,
            timeout=c.timeout_s,
            retries=0,
        )

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
        try:
            for name, reg in binding.profile.section(ModbusBinding).registers.items():
                values[name] = await self._read(client, reg, unit)
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
        return RawReading(station=station, values=values)

    async def _read(self, client: Client, reg: Register, unit: int) -> int | float | bool:
        count = WORDS[reg.type]
        try:
            if reg.table == "holding":
                rr = await client.read_holding_registers(reg.address, count=count, device_id=unit)
            elif reg.table == "input":
                rr = await client.read_input_registers(reg.address, count=count, device_id=unit)
            elif reg.table == "coil":
                rr = await client.read_coils(reg.address, count=1, device_id=unit)
            else:
                rr = await client.read_discrete_inputs(reg.address, count=1, device_id=unit)
        except ModbusIOException as err:
            raise StationError(
                "timeout", f"no valid answer (timeout or CRC error): {err}"
            ) from None
        except ConnectionException:
            raise
        except ModbusException as err:
            raise StationError("error", f"{type(err).__name__}: {err}") from None
        if rr.isError():
            code = getattr(rr, "exception_code", "?")
            raise StationError(
                "exception", f"Modbus exception {code} reading {reg.table} {reg.address}"
            )
        words = list(rr.bits[:1]) if reg.table in ("coil", "discrete") else list(rr.registers)
        try:
            return decode(reg, [int(w) for w in words])
        except ValueError as err:
            raise StationError("malformed", str(err)) from None
