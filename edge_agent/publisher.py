"""Outbox → broker: batched QoS 1 publishing with window-based flow control.

Many events travel in one takt_wire Batch per MQTT message; at most ``window``
messages are unacknowledged at a time (paho collapses without flow control,
see DESIGN.md). An event leaves the outbox only after the PUBACK of the
message that carried it. Every connection is a fresh paho client with a clean
session: on reconnect the whole pending backlog is re-sent from the oldest
event, in order (consumers drop duplicates by identity). Events older than
``historical_after_s`` when sent are flagged ``historical``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.backoff import Backoff
from edge_agent.config import GatewayConfig
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox
from takt_wire.signing import SIGNATURE_PROPERTY, sign
from takt_wire.topics import agent_status_topic, events_topic

log = logging.getLogger(__name__)

_HISTORICAL = ',"historical":true}'


class Publisher:
    def __init__(
        self, config: GatewayConfig, outbox: Outbox, metrics: AgentMetrics, boot: str
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.metrics = metrics
        self.boot = boot
        self.topic = events_topic(config.site, config.agent_id)
        self.status_topic = agent_status_topic(config.site, config.agent_id)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self.progress = asyncio.Event()
        self._inflight: dict[int, tuple[int, int, int, int]] = {}
        self._cursor = -1
        self._session = 0
        self._client: mqtt.Client | None = None
        self.connected = False
        secret = config.signing_key
        self._signing_key = secret.get_secret_value().encode() if secret else None

    def notify(self) -> None:
        """New events were committed."""
        self._wake.set()

    # -- one connection -------------------------------------------------

    def _make_client(self, session: int, loop: asyncio.AbstractEventLoop) -> mqtt.Client:
        broker = self.config.broker
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=broker.client_id or f"takt-agent-{self.config.agent_id}",
            protocol=mqtt.MQTTv5,
        )
        client.max_inflight_messages_set(self.config.publish.window)
        if broker.username:
            password = broker.password.get_secret_value() if broker.password else None
            client.username_pw_set(broker.username, password)
        if broker.tls:
            client.tls_set(
                ca_certs=str(broker.ca_file) if broker.ca_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        client.will_set(self.status_topic, self._status("offline"), qos=1, retain=True)

        def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            loop.call_soon_threadsafe(self._on_connect, session, not reason.is_failure, str(reason))

        def on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            loop.call_soon_threadsafe(self._on_disconnect, session, str(reason))

        def on_publish(_c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
            loop.call_soon_threadsafe(
                self._on_ack, session, mid, not reason.is_failure, str(reason)
            )

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        return client

    def _status(self, status: str) -> bytes:
        return json.dumps(
            {"agent": self.config.agent_id, "boot": self.boot, "status": status}
        ).encode()

    def _on_connect(self, session: int, ok: bool, reason: str) -> None:
        if session != self._session:
            return
        if ok:
            self.connected = True
            self.metrics.broker_connected.set(1)
            log.info("connected to broker %s:%d", self.config.broker.host, self.config.broker.port)
        else:
            log.error("broker refused the connection: %s", reason)
            self._lost.set()
        self._up.set()

    def _on_disconnect(self, session: int, reason: str) -> None:
        if session != self._session:
            return
        if self.connected:
            log.warning("lost the broker connection: %s", reason)
        self.connected = False
        self.metrics.broker_connected.set(0)
        self._lost.set()

    def _on_ack(self, session: int, mid: int, ok: bool, reason: str) -> None:
        if session != self._session:
            return
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return
        first, last, count, historical = entry
        if not ok:
            log.error(
                "broker refused batch %d..%d: %s; will resend after reconnect", first, last, reason
            )
            self._lost.set()
            return
        self.outbox.acked(first, last)
        self.progress.set()
        self.metrics.published_events.inc(count)
        self.metrics.published_batches.inc()
        if historical:
            self.metrics.historical_events.inc(historical)
        self.metrics.inflight.set(len(self._inflight))
        self.metrics.outbox_pending.set(self.outbox.pending)
        self.metrics.outbox_fill.set(self.outbox.fill_ratio)
        if self.outbox.pending == 0 and not self._inflight:
            self._idle.set()
        self._wake.set()

    def _fill(self, client: mqtt.Client) -> None:
        cfg = self.config.publish
        while len(self._inflight) < cfg.window:
            rows = self.outbox.fetch(self._cursor, cfg.batch_max_events)
            if not rows:
                return
            now = time.time()
            late = now - cfg.historical_after_s
            parts: list[str] = []
            size = 0
            historical = 0
            for _seq, created, body in rows:
                if created < late:
                    body = body[:-1] + _HISTORICAL
                    historical += 1
                if parts and size + len(body) > cfg.batch_max_bytes:
                    break
                parts.append(body)
                size += len(body) + 1
            used = rows[: len(parts)]
            sent_at = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
            payload = (
                f'{{"v":1,"agent":"{self.config.agent_id}","boot":"{self.boot}",'
                f'"sent_at":"{sent_at}","events":[{",".join(parts)}]}}'
            ).encode()
            properties = None
            if self._signing_key is not None:
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                key_id = cfg.signing_key_id
                properties.UserProperty = [
                    (SIGNATURE_PROPERTY, sign(payload, key_id, self._signing_key))
                ]
            info = client.publish(self.topic, payload, qos=1, properties=properties)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                log.warning(
                    "publish failed (%s); waiting for reconnect", mqtt.error_string(info.rc)
                )
                self._lost.set()
                return
            first, last = used[0][0], used[-1][0]
            self._inflight[info.mid] = (first, last, len(used), min(historical, len(used)))
            self._cursor = last
            self.metrics.inflight.set(len(self._inflight))

    async def _connection(self, loop: asyncio.AbstractEventLoop) -> bool:
        """One connection's life; True when it got connected at all."""
        self._session += 1
        self._up = asyncio.Event()
        self._lost = asyncio.Event()
        self._inflight.clear()
        self._cursor = -1
        client = self._make_client(self._session, loop)
        broker = self.config.broker
        self._client = client
        try:
            await asyncio.to_thread(client.connect, broker.host, broker.port, broker.keepalive)
        except (OSError, ssl.SSLError) as err:
            log.warning("cannot reach broker %s:%d: %s", broker.host, broker.port, err)
            return False
        client.loop_start()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._up.wait(), timeout=15)
            if not self.connected:
                return False
            client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
            while not self._lost.is_set():
                self._wake.clear()
                self._fill(client)
                if self.outbox.pending == 0 and not self._inflight:
                    self._idle.set()
                else:
                    self._idle.clear()
                waiters = [asyncio.ensure_future(e.wait()) for e in (self._wake, self._lost)]
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
            return True
        finally:
            self._session += 1  # late callbacks of this client are ignored from now on
            self.connected = False
            self.metrics.broker_connected.set(0)
            self._inflight.clear()
            self.metrics.inflight.set(0)
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            self._client = None

    async def run(self) -> None:
        """Publish forever, reconnecting with capped, jittered backoff."""
        loop = asyncio.get_running_loop()
        backoff = Backoff(base=0.2, cap=self.config.broker.reconnect_max_s)
        while True:
            if await self._connection(loop):
                backoff.reset()
            self.metrics.reconnects.labels("broker").inc()
            await asyncio.sleep(backoff.next_delay())

    async def flush(self, within_s: float) -> bool:
        """Wait until every committed event is acknowledged (or ``within_s`` passed)."""
        self._wake.set()
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self.outbox.pending == 0 and not self._inflight:
                return True
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout=0.5)
        return self.outbox.pending == 0

    async def announce_offline(self) -> None:
        """Clean shutdown: say offline ourselves (a clean disconnect sends no will)."""
        client = self._client
        if client is not None and self.connected:
            info = client.publish(self.status_topic, self._status("offline"), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                await asyncio.to_thread(info.wait_for_publish, 3.0)
