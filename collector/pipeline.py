"""From one MQTT message to line-protocol lines and dead letters: pure, no I/O.

Order of checks: size and signature on the raw bytes (cheap, and a forged
payload is never parsed), then the wire contract in one pydantic-core pass, then
the topic, then per event: future timestamp, known station, duplicate. A bad
message is dead-lettered whole; a bad event alone, with the rest written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from collector.dedupe import SeqTracker
from collector.dlq import DeadLetter
from collector.lineproto import Formatter, UnrepresentableError, epoch_us
from takt_wire import MAX_PAYLOAD_BYTES, ContractError, Event, decode_batch
from takt_wire.signing import SIGNATURE_PROPERTY, verify
from takt_wire.topics import parse_events_topic

log = logging.getLogger(__name__)

ROLLED_UP_KINDS = frozenset({"unit", "work"})
"""Event kinds whose points feed the hourly rollups (work also yields downtime)."""
HOUR_NS = 3_600_000_000_000


@dataclass
class Gap:
    agent: str
    boot: str
    after: int
    missing: int


@dataclass
class Outcome:
    """What one message became."""

    lines: list[str] = field(default_factory=list)
    hours: set[int] = field(default_factory=set)
    """UTC hours (ns) that received unit or work points: rollups to recompute."""
    rejected: list[DeadLetter] = field(default_factory=list)
    events: int = 0
    duplicates: int = 0
    gaps: list[Gap] = field(default_factory=list)
    lag_s: float | None = None
    """Seconds between the agent sending the batch and us reading it."""
    stored: tuple[str, str, list[int]] | None = None
    """(site, agent, seqs) to confirm to the agent once this message is written: every
    event of a decoded batch, whether written, a duplicate or dead-lettered alone."""


@dataclass(frozen=True)
class Rules:
    """Validation knobs (see config.ValidationSettings)."""

    max_future_skew_s: float = 300.0
    stations: frozenset[str] | None = None
    signing_keys: Mapping[str, bytes] | None = None
    check_topic: bool = True


class Pipeline:
    """Validates messages and formats the surviving events; remembers identities it accepted."""

    def __init__(
        self,
        rules: Rules,
        tracker: SeqTracker | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.rules = rules
        self.tracker = tracker or SeqTracker()
        self.clock = clock
        self.formatter = Formatter()

    def process(
        self, topic: str, payload: bytes, properties: Mapping[str, object] | None = None
    ) -> Outcome:
        props = dict(properties or {})
        out = Outcome()

        def reject_message(reason: str, detail: str) -> Outcome:
            out.rejected.append(DeadLetter("message", reason, detail, topic, payload, props))
            return out

        if len(payload) > MAX_PAYLOAD_BYTES:
            return reject_message("oversized", f"payload of {len(payload)} bytes")
        if self.rules.signing_keys is not None:
            signature = props.get(SIGNATURE_PROPERTY)
            try:
                verify(
                    payload,
                    signature if isinstance(signature, str) else None,
                    self.rules.signing_keys,
                )
            except ContractError as err:
                return reject_message(err.reason, err.detail)
        try:
            batch = decode_batch(payload)
        except ContractError as err:
            return reject_message(err.reason, err.detail)
        where = parse_events_topic(topic)
        if self.rules.check_topic and (where is None or where.agent != batch.agent):
            return reject_message(
                "topic_mismatch", f"batch of agent {batch.agent!r} arrived on topic {topic!r}"
            )
        site = where.site if where is not None else batch.events[0].site
        out.stored = (site, batch.agent, [e.seq for e in batch.events if e.agent == batch.agent])
        now = self.clock()
        out.lag_s = (now - batch.sent_at).total_seconds()
        limit = now + timedelta(seconds=self.rules.max_future_skew_s)
        stations = self.rules.stations
        tracker = self.tracker
        lines = out.lines
        format_event = self.formatter.lines
        stream = None
        agent = boot = ""
        last_hour = -1
        out.events = len(batch.events)
        limit_us = epoch_us(limit)
        for event in batch.events:
            ts_us = epoch_us(event.ts)  # one conversion serves the skew check and the key
            if ts_us > limit_us or (
                stations is not None
                and f"{event.site}/{event.line}/{event.station}" not in stations
            ):
                out.rejected.append(self._reject_event(event, limit, topic, props))
                continue
            if stream is None or event.agent != agent or event.boot != boot:
                agent, boot = event.agent, event.boot
                stream = tracker.stream(agent, boot, event.seq)
            seq = event.seq
            if seq == stream.low + 1 and not stream.above:
                # In-order fast path of SeqTracker.check, inlined (the common case).
                stream.low = seq
                if seq > stream.top:
                    stream.top = seq
            else:
                verdict = tracker.check(stream, seq)
                if verdict.duplicate:
                    out.duplicates += 1
                    continue
                if verdict.gap:
                    out.gaps.append(Gap(agent, boot, seq - verdict.gap - 1, verdict.gap))
            try:
                ts = format_event(event, lines, ts_us)
            except UnrepresentableError as err:
                out.rejected.append(_event_letter(event, "unrepresentable", str(err), topic, props))
                continue
            if event.kind in ROLLED_UP_KINDS:
                hour = ts - ts % HOUR_NS
                if hour != last_hour:
                    out.hours.add(hour)
                    last_hour = hour
        return out

    def _reject_event(
        self, event: Event, limit: datetime, topic: str, props: dict[str, object]
    ) -> DeadLetter:
        if event.ts > limit:
            detail = f"ts {event.ts.isoformat()} is after {limit.isoformat()}"
            return _event_letter(event, "future_timestamp", detail, topic, props)
        where = f"{event.site}/{event.line}/{event.station}"
        return _event_letter(
            event, "unknown_station", f"station {where} is not registered", topic, props
        )


def _event_letter(
    event: Event, reason: str, detail: str, topic: str, props: dict[str, object]
) -> DeadLetter:
    payload = event.model_dump_json(exclude_none=True).encode()
    return DeadLetter("event", reason, detail, topic, payload, props)
