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
        self.routes: dict[str, str] = {}
        """Topic -> station. A template names one topic per station (no wildcards), so
        one dict lookup routes a message, whatever the number of stations."""
        for binding in bindings:
            st = binding.station
            for template in binding.profile.section(MqttBinding).topics:
                topic = template.format(line=st.line, station=st.id)
                self.subscriptions.append(topic)
                self.routes.setdefault(topic, st.id)  # the first station naming it wins
        self._waiting: list[tuple[RawReading, Message, asyncio.Future[None]]] = []
        self._handing: asyncio.Task[None] | None = None
        digest = hashlib.sha256(self.name.encode()).hexdigest()[:8]
        self.client_id = conn.client_id or f"takt-agent-{config.agent_id}-{digest}"
        self.connected = asyncio.Event()

    def route(self, topic: str) -> str | None:
        return self.routes.get(topic)

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

        def on_message(message: Message) -> asyncio.Future[None] | None:
            raw = self._decode(message)
            if raw is None:
                session.ack(message)  # nothing to keep; it was counted and logged
                return None
            return self._hand_over(sink, session, raw, message)

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
        try:
            async with session:
                await asyncio.Event().wait()
        finally:
            # Readings not yet handed over stay unacknowledged: the broker delivers
            # them again to the next session.
            if self._handing is not None:
                self._handing.cancel()
            for _raw, _message, future in self._waiting:
                future.cancel()
            self._waiting = []

    def _hand_over(
        self, sink: Sink, session: MqttSession, raw: RawReading, message: Message
    ) -> asyncio.Future[None]:
        """Queue a reading for the sink; the future (which holds the message's
        ``max_pending`` slot) resolves once the sink has taken it.

        Messages that arrive while the sink is busy go to it together, in arrival
        order, in one call with one ack: a task and a queue item per group rather
        than per message, which is most of what a device message used to cost.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((raw, message, future))
        if self._handing is None or self._handing.done():
            self._handing = asyncio.create_task(self._hand_all(sink, session))
        return future

    async def _hand_all(self, sink: Sink, session: MqttSession) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            messages = [message for _raw, message, _future in group]

            def ack(messages: list[Message] = messages) -> None:
                for message in messages:
                    session.ack(message)

            try:
                await sink([raw for raw, _message, _future in group], ack)
            finally:
                for _raw, _message, future in group:
                    if not future.done():
                        future.set_result(None)

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
