"""Readings → canonical events for one station: who made what, and whose time it was (pure).

Events leave here as takt_wire models, validated when they are built: the
agent's identity is in them, the sequence number is a placeholder (0) that the
outbox replaces in the transaction that stores them. An event the contract
refuses (a device clock in 1990, say) is not returned but kept in
``StationTracker.rejected`` with the reason, for the caller to dead-letter.

The tracker holds the station's state (operator, machine state, open work
interval, counter baselines) as a small model that is persisted with the
events it produced, so a restart continues exactly where the last commit left
off. Counter deltas in a reading belong to the operator and state in force
*before* that reading's badge or state change (docs/devices.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from edge_agent.counters import counter_delta
from edge_agent.mapping import Reading
from edge_agent.profile import DeviceProfile
from takt_common.pseudonym import STORED, pseudonym
from takt_wire import UNATTRIBUTED, GapEvent, SessionEvent, StateEvent, UnitEvent, WorkEvent
from takt_wire.errors import describe_validation_error
from takt_wire.events import MAX_UNITS_PER_EVENT, EventBase

AnyEvent = UnitEvent | WorkEvent | SessionEvent | StateEvent | GapEvent
"""What a tracker emits: one of takt_wire's event models."""

E = TypeVar("E", bound=EventBase)

UNSEQUENCED = 0
"""Sequence number of an event not yet stored; the outbox assigns the real one."""


class StationState(BaseModel):
    """Everything a station's attribution needs to survive an agent restart."""

    badge: str | None = None
    worker: str | None = None
    machine: str | None = None
    interval_start: datetime | None = None
    clock: datetime | None = None
    counters: dict[str, int] = Field(default_factory=dict)
    field_ts: dict[str, datetime] = Field(default_factory=dict)
    defects_seen: bool = False
    cycle_s: float | None = None


@dataclass(frozen=True)
class StationInfo:
    """Where a station's events come from, and the agent (and its boot) that reports them."""

    site: str
    line: str
    station: str
    device: str
    agent: str
    boot: str


@dataclass
class Notes:
    """What happened besides events: for metrics and log lines."""

    counter_kinds: list[tuple[str, str]] = field(default_factory=list)
    stale_fields: list[str] = field(default_factory=list)
    skewed: bool = False
    clock_outlier: str | None = None
    """Why the reading was refused whole: its device time was too far ahead of the gateway's."""
    problems: list[str] = field(default_factory=list)


_UNSAFE = re.compile(r"[^A-Za-z0-9_.:\-]")


class WorkerResolver:
    """Badge → worker id through the roster; unknown badges kept as ``badge-<uid>``."""

    def __init__(self, roster: dict[str, str], pseudonym_key: bytes | None = None) -> None:
        self.roster = roster
        self.key = pseudonym_key
        self.unknown: set[str] = set()

    def __call__(self, badge: str) -> str:
        worker = self.roster.get(badge)
        if worker is None:
            self.unknown.add(badge)
            worker = "badge-" + _UNSAFE.sub("_", badge)[:56]
        if self.key is not None:
            return pseudonym(self.key, worker, STORED)
        return worker[:64]


MAX_CLOSES_PER_CALL = 24 * 60
"""Work intervals closed by one reading or tick at most: a day of minutes. The station
clock never runs ahead of the gateway's by more than the tolerance, so catching up
after a silent device is bounded by real elapsed time as well."""

DEFAULT_MAX_AHEAD_S = 300.0
"""A device clock more than five minutes ahead of the gateway's is wrong, not early."""


def _next_boundary(after: datetime, period_s: float) -> datetime:
    """The first multiple of ``period_s`` (since the epoch) strictly after ``after``."""
    epoch = after.timestamp()
    step = math.floor(epoch / period_s) + 1
    return datetime.fromtimestamp(step * period_s, tz=after.tzinfo or UTC)


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


class StationTracker:
    """Turns one station's readings into takt_wire events (the outbox assigns ``seq``)."""

    def __init__(
        self,
        info: StationInfo,
        profile: DeviceProfile,
        resolve: Callable[[str], str],
        work_interval_s: float = 60.0,
        state: StationState | None = None,
        max_ahead_s: float = DEFAULT_MAX_AHEAD_S,
    ) -> None:
        self.info = info
        self.profile = profile
        self.resolve = resolve
        self.work_interval_s = work_interval_s
        self.max_ahead_s = max_ahead_s
        self.state = state or StationState()
        spec = profile.signals.state
        self._excused = set(spec.excused) if spec and spec.excused is not None else None
        self.rejected: list[tuple[str, dict[str, Any]]] = []
        """(reason, fields) of events the contract refused; the caller takes and clears them."""

    def _event(self, cls: type[E], ts: datetime, worker: str, **fields: Any) -> list[E]:
        """One validated event of ``cls`` (a list of one), or none when the contract refuses it."""
        info = self.info
        fields.update(
            site=info.site,
            line=info.line,
            station=info.station,
            device=info.device,
            worker=worker,
            ts=ts,
            agent=info.agent,
            boot=info.boot,
            seq=UNSEQUENCED,
        )
        try:
            return [cls(**fields)]
        except ValidationError as err:
            reason = f"invalid: {describe_validation_error(err)}"
            self.rejected.append((reason, {"kind": cls.model_fields["kind"].default} | fields))
            return []

    def unobserved(self, start: datetime, end: datetime, reason: str) -> list[AnyEvent]:
        """A span (device clock) nobody could observe: one ``gap`` event, charged to nobody.

        The station's state is left alone: what the device shows when it is read again
        is applied as any reading, and the gap tells HR that the units it then counts
        may span this time.
        """
        if end <= start:
            return []
        worker = self.state.worker or UNATTRIBUTED
        return self._event(GapEvent, end, worker, start=start, reason=reason)

    def _fresh(self, key: str, ts: datetime, notes: Notes) -> bool:
        """False when this field's value is older than one already applied."""
        last = self.state.field_ts.get(key)
        if last is not None and ts < last:
            notes.stale_fields.append(key)
            return False
        self.state.field_ts[key] = ts
        return True

    def _units(
        self,
        key: str,
        value: int,
        bits: int,
        window: int | None,
        notes: Notes,
        baseline: int | None,
    ) -> int:
        last = self.state.counters.get(key)
        if last is None:
            last = baseline
        if value >= (1 << bits):
            notes.problems.append(f"{key}: {value} exceeds the {bits}-bit counter")
            return 0
        delta = counter_delta(last, value, bits, window)
        if delta.kind in ("rollover", "reset"):
            notes.counter_kinds.append((key, delta.kind))
        self.state.counters[key] = value
        if delta.units > MAX_UNITS_PER_EVENT:
            notes.problems.append(f"{key}: implausible jump of {delta.units} units ignored")
            notes.counter_kinds.append((key, "jump"))
            return 0
        return delta.units

    def _close(self, end: datetime) -> list[AnyEvent]:
        """Close the open work interval at ``end`` and reopen it there."""
        st = self.state
        events: list[AnyEvent] = []
        if st.worker is not None and st.interval_start is not None:
            span = (end - st.interval_start).total_seconds()
            if span > 0:
                down: dict[str, float] = {}
                machine = st.machine or "idle"
                if machine.startswith("down:"):
                    reason = machine.removeprefix("down:")
                    if self._excused is None or reason in self._excused:
                        down[reason] = span
                events += self._event(
                    WorkEvent,
                    end,
                    st.worker,
                    start=st.interval_start,
                    work_s=span,
                    effective_s=max(0.0, span - sum(down.values())),
                    down_s=down,
                )
        st.interval_start = end if st.worker is not None else None
        return events

    def tick(self, now: datetime) -> list[AnyEvent]:
        """Close the work interval periodically (on the device clock)."""
        st = self.state
        if st.clock is None or now < st.clock:
            return []
        st.clock = now
        return self._close_at_boundaries(now)

    def _close_at_boundaries(self, now: datetime) -> list[AnyEvent]:
        """Close intervals at every multiple of the period (device clock) up to ``now``.

        Aligned closes keep each interval inside one minute, so hours, shifts and
        days (which start on whole minutes) get exactly their own work seconds.
        """
        st = self.state
        events: list[AnyEvent] = []
        for _ in range(MAX_CLOSES_PER_CALL):
            if st.worker is None or st.interval_start is None:
                break
            boundary = _next_boundary(st.interval_start, self.work_interval_s)
            if boundary > now:
                break
            events += self._close(boundary)
        return events

    def repair(self, gateway_now: datetime) -> list[str]:
        """Undo a station clock poisoned by a far-future reading (saved by older versions).

        Times beyond the tolerance are forgotten: the clock and an open interval's
        start restart at the next reading's time, per-field times (which would make
        every later value "stale") are dropped. Counter baselines are kept, so the
        next reading counts the units made meanwhile exactly once. Returns what was
        repaired (for the log).
        """
        st = self.state
        limit = gateway_now + timedelta(seconds=self.max_ahead_s)
        repaired: list[str] = []
        if st.clock is not None and st.clock > limit:
            repaired.append(f"clock {_iso(st.clock)}")
            st.clock = None
        if st.interval_start is not None and st.interval_start > limit:
            repaired.append(f"interval start {_iso(st.interval_start)}")
            st.interval_start = None
        for key, ts in list(st.field_ts.items()):
            if ts > limit:
                repaired.append(f"{key} time {_iso(ts)}")
                del st.field_ts[key]
        return repaired

    def apply(self, reading: Reading, gateway_now: datetime) -> tuple[list[AnyEvent], Notes]:
        notes = Notes(problems=list(reading.problems))
        st = self.state
        ts = reading.ts or gateway_now
        ahead = (ts - gateway_now).total_seconds()
        if ahead > self.max_ahead_s:
            # One bad frame must not move the station clock: everything after it would
            # be "stale" and never counted. Counters are cumulative, so the units of
            # this reading are counted by the next one with a sane time (pulses are lost).
            notes.clock_outlier = (
                f"device time {_iso(ts)} is {ahead:.0f} s ahead of the gateway's "
                f"(tolerance {self.max_ahead_s:.0f} s): reading refused"
            )
            return [], notes
        if st.clock is not None and ts < st.clock:
            notes.skewed = True
            at = st.clock
        else:
            at = ts
            st.clock = ts
        if st.worker is not None and st.interval_start is None:
            st.interval_start = at  # reopened after a repair: the first sane reading
        worker_now = st.worker or UNATTRIBUTED
        events: list[AnyEvent] = []
        signals = self.profile.signals

        # 1. counters, attributed to the state before this reading's changes
        if reading.good is not None and self._fresh("good", ts, notes):
            units = self._units(
                "good", reading.good, signals.good.bits, signals.good.rollover_window, notes, None
            )
            events += self._unit_events("good", None, units, at, worker_now)
        if reading.good_pulses:
            events += self._unit_events("good", None, reading.good_pulses, at, worker_now)
        spec = signals.defects
        if spec is not None and reading.defects is not None:
            from_zero = reading.defects_complete and st.defects_seen
            for code, value in sorted(reading.defects.items()):
                key = f"defect:{code}"
                if not self._fresh(key, ts, notes):
                    continue
                units = self._units(
                    key, value, spec.bits, spec.rollover_window, notes, 0 if from_zero else None
                )
                events += self._unit_events("defect", code, units, at, worker_now)
            if reading.defects_complete:
                st.defects_seen = True
        for code, count in sorted(reading.defect_pulses.items()):
            events += self._unit_events("defect", code, count, at, worker_now)
        if (
            spec is not None
            and reading.defect_total is not None
            and self._fresh("defects", ts, notes)
        ):
            units = self._units(
                "defects", reading.defect_total, spec.bits, spec.rollover_window, notes, None
            )
            code = reading.last_code or "unknown"
            events += self._unit_events("defect", code, units, at, worker_now)
        if reading.cycle_s is not None:
            st.cycle_s = reading.cycle_s

        # 2. badge and state changes close the interval of the old worker/state
        new_badge = st.badge
        if reading.has_operator and self._fresh("operator", ts, notes):
            new_badge = reading.operator
        new_machine = st.machine
        if reading.state is not None and self._fresh("state", ts, notes):
            new_machine = reading.state
        badge_changed = new_badge != st.badge
        state_changed = new_machine != st.machine
        if badge_changed or state_changed:
            events += self._close_at_boundaries(at)
            events += self._close(at)
        if badge_changed:
            if st.worker is not None:
                events += self._event(SessionEvent, at, st.worker, action="logout")
            st.badge = new_badge
            st.worker = self.resolve(new_badge) if new_badge is not None else None
            if st.worker is not None:
                events += self._event(SessionEvent, at, st.worker, action="login")
            st.interval_start = at if st.worker is not None else None
        if state_changed:
            st.machine = new_machine
            if new_machine is not None:
                kind, _, reason = new_machine.partition(":")
                events += self._event(
                    StateEvent, at, st.worker or UNATTRIBUTED, state=kind, reason=reason or None
                )

        # 3. periodic close on the device clock
        events += self.tick(at)
        return events, notes

    def _unit_events(
        self, outcome: str, code: str | None, units: int, at: datetime, worker: str
    ) -> list[AnyEvent]:
        if units <= 0:
            return []
        cycle_s = self.state.cycle_s if outcome == "good" else None
        return self._event(
            UnitEvent, at, worker, outcome=outcome, count=units, defect_code=code, cycle_s=cycle_s
        )
