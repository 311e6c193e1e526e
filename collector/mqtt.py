"""The collector's MQTT side: persistent session, shared subscription, manual acknowledgement.

The session (``takt_common.mqtt``) owns TLS, auth, reconnects and the handoff of
messages from paho's thread to the asyncio queue. A delivery is acknowledged only
after InfluxDB wrote it, and only on the connection it arrived on: after a
reconnect the broker redelivers what was not acknowledged, possibly reusing packet
ids, so a stale ack is not sent (it could acknowledge a different, unprocessed message).
"""

from __future__ import annotations

import asyncio
import logging

from pydantic import TypeAdapter, ValidationError

from collector.config import MqttSettings
from collector.metrics import Metrics
from takt_common.mqtt import Hooks, Message, MqttError, MqttSession
from takt_wire.acks import encode_ack, seq_ranges
from takt_wire.events import Name
from takt_wire.topics import acks_topic, events_filter, shared

log = logging.getLogger(__name__)

Delivery = Message
"""A received message with the connection (``generation``) it arrived on."""


class Consumer:
    """Owns the session; deliveries go to ``queue``."""

    def __init__(
        self,
        settings: MqttSettings,
        metrics: Metrics,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Delivery],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.topic_filter = shared(settings.group, events_filter(settings.site))
        try:  # confirmations name their collector (a wire Name) for diagnosis
            self._confirmer = TypeAdapter(Name).validate_python(settings.client_id)
        except ValidationError:
            self._confirmer = "collector"
        self.session = MqttSession(
            settings,
            client_id=settings.client_id,
            # Subscribed on every connect, session present or not: Mosquitto restores a
            # persistent session after a restart but not its $share subscription.
            subscriptions=[self.topic_filter],
            hooks=Hooks(
                on_message=queue.put_nowait,
                on_connect=self._on_connect,
                on_disconnect=self._on_disconnect,
                on_subscribe=self._on_subscribe,
            ),
            manual_ack=True,
            clean_start=False,
            session_expiry_s=settings.session_expiry_s,
            receive_maximum=settings.receive_maximum,
            name="collector-mqtt",
        )
        self.connected = self.session.connected
        self.subscribed = self.session.subscribed

    def start(self) -> None:
        self.session.start()

    async def stop(self) -> None:
        """Disconnect after the acks queued so far are sent; the session stays on the broker."""
        await self.session.close()

    def confirm(self, stored: dict[tuple[str, str], list[int]]) -> int:
        """Tell each agent which of its sequence numbers are stored; return how many.

        QoS 1 and fire-and-forget: a confirmation lost on the way only makes the agent
        resend those events later, which the idempotent write absorbs.
        """
        by = self._confirmer
        confirmed = 0
        for (site, agent), seqs in stored.items():
            topic = acks_topic(site, agent)
            for payload in encode_ack(agent, seq_ranges(seqs), by):
                try:
                    self.session.publish(topic, payload, qos=1)
                except MqttError as err:
                    log.warning("confirmation not sent", extra={"agent": agent, "error": str(err)})
            confirmed += len(seqs)
        return confirmed

    def ack(self, deliveries: list[Delivery]) -> int:
        """Acknowledge deliveries of the current connection; return how many were sent."""
        return sum(self.session.ack(d) for d in deliveries)

    # -- session hooks (asyncio loop) ------------------------------------------------------

    def _on_connect(self, generation: int, session_present: bool) -> None:
        self.metrics.mqtt_connected.set(1)
        log.info(
            "mqtt connected",
            extra={"filter": self.topic_filter, "session_present": session_present},
        )

    def _on_disconnect(self, generation: int, reason: str) -> None:
        self.metrics.mqtt_connected.set(0)
        self.metrics.subscribed.set(0)
        log.warning("mqtt disconnected", extra={"reason": reason})

    def _on_subscribe(self, ok: bool, reasons: str) -> None:
        self.metrics.subscribed.set(1 if ok else 0)
        if not ok:
            log.error("mqtt subscription refused", extra={"reasons": reasons})
