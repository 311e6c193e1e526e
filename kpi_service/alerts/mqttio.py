"""One MQTT v5 connection for the engine: shared-subscription consumer and QoS 1 publisher.

paho runs its network loop in its own thread; messages cross into asyncio through a
queue, and are acknowledged (manual PUBACK) only after the engine processed them and
the resulting transitions were stored, so a crash redelivers instead of losing.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from takt_wire.signing import message_properties

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 3600
"""The broker keeps our subscription and queues batches for an hour while we restart."""
RECEIVE_MAXIMUM = 100
"""QoS 1 batches unacknowledged at once; bounds the in-process queue (manual acks)."""


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    properties: dict[str, object] = field(default_factory=dict)
    """MQTT v5 user properties (the batch signature travels there)."""


class MqttLink:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        subscription: str | None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host, self.port, self.subscription = host, port, subscription
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.connected = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if username:
            self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(100)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish

    async def start(self, timeout_s: float = 10.0) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        # Unacknowledged batches the broker may have in flight to us: the backpressure.
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        self._client.connect_async(
            self.host, self.port, keepalive=30, clean_start=False, properties=properties
        )
        self._client.loop_start()
        async with asyncio.timeout(timeout_s):
            await self.connected.wait()

    async def stop(self) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    def ack(self, message: Message) -> None:
        if message.qos > 0:
            self._client.ack(message.mid, message.qos)

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish and wait for the broker's PUBACK (QoS 1)."""
        future: asyncio.Future[None] = self._loop.create_future()
        with self._lock:
            info = self._client.publish(topic, payload, qos=qos)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise RuntimeError(f"publish refused: {mqtt.error_string(info.rc)}")
            if qos == 0:
                return
            self._acks[info.mid] = future
        async with asyncio.timeout(10):
            await future

    # -- paho thread callbacks ---------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("MQTT connect refused: %s", reason)
            return
        sock = client.socket()
        if isinstance(sock, socket.socket):
            # An alert published right after a PUBACK must not wait for the broker's
            # delayed ACK (Nagle): measured 40 ms -> under 10 ms in bench_alerts.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.subscription is not None:
            client.subscribe(self.subscription, qos=1)
        self._loop.call_soon_threadsafe(self.connected.set)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._loop.call_soon_threadsafe(self.connected.clear)
        if reason.is_failure:
            log.warning("MQTT connection lost (%s); paho reconnects", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        message = Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, message_properties(msg))
        self._loop.call_soon_threadsafe(self.messages.put_nowait, message)

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: Properties,
    ) -> None:
        with self._lock:
            future = self._acks.pop(mid, None)
        if future is not None:
            self._loop.call_soon_threadsafe(_settle, future, reason)


def _settle(future: asyncio.Future[None], reason: ReasonCode) -> None:
    if future.done():
        return
    if reason.is_failure:
        future.set_exception(RuntimeError(f"broker refused the publish: {reason}"))
    else:
        future.set_result(None)
