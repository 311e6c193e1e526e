"""The simulated MQTT counter gateway (``takt-sim-counter``), one paho client for all stations.

QoS 1 with PUBACK-paced flow control: at most ``window`` messages wait for their
PUBACK, so a big floor neither overflows paho's queue nor the broker; ``flush``
returns only when every message was acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from simulators.devicestate import IDENTITY, DeviceState
from simulators.frames import counter_payload, state_payload
from takt_common.errors import TaktError

log = logging.getLogger(__name__)


class MqttGatewayError(TaktError, RuntimeError):
    """The simulated gateway could not reach or publish to the broker."""


class MqttGateway:
    def __init__(
        self,
        host: str,
        port: int,
        prefixes: dict[str, str],
        duplicate_p: dict[str, float],
        start_epoch_ms: int,
        seed: int,
        *,
        username: str | None = None,
        password: str | None = None,
        window: int = 500,
    ) -> None:
        self.host, self.port = host, port
        self.prefixes = prefixes
        self._dup_p = duplicate_p
        self._rng = {s: random.Random(f"{seed}/{s}/mqtt") for s in prefixes}
        self._epoch0 = start_epoch_ms
        self._window = window
        self._pending = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room = asyncio.Event()
        self._connected = asyncio.Event()
        self._connect_error: str | None = None
        self.connect_timeout_s = 10.0
        self.flush_timeout_s = 60.0
        self.published = 0
        self.disconnects = 0
        self._stopping = False
        self._last_ts: dict[str, int] = {}
        self.duplicates = 0
        client_id = f"takt-sim-{uuid.uuid4().hex[:8]}"
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=5)  # a broker restart is short
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._client.on_disconnect = self._on_disconnect

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        assert self._loop is not None
        if rc.is_failure:
            self._connect_error = str(rc)
        self._loop.call_soon_threadsafe(self._connected.set)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if self._stopping:
            return
        self.disconnects += 1  # paho's loop reconnects; QoS 1 messages are resent
        log.warning("simulated MQTT gateway lost the broker (%s); reconnecting", rc)

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        with self._lock:
            self._pending -= 1
            low = self._pending <= self._window // 2
        if low and self._loop is not None:
            self._loop.call_soon_threadsafe(self._room.set)

    async def start(self) -> None:
        timeout = self.connect_timeout_s
        self._loop = asyncio.get_running_loop()
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except OSError as err:
            raise MqttGatewayError(f"cannot reach broker {self.host}:{self.port}: {err}") from err
        self._client.loop_start()
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError as err:
            raise MqttGatewayError(f"broker {self.host}:{self.port} did not answer") from err
        if self._connect_error:
            raise MqttGatewayError(f"broker refused the connection: {self._connect_error}")

    async def _send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        while True:
            with self._lock:
                if self._pending < self._window:
                    self._pending += 1
                    break
                self._room.clear()
            await self._room.wait()
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            with self._lock:
                self._pending -= 1
            raise MqttGatewayError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        self.published += 1

    async def publish(self, station: str, state: DeviceState, ts_ms: int, kind: str) -> None:
        """A counter message (heartbeat or change); badge/state changes also update ``state``."""
        if kind == "heartbeat" and self._last_ts.get(station) == ts_ms:
            return  # a change message already carried this instant
        self._last_ts[station] = ts_ms
        prefix = self.prefixes[station]
        ts = self._epoch0 + ts_ms
        payload = counter_payload(state, ts)
        await self._send(f"{prefix}/counter", payload)
        if self._dup_p.get(station, 0.0) and self._rng[station].random() < self._dup_p[station]:
            await self._send(f"{prefix}/counter", payload)
            self.duplicates += 1
        if kind == IDENTITY:
            await self._send(f"{prefix}/state", state_payload(state, ts), retain=True)

    async def publish_initial(self, station: str, state: DeviceState) -> None:
        await self._send(
            f"{self.prefixes[station]}/state", state_payload(state, self._epoch0), retain=True
        )

    async def flush(self) -> None:
        """Wait until every message got its PUBACK (at most ``flush_timeout_s``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.flush_timeout_s
        while True:
            with self._lock:
                if self._pending <= 0:
                    return
                self._room.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise MqttGatewayError(f"{self._pending} messages still unacknowledged")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), remaining)

    async def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
