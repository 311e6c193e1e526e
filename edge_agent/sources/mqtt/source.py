"""Device-native MQTT topics (paho-mqtt): persistent session, QoS 1, ack after commit.

The session is persistent (fixed client id, clean_session false) and messages are
acknowledged manually, only after the readings they carry are committed to the
outbox: if the agent dies in between, the broker redelivers them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import GatewayConfig
from edge_agent.mapping import RawReading
from edge_agent.metrics import AgentMetrics
from edge_agent.sources.base import Binding, Sink
from edge_agent.sources.mqtt.models import MqttBinding, MqttConnection

log = logging.getLogger(__name__)

MAX_DEVICE_PAYLOAD = 64 * 1024
MAX_PENDING = 1000
"""Device messages handed to the event loop but not yet queued for the outbox."""


def topic_regex(template: str, line: str, station: str) -> re.Pattern[str]:
    text = re.escape(template).replace(r"\{line\}", re.escape(line))
    text = text.replace(r"\{station\}", re.escape(station))
    return re.compile(f"^{text}$")


class MqttSource:
    def __init__(
        self, bindings: list[Binding], config: GatewayConfig, metrics: AgentMetrics
    ) -> None:
        conn = bindings[0].station.connection
        assert isinstance(conn, MqttConnection)
        self.conn = conn
        self.metrics = metrics
        self.name = f"mqtt:{conn.host}:{conn.port}"
        self.subscriptions: list[str] = []
        self.routes: list[tuple[re.Pattern[str], str]] = []
        for binding in bindings:
            st = binding.station
            for template in binding.profile.section(MqttBinding).topics:
                self.subscriptions.append(template.format(line=st.line, station=st.id))
                self.routes.append((topic_regex(template, st.line, st.id), st.id))
        digest = hashlib.sha256(self.name.encode()).hexdigest()[:8]
        self.client_id = conn.client_id or f"takt-agent-{config.agent_id}-{digest}"
        self._stopping = False
        self._pending = threading.BoundedSemaphore(MAX_PENDING)
        self.connected = asyncio.Event()

    def route(self, topic: str) -> str | None:
        for regex, station in self.routes:
            if regex.match(topic):
                return station
        return None

    async def run(self, sink: Sink) -> None:
        loop = asyncio.get_running_loop()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if self.conn.username:
            client.username_pw_set(self.conn.username, self.conn.password())
        if self.conn.tls:
            client.tls_set()
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        gauge = self.metrics.source_connected.labels(self.name)

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                log.warning("%s refused the connection: %s", self.name, reason)
                return
            gauge.set(1)
            log.info("%s connected; subscribing %d topics", self.name, len(self.subscriptions))
            c.subscribe([(t, 1) for t in self.subscriptions])

        def on_subscribe(_c: Any, _u: Any, _mid: int, _codes: Any, _p: Any) -> None:
            loop.call_soon_threadsafe(self.connected.set)

        def on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            loop.call_soon_threadsafe(self.connected.clear)
            gauge.set(0)
            self.metrics.reconnects.labels(self.name).inc()
            if not self._stopping:
                log.warning("%s disconnected: %s", self.name, reason)

        def on_message(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            def ack() -> None:
                c.ack(msg.mid, msg.qos)

            raw = self._decode(msg)
            # Backpressure without a round trip per message: the network thread only
            # waits when MAX_PENDING messages are on their way to the outbox, so one
            # commit (one fsync) covers many messages.
            while not self._pending.acquire(timeout=0.5):
                if self._stopping:
                    return
            future = asyncio.run_coroutine_threadsafe(self._deliver(sink, raw, ack), loop)
            future.add_done_callback(lambda _f: self._pending.release())

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect_async(self.conn.host, self.conn.port, keepalive=30)
        client.loop_start()
        try:
            await asyncio.Event().wait()
        finally:
            self._stopping = True
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)

    async def _deliver(self, sink: Sink, raw: RawReading | None, ack: Any) -> None:
        if raw is None:
            ack()  # nothing to keep from a message we cannot read; it was counted and logged
            return
        await sink([raw], ack)

    def _decode(self, msg: mqtt.MQTTMessage) -> RawReading | None:
        station = self.route(msg.topic)
        if station is None:
            log.warning("%s: message on unexpected topic %s", self.name, msg.topic)
            return None
        if len(msg.payload) > MAX_DEVICE_PAYLOAD:
            log.warning(
                "%s: %d-byte message on %s skipped (oversized)",
                self.name,
                len(msg.payload),
                msg.topic,
            )
            self.metrics.bad_fields.labels(station).inc()
            return None
        try:
            values = json.loads(msg.payload)
        except ValueError as err:
            log.warning("%s: malformed JSON on %s skipped: %s", self.name, msg.topic, err)
            self.metrics.bad_fields.labels(station).inc()
            return None
        if not isinstance(values, dict):
            log.warning("%s: JSON on %s is not an object; skipped", self.name, msg.topic)
            self.metrics.bad_fields.labels(station).inc()
            return None
        return RawReading(station=station, values=values, topic=msg.topic)
