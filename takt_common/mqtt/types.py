"""What a caller of the MQTT session handles: messages, the will, the hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho


@dataclass(frozen=True, slots=True)
class Message:
    """One received message; ``generation`` names the connection it came on."""

    topic: str
    payload: bytes
    properties: dict[str, object]
    mid: int
    qos: int
    generation: int
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass
class Hooks:
    """What the caller wants to hear, each called on the asyncio loop."""

    on_message: Callable[[Message], object] | None = None
    """May return an awaitable: it runs as a task, and holds its ``max_pending`` slot."""
    on_connect: Callable[[int, bool], None] | None = None
    """(generation, session_present) after a successful CONNACK."""
    on_disconnect: Callable[[int, str], None] | None = None
    """(generation, reason) when a connection that was up is lost or closed."""
    on_subscribe: Callable[[bool, str], None] | None = None
    """(all granted, reasons) per SUBACK."""
    on_puback: Callable[[int, int, bool, str], None] | None = None
    """(generation, mid, success, reason) per QoS 1 publish answered."""


def user_properties(msg: paho.MQTTMessage) -> dict[str, object]:
    """MQTT v5 user properties of a received message, as a dict."""
    props = getattr(msg, "properties", None)
    pairs = getattr(props, "UserProperty", None) if props is not None else None
    return dict(pairs) if pairs else {}
