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
from collector.lineproto import Formatter, UnrepresentableError, hour_of
from takt_wire import MAX_PAYLOAD_BYTES, ContractError, decode_batch
from takt_wire.signing import SIGNATURE_PROPERTY, verify
from takt_wire.topics import parse_events_topic

log = logging.getLogger(__name__)

ROLLED_UP = frozenset({"units", "work", "downtime"})


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
        if self.rules.check_topic:
            where = parse_events_topic(topic)
            if where is None or where.agent != batch.agent:
                return reject_message(
                    "topic_mismatch", f"batch of agent {batch.agent!r} arrived on topic {topic!r}"
                )
        now = self.clock()
        out.lag_s = (now - batch.sent_at).total_seconds()
        limit = now + timedelta(seconds=self.rules.max_future_skew_s)
        stations = self.rules.stations
        tracker = self.tracker
        formatter = self.formatter
        lines = out.lines
        hours = out.hours
        stream = None
        stream_key: tuple[str, str] = ("", "")
        out.events = len(batch.events)
        for event in batch.events:
            reason = None
            if event.ts > limit:
                reason, detail = (
                    "future_timestamp",
                    f"ts {event.ts.isoformat()} is after {limit.isoformat()}",
                )
            elif (
                stations is not None
                and f"{event.site}/{event.line}/{event.station}" not in stations
            ):
                reason, detail = (
                    "unknown_station",
                    f"station {event.site}/{event.line}/{event.station} is not registered",
                )
            if reason is not None:
                out.rejected.append(
                    DeadLetter(
                        "event",
                        reason,
                        detail,
                        topic,
                        event.model_dump_json(exclude_none=True).encode(),
                        props,
                    )
                )
                continue
            if stream is None or stream_key != (event.agent, event.boot):
                stream_key = (event.agent, event.boot)
                stream = tracker.stream(event.agent, event.boot, event.seq)
            verdict = tracker.check(stream, event.seq)
            if verdict.duplicate:
                out.duplicates += 1
                continue
            if verdict.gap:
                out.gaps.append(
                    Gap(event.agent, event.boot, event.seq - verdict.gap - 1, verdict.gap)
                )
            try:
                ts = formatter.lines(event, lines)
            except UnrepresentableError as err:
                out.rejected.append(
                    DeadLetter(
                        "event",
                        "unrepresentable",
                        str(err),
                        topic,
                        event.model_dump_json(exclude_none=True).encode(),
                        props,
                    )
                )
                continue
            if event.kind == "unit" or event.kind == "work":
                hours.add(hour_of(ts))
        return out
