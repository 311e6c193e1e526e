"""The engine's MQTT link: shared-subscription consumer and QoS 1 publisher, on one session.

The session (``takt_common.mqtt``) owns TLS, auth, reconnects and the handoff from
paho's thread; here the engine's choices: a persistent session whose messages are
acknowledged (manual PUBACK) only after the engine processed them and stored the
resulting transitions, so a crash redelivers instead of losing.
"""

from __future__ import annotations

import asyncio

from kpi_service.alerts.config import AlertMqttSettings
from takt_common.mqtt import Hooks, Message, MqttSession

__all__ = ["Message", "MqttLink"]


class MqttLink:
    def __init__(self, settings: AlertMqttSettings, *, subscription: str | None) -> None:
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.session = MqttSession(
            settings,
            client_id=settings.client_id or "takt-alerts",
            subscriptions=[subscription] if subscription else [],
            hooks=Hooks(on_message=self.messages.put_nowait),
            manual_ack=True,
            clean_start=False,
            session_expiry_s=settings.session_expiry_s,
            # Unacknowledged batches the broker may have in flight to us: the backpressure.
            receive_maximum=settings.receive_maximum,
            max_inflight=100,
            name="alerts-mqtt",
        )
        self.connected = self.session.connected

    async def start(self, timeout_s: float = 10.0) -> None:
        self.session.start()
        await self.session.wait_connected(timeout_s)

    async def stop(self) -> None:
        await self.session.close()

    def ack(self, message: Message) -> None:
        self.session.ack(message)

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish and wait for the broker's PUBACK (QoS 1); MqttError if it does not come."""
        await self.session.publish_confirmed(topic, payload, qos=qos, timeout_s=10)
