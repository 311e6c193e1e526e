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
idempotent, so a resend is harmless. The connection is the shared MQTT session
(``takt_common.mqtt``: TLS, auth, capped reconnect, will), with a clean session
per connection: on reconnect the whole pending backlog is sent again from the
oldest event, in order. Events whose device time lies more than
``historical_after_s`` behind the station's clock when sent are flagged
``historical``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import time
from dataclasses import dataclass

from edge_agent.batching import compose
from edge_agent.config import GatewayConfig
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox, Row
from takt_common.mqtt import (
    NO_MATCHING_SUBSCRIBERS,
    Hooks,
    Message,
    MqttCodeError,
    MqttError,
    MqttSession,
    Will,
)
from takt_wire import ContractError
from takt_wire.acks import decode_ack
from takt_wire.signing import SIGNATURE_PROPERTY
from takt_wire.topics import acks_topic, agent_status_topic, events_topic

log = logging.getLogger(__name__)

_REFUSED_RETRY_S = 1.0
_PUBLISH_RETRY_S = 0.5


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
        self._generation = -1
        """The connection whose PUBACKs count; a late one of an older connection does not."""
        self._lost = asyncio.Event()
        self._session: MqttSession | None = None
        self.connected = False
        secret = config.signing_key
        self._signing_key = secret.get_secret_value().encode() if secret else None

    def notify(self) -> None:
        """New events were committed."""
        self._wake.set()

    # -- the session's hooks (on the asyncio loop) ---------------------------

    def _new_session(self) -> MqttSession:
        broker = self.config.broker
        return MqttSession(
            broker,
            client_id=broker.client_id or f"takt-agent-{self.config.agent_id}",
            # Made in the network thread before anything is published on a connection:
            # confirmations must find us subscribed.
            subscriptions=[self.acks_topic],
            hooks=Hooks(
                on_message=self._on_message,
                on_connect=self._on_connect,
                on_disconnect=self._on_disconnect,
                on_puback=self._on_puback,
            ),
            max_inflight=self.config.publish.window,
            will=Will(self.status_topic, self._status("offline"), qos=1, retain=True),
            name="broker",
        )

    def _status(self, status: str) -> bytes:
        return json.dumps(
            {"agent": self.config.agent_id, "boot": self.boot, "status": status}
        ).encode()

    def _on_connect(self, generation: int, _present: bool) -> None:
        # A clean session: whatever was in flight on the old connection is sent again.
        self._generation = generation
        self._forget_all()
        self._cursor = -1
        self._lost.clear()
        self.connected = True
        self.metrics.broker_connected.set(1)
        self._wake.set()

    def _on_disconnect(self, _generation: int, _reason: str) -> None:
        self.connected = False
        self.metrics.broker_connected.set(0)
        self.metrics.reconnects.labels("broker").inc()
        self._forget_all()
        self._update_gauges()
        self._lost.set()

    def _on_message(self, message: Message) -> None:
        self._on_confirm(message.payload)

    def _on_puback(self, generation: int, mid: int, ok: bool, reason: str) -> None:
        if generation != self._generation:
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

    def _fill(self, session: MqttSession) -> bool:
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
                used = self._send(session, rows, sent.attempts + 1)
                if not used:
                    return False
                rows = rows[used:]
        while len(self._inflight) < cfg.window and self.unconfirmed < cfg.max_unconfirmed_events:
            rows = self.outbox.fetch(self._cursor, cfg.batch_max_events)
            if not rows:
                return True
            if not self._send(session, rows, 0):
                return False
        return True

    def _send(self, session: MqttSession, rows: list[Row], attempts: int) -> int:
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
        signature = () if built.signature is None else ((SIGNATURE_PROPERTY, built.signature),)
        try:
            mid = session.publish(self.topic, built.data, qos=1, user_properties=signature)
        except MqttError as err:
            log.warning("publish failed (%s); trying again shortly", err)
            return 0
        sent = _Sent(built.first, built.last, built.used, built.historical, attempts)
        self._inflight[mid] = sent
        self.unconfirmed += built.used
        self._cursor = max(self._cursor, built.last)
        self._update_gauges()
        return built.used

    def _next_due(self) -> float | None:
        if not self._due:
            return None
        return max(0.05, self._due[0][0] - time.monotonic())

    async def _serve(self, session: MqttSession) -> None:
        """Send on this connection until it is lost."""
        generation = session.generation
        try:
            session.publish(self.status_topic, self._status("online"), qos=1, retain=True)
        except MqttError as err:
            log.warning("could not announce online: %s", err)
        while not self._lost.is_set() and session.generation == generation:
            self._wake.clear()
            sent_all = self._fill(session)
            if self.outbox.pending == 0 and not self._inflight:
                self._idle.set()
            else:
                self._idle.clear()
            # A refused publish (paho's queue full, a socket error just seen) is tried
            # again after a short pause unless the connection is reported lost first.
            timeout = self._next_due() if sent_all else _PUBLISH_RETRY_S
            waiters = [asyncio.ensure_future(e.wait()) for e in (self._wake, self._lost)]
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def run(self) -> None:
        """Publish forever; the shared session reconnects with capped, jittered backoff."""
        session = self._new_session()
        self._session = session
        session.start()
        try:
            while True:
                await session.connected.wait()
                await self._serve(session)
        finally:
            self._session = None
            # Bounded: what is not acknowledged stays in the outbox anyway.
            await session.close(timeout_s=1.0)

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
        session = self._session
        if session is None or not self.connected:
            return
        try:
            await session.publish_confirmed(
                self.status_topic, self._status("offline"), qos=1, retain=True, timeout_s=3.0
            )
        except MqttCodeError as err:
            if err.code != NO_MATCHING_SUBSCRIBERS:  # retained: kept for later subscribers
                log.warning("could not announce offline: %s", err)
        except (MqttError, TimeoutError) as err:
            log.warning("could not announce offline: %s", err)
