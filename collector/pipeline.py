"""From one MQTT message to line-protocol lines and dead letters: pure, no I/O.

Admission (size, signature bound to the agent, contract, topic and identity of
every event, time window) is :func:`takt_wire.admission.admit`, the check the
alert engine applies too; then per event: known station, duplicate. A bad
message is dead-lettered whole; a bad event alone, with the rest written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from collector.dedupe import SeqTracker
from collector.dlq import DeadLetter
from collector.lineproto import Formatter, UnrepresentableError, epoch_us
from takt_wire import ContractError, Event
from takt_wire.admission import DEFAULT_MAX_FUTURE_S, DEFAULT_MAX_PAST_S, Policy, admit
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

    max_future_skew_s: float = DEFAULT_MAX_FUTURE_S
    stations: frozenset[str] | None = None
    signing_keys: Mapping[str, bytes] | None = None
    check_topic: bool = True
    max_past_s: float | None = DEFAULT_MAX_PAST_S

    @property
    def policy(self) -> Policy:
        """The shared admission policy these rules describe (the alert engine uses the same)."""
        return Policy(
            signing_keys=self.signing_keys,
            check_topic=self.check_topic,
            max_future_s=self.max_future_skew_s,
            max_past_s=self.max_past_s,
        )


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
        self.policy = rules.policy

    def process(
        self, topic: str, payload: bytes, properties: Mapping[str, object] | None = None
    ) -> Outcome:
        props = dict(properties or {})
        out = Outcome()
        now = self.clock()
        try:
            admitted = admit(topic, payload, props, self.policy, now)
        except ContractError as err:
            out.rejected.append(
                DeadLetter("message", err.reason, err.detail, topic, payload, props)
            )
            return out
        batch = admitted.batch
        on_topic = parse_events_topic(topic)
        site = on_topic.site if on_topic is not None else batch.events[0].site
        out.stored = (site, batch.agent, [e.seq for e in batch.events if e.agent == batch.agent])
        out.lag_s = (now - batch.sent_at).total_seconds()
        out.events = len(batch.events)
        for refused in admitted.refused:
            out.rejected.append(
                _event_letter(refused.event, refused.reason, refused.detail, topic, props)
            )
        stations = self.rules.stations
        tracker = self.tracker
        lines = out.lines
        format_event = self.formatter.lines
        stream = None
        agent = boot = ""
        last_hour = -1
        for event in admitted.events:
            if (
                stations is not None
                and f"{event.site}/{event.line}/{event.station}" not in stations
            ):
                where = f"{event.site}/{event.line}/{event.station}"
                out.rejected.append(
                    _event_letter(
                        event, "unknown_station", f"station {where} is not registered", topic, props
                    )
                )
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
                ts = format_event(event, lines, epoch_us(event.ts))
            except UnrepresentableError as err:
                out.rejected.append(_event_letter(event, "unrepresentable", str(err), topic, props))
                continue
            if event.kind in ROLLED_UP_KINDS:
                hour = ts - ts % HOUR_NS
                if hour != last_hour:
                    out.hours.add(hour)
                    last_hour = hour
        return out


def _event_letter(
    event: Event, reason: str, detail: str, topic: str, props: dict[str, object]
) -> DeadLetter:
    payload = event.model_dump_json(exclude_none=True).encode()
    return DeadLetter("event", reason, detail, topic, payload, props)
