"""The network-thread half of the MQTT session: one paho client and its callbacks.

paho calls these callbacks in its own thread. Each one only packs what it got and
hands it to the asyncio loop with ``call_soon_threadsafe``; the session (the
``LoopSide``) decides there, and drops what a superseded client (an older
``generation``) says. Kept apart from the session so the session reads as the
connection's life cycle and this module as the thread boundary.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from takt_common.mqtt.settings import MqttSettings
from takt_common.mqtt.types import Message, Will, user_properties


@dataclass(frozen=True)
class ClientOptions:
    """How every client of one session is made (the same for each reconnect)."""

    client_id: str
    protocol: Literal[5, 311]
    clean_start: bool
    manual_ack: bool
    max_inflight: int
    tls: ssl.SSLContext | None
    will: Will | None
    subscriptions: list[str] = field(default_factory=list)
    pending_slots: threading.BoundedSemaphore | None = None
    """Backpressure: at most this many received messages on their way to the caller."""


class LoopSide(Protocol):
    """The session as the bridge sees it; every ``handle_*`` runs on the asyncio loop."""

    generation: int

    @property
    def closing(self) -> bool: ...

    def handle_refused(self, generation: int, reason: str) -> None: ...
    def handle_up(self, generation: int, session_present: bool) -> None: ...
    def handle_lost(self, generation: int, reason: str) -> None: ...
    def handle_subscribed(self, generation: int, ok: bool, reasons: str) -> None: ...
    def handle_puback(self, generation: int, mid: int, reason: ReasonCode) -> None: ...
    def handle_message(self, message: Message) -> None: ...


def make_client(
    settings: MqttSettings,
    options: ClientOptions,
    generation: int,
    side: LoopSide,
    loop: asyncio.AbstractEventLoop,
) -> paho.Client:
    """A fresh paho client whose callbacks reach ``side`` on ``loop``."""
    s, o = settings, options
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=o.client_id,
        protocol=paho.MQTTv5 if o.protocol == 5 else paho.MQTTv311,
        clean_session=None if o.protocol == 5 else o.clean_start,
        manual_ack=o.manual_ack,
    )
    client.max_inflight_messages_set(o.max_inflight)
    if s.username:
        password = s.password.get_secret_value() if s.password else None
        client.username_pw_set(s.username, password)
    if o.tls is not None:
        client.tls_set_context(o.tls)
    if o.will is not None:
        w = o.will
        client.will_set(w.topic, w.payload, qos=w.qos, retain=w.retain)

    def on_connect(c: paho.Client, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            loop.call_soon_threadsafe(side.handle_refused, generation, str(reason))
            return
        sock = c.socket()
        if isinstance(sock, socket.socket):
            # A publish right after a PUBACK must not wait for the broker's delayed
            # ACK (Nagle): measured 40 ms -> under 10 ms in bench_alerts.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if o.subscriptions:
            # Here, in the network thread, before anything the caller publishes on this
            # connection: an answer to a publish must find us subscribed.
            qos: int = s.qos
            if o.protocol == 5:
                c.subscribe([(t, SubscribeOptions(qos=qos)) for t in o.subscriptions])
            else:
                c.subscribe([(t, qos) for t in o.subscriptions])
        present = bool(getattr(flags, "session_present", False))
        loop.call_soon_threadsafe(side.handle_up, generation, present)

    def on_disconnect(_c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        loop.call_soon_threadsafe(side.handle_lost, generation, str(reason))

    def on_subscribe(_c: Any, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        ok = not any(r.is_failure for r in reasons)
        loop.call_soon_threadsafe(side.handle_subscribed, generation, ok, str(reasons))

    def on_publish(_c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        loop.call_soon_threadsafe(side.handle_puback, generation, mid, reason)

    def on_message(_c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        message = Message(
            msg.topic,
            bytes(msg.payload),
            user_properties(msg),
            msg.mid,
            msg.qos,
            generation,
            bool(msg.retain),
        )
        slots = o.pending_slots
        if slots is not None:
            # Backpressure in the network thread: it waits only when max_pending
            # messages are on their way, so one downstream commit covers many.
            while not slots.acquire(timeout=0.5):
                if side.closing or generation != side.generation:
                    return
        loop.call_soon_threadsafe(side.handle_message, message)

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.on_message = on_message
    return client
