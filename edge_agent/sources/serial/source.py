"""Serial lines (pyserial): framed, checksummed readings; survives the port vanishing.

Reads run in a worker thread (pyserial is blocking) with a short timeout so a
cancelled agent never waits long. When the port disappears (USB unplugged, pty
closed) the read fails; the port is closed and reopened, by path, with capped,
jittered backoff until the device is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import serial

from edge_agent.config import GatewayConfig
from edge_agent.mapping import RawReading
from edge_agent.metrics import AgentMetrics
from edge_agent.sources.base import Binding, Sink
from edge_agent.sources.serial.framing import Corrupt, FrameDecoder
from edge_agent.sources.serial.models import SerialBinding, SerialConnection
from takt_common.backoff import Backoff

log = logging.getLogger(__name__)


def _read(port: serial.SerialBase) -> bytes:
    data: bytes = port.read(1)
    if data and port.in_waiting:
        data += port.read(port.in_waiting)
    return data


class SerialSource:
    def __init__(
        self, bindings: list[Binding], config: GatewayConfig, metrics: AgentMetrics
    ) -> None:
        if len(bindings) != 1:
            raise ValueError("a serial source serves exactly one station")
        self.binding = bindings[0]
        conn = self.binding.station.connection
        assert isinstance(conn, SerialConnection)
        self.conn = conn
        self.metrics = metrics
        self.station = self.binding.station.id
        self.name = f"serial:{self.station}"
        self.settings = self.binding.profile.section(SerialBinding)
        self.connected = asyncio.Event()

    def _open(self) -> serial.SerialBase:
        """A local port (/dev/ttyUSB0) or a serial device server (socket://, rfc2217://)."""
        s = self.settings
        return serial.serial_for_url(
            self.conn.resolve(),
            baudrate=s.baudrate,
            bytesize=s.bytesize,
            parity=s.parity,
            stopbits=s.stopbits,
            timeout=0.2,
        )

    async def run(self, sink: Sink) -> None:
        backoff = Backoff(base=0.1, cap=5.0)
        gauge = self.metrics.source_connected.labels(self.name)
        while True:
            try:
                port = await asyncio.to_thread(self._open)
            except (OSError, serial.SerialException) as err:
                log.warning("%s: cannot open the port: %s", self.name, err)
                await asyncio.sleep(backoff.next_delay())
                continue
            log.info("%s: port %s open", self.name, port.port)
            gauge.set(1)
            self.connected.set()
            backoff.reset()
            try:
                await self._pump(port, sink)
            except (OSError, serial.SerialException) as err:
                log.warning("%s: port lost (%s); reopening", self.name, err)
                self.metrics.reconnects.labels(self.name).inc()
            finally:
                gauge.set(0)
                self.connected.clear()
                with contextlib.suppress(OSError, serial.SerialException):
                    port.close()
            await asyncio.sleep(backoff.next_delay())

    async def _pump(self, port: serial.SerialBase, sink: Sink) -> None:
        decoder = FrameDecoder(self.settings.framing, self.settings.record)
        while True:
            data = await asyncio.to_thread(_read, port)
            if not data:
                continue
            readings: list[RawReading] = []
            for item in decoder.feed(data):
                if isinstance(item, Corrupt):
                    self.metrics.corrupt_frames.labels(self.station, item.reason).inc()
                    log.info("%s: %s frame skipped: %r", self.name, item.reason, item.raw[:80])
                    continue
                readings.append(RawReading(station=self.station, values=dict(item)))
            if readings:
                await sink(readings)
