"""MQTT v5 consumer: persistent session, shared subscription, manual acknowledgement.

paho-mqtt runs its network loop in its own thread; messages are handed to the
asyncio loop as :class:`Delivery` items. Acknowledgements carry the connection
generation they were received on: after a reconnect the broker redelivers what
was not acknowledged, possibly reusing packet ids, so a stale ack is not sent
(it could acknowledge a different, unprocessed message).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import TypeAdapter, ValidationError

from collector.config import MqttSettings
from collector.metrics import Metrics
from takt_wire.acks import encode_ack, seq_ranges
from takt_wire.events import Name
from takt_wire.signing import message_properties
from takt_wire.topics import acks_topic, events_filter, shared

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    topic: str
    payload: bytes
    properties: dict[str, object]
    mid: int
    qos: int
    generation: int


class Consumer:
    """Owns the paho client; deliveries go to ``queue`` on ``loop``."""

    def __init__(
        self,
        settings: MqttSettings,
        metrics: Metrics,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Delivery],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._loop = loop
        self._queue = queue
        self._generation = 0
        self._lock = threading.Lock()
        self.connected = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.topic_filter = shared(settings.group, events_filter(settings.site))
        try:  # confirmations name their collector (a wire Name) for diagnosis
            self._confirmer = TypeAdapter(Name).validate_python(settings.client_id)
        except ValidationError:
            self._confirmer = "collector"
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,
        )
        if settings.username:
            password = settings.password.get_secret_value() if settings.password else None
            client.username_pw_set(settings.username, password)
        if settings.tls_ca_file:
            client.tls_set(ca_certs=str(settings.tls_ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        # paho accepts fractional delays; a missing subscription costs agents their resends.
        client.reconnect_delay_set(
            min_delay=settings.reconnect_min_s,  # type: ignore[arg-type]
            max_delay=settings.reconnect_max_s,  # type: ignore[arg-type]
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.session_expiry_s
        props.ReceiveMaximum = self.settings.receive_maximum
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect after the acks queued so far are sent; the session stays on the broker."""
        self._client.disconnect()
        self._client.loop_stop()

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
                self._client.publish(topic, payload, qos=1)
            confirmed += len(seqs)
        return confirmed

    def ack(self, deliveries: list[Delivery]) -> int:
        """Acknowledge deliveries of the current connection; return how many were sent."""
        sent = 0
        with self._lock:
            generation = self._generation
        for d in deliveries:
            if d.qos > 0 and d.generation == generation:
                self._client.ack(d.mid, d.qos)
                sent += 1
        return sent

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("mqtt connect refused", extra={"reason": str(reason)})
            return
        with self._lock:
            self._generation += 1
        # Subscribe on every connect, session present or not: Mosquitto restores a
        # persistent session after a restart but not its $share subscription.
        client.subscribe(self.topic_filter, options=SubscribeOptions(qos=1))
        self.metrics.mqtt_connected.set(1)
        self._loop.call_soon_threadsafe(self.connected.set)
        log.info(
            "mqtt connected",
            extra={"filter": self.topic_filter, "session_present": flags.session_present},
        )

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.metrics.mqtt_connected.set(0)
        self.metrics.subscribed.set(0)
        self._loop.call_soon_threadsafe(self.connected.clear)
        self._loop.call_soon_threadsafe(self.subscribed.clear)
        log.warning("mqtt disconnected", extra={"reason": str(reason)})

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(r.is_failure for r in reasons):
            self.metrics.subscribed.set(0)
            log.error("mqtt subscription refused", extra={"reasons": [str(r) for r in reasons]})
            return
        self.metrics.subscribed.set(1)
        self._loop.call_soon_threadsafe(self.subscribed.set)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        delivery = Delivery(
            msg.topic,
            bytes(msg.payload),
            message_properties(msg),
            msg.mid,
            msg.qos,
            self._generation,
        )
        self._loop.call_soon_threadsafe(self._queue.put_nowait, delivery)
