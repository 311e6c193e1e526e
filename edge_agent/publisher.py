"""Outbox → broker → collector: batched QoS 1 publishing, deleted only when stored.

Many events travel in one takt_wire Batch per MQTT message; at most ``window``
messages await their PUBACK at a time (paho collapses without flow control, see
DESIGN.md). A PUBACK only paces that window: the broker can still lose a message
it acknowledged (a restart drops ``$share`` subscriptions, a crash what it had
not saved). An event leaves the outbox only when a collector confirms on
``takt/v1/<site>/acks/<agent>`` that it is stored (see takt_wire.acks and
docs/decisions.md). Sent events that are not confirmed in time, or that the
broker refused (any PUBACK reason but plain success, "no matching subscribers"
included), are sent again with a growing delay; writes downstream are
idempotent, so a resend is harmless. Every connection is a fresh paho client
with a clean session: on reconnect the whole pending backlog is sent again from
the oldest event, in order. Events whose device time lies more than
``historical_after_s`` behind the station's clock when sent are flagged
``historical``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge_agent.batching import compose
from edge_agent.config import GatewayConfig
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox, Row
from takt_common.backoff import Backoff
from takt_common.mqtt import tls_context
from takt_wire import ContractError
from takt_wire.acks import decode_ack
from takt_wire.signing import SIGNATURE_PROPERTY
from takt_wire.topics import acks_topic, agent_status_topic, events_topic

log = logging.getLogger(__name__)

_REFUSED_RETRY_S = 1.0


@dataclass
class _Sent:
    """One message's events: [first, last] of the outbox, sent and not yet confirmed."""

    first: int
    last: int
    count: int
    historical: int
    attempts: int = 0
    refused: bool = False
    due: float = 0.0
    """Monotonic time at which it is sent again unless confirmed before."""


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
        self.acks_topic = acks_topic(config.site, config.agent_id)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self.progress = asyncio.Event()
        self._inflight: dict[int, _Sent] = {}
        """Awaiting PUBACK, by MQTT message id."""
        self._waiting: dict[int, _Sent] = {}
        """PUBACKed (or refused) and awaiting the collector's confirmation, by first seq."""
        self._due: list[tuple[float, int]] = []
        """Heap of (due, first) over ``_waiting``; an entry whose due changed is skipped."""
        self.unconfirmed = 0
        """Events sent on this connection and not confirmed stored yet (kept as a count:
        with one message per event there are as many entries as events)."""
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
        if broker.tls:  # the shared TLS setup: CA, client certificate, hostname check
            client.tls_set_context(tls_context(broker))
        client.will_set(self.status_topic, self._status("offline"), qos=1, retain=True)

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if not reason.is_failure:
                # Before any publish: confirmations must find us subscribed.
                c.subscribe(self.acks_topic, options=SubscribeOptions(qos=1))
            loop.call_soon_threadsafe(self._on_connect, session, not reason.is_failure, str(reason))

        def on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            loop.call_soon_threadsafe(self._on_disconnect, session, str(reason))

        def on_publish(_c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
            loop.call_soon_threadsafe(self._on_puback, session, mid, reason.value == 0, str(reason))

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            loop.call_soon_threadsafe(self._on_confirm, bytes(msg.payload))

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_message = on_message
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

    def _on_puback(self, session: int, mid: int, ok: bool, reason: str) -> None:
        if session != self._session:
            return
        sent = self._inflight.pop(mid, None)
        if sent is None:
            return
        now = time.monotonic()
        cfg = self.config.publish
        sent.refused = not ok
        if ok:
            sent.due = now + min(
                cfg.confirm_timeout_max_s, cfg.confirm_timeout_s * 2**sent.attempts
            )
            self.metrics.published_events.inc(sent.count)
            self.metrics.published_batches.inc()
            if sent.historical:
                self.metrics.historical_events.inc(sent.historical)
        else:
            # Not delivered, whatever the reason (0x10 "no matching subscribers" included:
            # the broker dropped it). Keep it and send it again shortly.
            sent.due = now + min(cfg.confirm_timeout_s, _REFUSED_RETRY_S * 2**sent.attempts)
            log.warning(
                "broker did not take batch %d..%d (%s); sending it again in %.1f s",
                sent.first,
                sent.last,
                reason,
                sent.due - now,
            )
        self._waiting[sent.first] = sent
        heapq.heappush(self._due, (sent.due, sent.first))
        self._update_gauges()
        self._wake.set()

    def _on_confirm(self, payload: bytes) -> None:
        """A collector stored these events: now, and only now, they leave the outbox."""
        try:
            ack = decode_ack(payload)
        except ContractError as err:
            log.warning("ignored a malformed confirmation: %s", err)
            return
        if ack.agent != self.config.agent_id:
            log.warning("ignored a confirmation for agent %r", ack.agent)
            return
        deleted = 0
        for first, last in ack.ranges:
            deleted += self.outbox.acked(first, last)
        if not deleted:
            return
        self.metrics.confirmed_events.inc(deleted)
        self._forget_stored(ack.ranges)
        self._update_gauges()
        self.progress.set()
        if self.outbox.pending == 0 and not self._inflight:
            self._idle.set()
        self._wake.set()

    def _forget_stored(self, ranges: list[tuple[int, int]]) -> None:
        """Stop tracking the sent messages that lie wholly inside a confirmed range.

        A message confirmed only in part (by two collectors) stays tracked: when it is
        due, the outbox hands back just its unconfirmed rows, or none. The waiting table
        is probed by key or scanned, whichever is shorter, so a confirmation costs
        little even with one message per event.
        """
        for first, last in ranges:
            if last - first < len(self._waiting):
                keys = [k for k in range(first, last + 1) if k in self._waiting]
            else:
                keys = [k for k in self._waiting if first <= k <= last]
            for key in keys:
                if self._waiting[key].last <= last:
                    self.unconfirmed -= self._waiting.pop(key).count
            for mid, sent in list(self._inflight.items()):  # at most `window` entries
                if first <= sent.first and sent.last <= last:
                    self.unconfirmed -= self._inflight.pop(mid).count

    def _forget_all(self) -> None:
        """A new connection sends the whole backlog again: nothing is in flight."""
        self._inflight.clear()
        self._waiting.clear()
        self._due.clear()
        self.unconfirmed = 0

    def _update_gauges(self) -> None:
        m = self.metrics
        m.inflight.set(len(self._inflight))
        m.unconfirmed_events.set(self.unconfirmed)
        m.outbox_pending.set(self.outbox.pending)
        m.outbox_fill.set(self.outbox.fill_ratio)

    # -- sending ----------------------------------------------------------

    def _fill(self, client: mqtt.Client) -> bool:
        """Send what is due again, then new events, within the window; False if publish failed."""
        cfg = self.config.publish
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            if len(self._inflight) >= cfg.window:
                return True
            due, first = heapq.heappop(self._due)
            sent = self._waiting.get(first)
            if sent is None or sent.due != due:
                continue  # confirmed meanwhile, or due again later
            del self._waiting[first]
            self.unconfirmed -= sent.count
            rows = self.outbox.fetch_range(sent.first, sent.last)
            self.metrics.resent_events.labels("refused" if sent.refused else "unconfirmed").inc(
                len(rows)
            )
            while rows:  # a resend may take several messages (flags change the sizes)
                used = self._send(client, rows, sent.attempts + 1)
                if not used:
                    return False
                rows = rows[used:]
        while len(self._inflight) < cfg.window and self.unconfirmed < cfg.max_unconfirmed_events:
            rows = self.outbox.fetch(self._cursor, cfg.batch_max_events)
            if not rows:
                return True
            if not self._send(client, rows, 0):
                return False
        return True

    def _send(self, client: mqtt.Client, rows: list[Row], attempts: int) -> int:
        """Publish a prefix of rows that fits ``batch_max_bytes`` as one batch message;
        return how many rows it took (0: the publish failed)."""
        cfg = self.config.publish
        key = (cfg.signing_key_id, self._signing_key) if self._signing_key is not None else None
        built = compose(
            rows,
            agent=self.config.agent_id,
            boot=self.boot,
            now=time.time(),
            historical_after_s=cfg.historical_after_s,
            max_bytes=cfg.batch_max_bytes,
            key=key,
        )
        properties = None
        if built.signature is not None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.UserProperty = [(SIGNATURE_PROPERTY, built.signature)]
        info = client.publish(self.topic, built.data, qos=1, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("publish failed (%s); waiting for reconnect", mqtt.error_string(info.rc))
            self._lost.set()
            return 0
        sent = _Sent(built.first, built.last, built.used, built.historical, attempts)
        self._inflight[info.mid] = sent
        self.unconfirmed += built.used
        self._cursor = max(self._cursor, built.last)
        self._update_gauges()
        return built.used

    def _next_due(self) -> float | None:
        if not self._due:
            return None
        return max(0.05, self._due[0][0] - time.monotonic())

    async def _connection(self, loop: asyncio.AbstractEventLoop) -> bool:
        """One connection's life; True when it got connected at all."""
        self._session += 1
        self._up = asyncio.Event()
        self._lost = asyncio.Event()
        self._forget_all()
        self._cursor = -1
        client = self._make_client(self._session, loop)
        broker = self.config.broker
        self._client = client
        try:
            await asyncio.to_thread(client.connect, broker.host, broker.port, broker.keepalive_s)
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
                if not self._fill(client):
                    break
                if self.outbox.pending == 0 and not self._inflight:
                    self._idle.set()
                else:
                    self._idle.clear()
                waiters = [asyncio.ensure_future(e.wait()) for e in (self._wake, self._lost)]
                try:
                    await asyncio.wait(
                        waiters, timeout=self._next_due(), return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for waiter in waiters:
                        waiter.cancel()
            return True
        finally:
            self._session += 1  # late callbacks of this client are ignored from now on
            self.connected = False
            self.metrics.broker_connected.set(0)
            self._forget_all()
            self._update_gauges()
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            self._client = None

    async def run(self) -> None:
        """Publish forever, reconnecting with capped, jittered backoff."""
        loop = asyncio.get_running_loop()
        broker = self.config.broker
        backoff = Backoff(base=broker.reconnect_min_s, cap=broker.reconnect_max_s)
        while True:
            if await self._connection(loop):
                backoff.reset()
            self.metrics.reconnects.labels("broker").inc()
            await asyncio.sleep(backoff.next_delay())

    async def flush(self, within_s: float) -> bool:
        """Wait until every committed event is confirmed stored (or ``within_s`` passed)."""
        self._wake.set()
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self.outbox.pending == 0:
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
