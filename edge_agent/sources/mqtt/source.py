"""Device-native MQTT topics: persistent session, QoS 1, ack after commit.

Runs on the shared session (``takt_common.mqtt``) in MQTT 3.1.1, which device
brokers speak: persistent (fixed client id, clean_session false), and messages
are acknowledged manually, only after the readings they carry are committed to
the outbox: if the agent dies in between, the broker redelivers them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Callable

from pydantic import SecretStr

from edge_agent.config import GatewayConfig
from edge_agent.mapping import RawReading
from edge_agent.metrics import AgentMetrics
from edge_agent.sources.base import Binding, Sink
from edge_agent.sources.mqtt.models import MqttBinding, MqttConnection
from takt_common.mqtt import Hooks, Message, MqttSession, MqttSettings

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
        self.connected = asyncio.Event()

    def route(self, topic: str) -> str | None:
        for regex, station in self.routes:
            if regex.match(topic):
                return station
        return None

    def settings(self) -> MqttSettings:
        """The station connection as shared session settings."""
        password = self.conn.password()
        return MqttSettings(
            host=self.conn.host,
            port=self.conn.port,
            username=self.conn.username,
            password=SecretStr(password) if password is not None else None,
            tls=self.conn.tls,
            keepalive_s=30,
            reconnect_min_s=1.0,
            reconnect_max_s=30.0,
        )

    async def run(self, sink: Sink) -> None:
        gauge = self.metrics.source_connected.labels(self.name)
        session: MqttSession

        def on_connect(_generation: int, _present: bool) -> None:
            gauge.set(1)
            log.info("%s connected; subscribing %d topics", self.name, len(self.subscriptions))

        def on_subscribe(_ok: bool, _reasons: str) -> None:
            self.connected.set()

        def on_disconnect(_generation: int, reason: str) -> None:
            self.connected.clear()
            gauge.set(0)
            self.metrics.reconnects.labels(self.name).inc()

        async def on_message(message: Message) -> None:
            def ack() -> None:
                session.ack(message)

            await self._deliver(sink, self._decode(message), ack)

        session = MqttSession(
            self.settings(),
            client_id=self.client_id,
            subscriptions=self.subscriptions,
            hooks=Hooks(
                on_message=on_message,
                on_connect=on_connect,
                on_disconnect=on_disconnect,
                on_subscribe=on_subscribe,
            ),
            manual_ack=True,
            clean_start=False,
            # Backpressure without a round trip per message: the network thread only
            # waits when MAX_PENDING messages are on their way to the outbox, so one
            # commit (one fsync) covers many messages.
            max_pending=MAX_PENDING,
            protocol=311,
            name=self.name,
        )
        async with session:
            await asyncio.Event().wait()

    async def _deliver(self, sink: Sink, raw: RawReading | None, ack: Callable[[], None]) -> None:
        if raw is None:
            ack()  # nothing to keep from a message we cannot read; it was counted and logged
            return
        await sink([raw], ack)

    def _decode(self, msg: Message) -> RawReading | None:
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
