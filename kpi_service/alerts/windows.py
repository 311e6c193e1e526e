"""Event-time windows per scope (worker at a station, station, line), fed by observations.

Everything here is pure: observations in, figures out; "now" is always passed in.
Late events are inserted at their event time (not arrival time) as long as they are
younger than the retention, so a batch that arrives a minute late still counts in the
right window; older ones are refused and counted by the caller.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Literal

from takt_wire import UNATTRIBUTED, Event, SessionEvent, StateEvent, UnitEvent, WorkEvent

ScopeKey = tuple[str, str, str, str | None, str | None]
"""(scope, site, line, station, worker); station None for a line, worker None but for workers."""


@dataclass(frozen=True, slots=True)
class Obs:
    """What the engine needs from one event (also rebuilt from InfluxDB rows)."""

    kind: Literal["unit", "work", "state", "session"]
    site: str
    line: str
    station: str
    worker: str
    ts: float
    good: int = 0
    defect: int = 0
    start: float = 0.0
    effective_s: float = 0.0
    state: str = ""
    reason: str = ""
    """A machine state's reason code (why it is down), as the device gave it."""
    action: str = ""


def obs_from_event(event: Event) -> Obs | None:
    """Map a canonical event to an observation (pure); None for what rules do not read
    (a ``gap`` says the station was not observed, which no threshold is about)."""
    base = {
        "site": event.site,
        "line": event.line,
        "station": event.station,
        "worker": event.worker,
        "ts": event.ts.timestamp(),
    }
    if isinstance(event, UnitEvent):
        good = event.count if event.outcome == "good" else 0
        return Obs(kind="unit", good=good, defect=event.count - good, **base)  # type: ignore[arg-type]
    if isinstance(event, WorkEvent):
        return Obs(
            kind="work",
            start=event.start.timestamp(),
            effective_s=event.effective_s,
            **base,  # type: ignore[arg-type]
        )
    if isinstance(event, StateEvent):
        reason = event.reason or ""
        return Obs(kind="state", state=event.state, reason=reason, **base)  # type: ignore[arg-type]
    if isinstance(event, SessionEvent):
        return Obs(kind="session", action=event.action, **base)  # type: ignore[arg-type]
    return None


Counts = list[int]
"""[good, defect]"""


@dataclass
class WindowSum:
    """Running unit totals over (lo, watermark]: each bucket is added and evicted once."""

    lo: float
    good: int = 0
    defect: int = 0
    by_station: dict[str, Counts] = field(default_factory=dict)

    def add(self, station: str, good: int, defect: int) -> None:
        self.good += good
        self.defect += defect
        counts = self.by_station.setdefault(station, [0, 0])
        counts[0] += good
        counts[1] += defect


@dataclass
class Series:
    """Observations of one scope key; units in one-second buckets per station."""

    secs: list[int] = field(default_factory=list)
    """Sorted bucket seconds (floor of event time)."""
    buckets: dict[int, dict[str, Counts]] = field(default_factory=dict)
    sums: dict[float, WindowSum] = field(default_factory=dict)
    """Minutes -> running totals of that window."""
    work: list[tuple[float, float, float, str]] = field(default_factory=list)
    """(end ts, start ts, effective seconds, station), sorted."""
    states: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)
    """station -> [(ts, state, reason)], sorted."""
    last_output: float | None = None
    """Event time of the last unit, or of the moment the scope became active."""
    last_seen: float | None = None
    """Event time of the newest observation of any kind (the board's "as of")."""
    logged_in: bool = True
    """False after a logout; a worker seen without any session event counts as present."""
    login_at: float | None = None
    """Event time of the login in force (None: logged out, or no login seen)."""
    _session_ts: float | None = None

    def add(self, obs: Obs) -> None:
        if self.last_seen is None or obs.ts > self.last_seen:
            self.last_seen = obs.ts
        if obs.kind == "unit":
            self._add_units(obs)
            self._touch(obs.ts)
        elif obs.kind == "work":
            bisect.insort(self.work, (obs.ts, obs.start, obs.effective_s, obs.station))
            if self.last_output is None:
                self._touch(obs.start)
        elif obs.kind == "state":
            timeline = self.states.setdefault(obs.station, [])
            entry = (obs.ts, obs.state, obs.reason)
            bisect.insort(timeline, entry)
            index = bisect.bisect_left(timeline, entry)
            before = timeline[index - 1][1] if index > 0 else None
            if obs.state == "running" and before != "running":
                self._touch(obs.ts)
        elif obs.kind == "session":
            if self._session_ts is not None and obs.ts < self._session_ts:
                return  # a late, older session event does not undo a newer one
            self._session_ts = obs.ts
            self.logged_in = obs.action == "login"
            self.login_at = obs.ts if self.logged_in else None
            if self.logged_in:
                self._touch(obs.ts)

    def _add_units(self, obs: Obs) -> None:
        sec = int(obs.ts // 1)
        bucket = self.buckets.get(sec)
        if bucket is None:
            bucket = self.buckets[sec] = {}
            if not self.secs or sec > self.secs[-1]:
                self.secs.append(sec)
            else:
                bisect.insort(self.secs, sec)
        counts = bucket.setdefault(obs.station, [0, 0])
        counts[0] += obs.good
        counts[1] += obs.defect
        for window in self.sums.values():
            if sec > window.lo:
                window.add(obs.station, obs.good, obs.defect)

    def _touch(self, ts: float) -> None:
        if self.last_output is None or ts > self.last_output:
            self.last_output = ts

    def window(self, now: float, minutes: float) -> WindowSum:
        """Totals of buckets in (now - minutes, now], moving the running sum incrementally."""
        lo = now - minutes * 60.0
        window = self.sums.get(minutes)
        if window is None:
            window = self.sums[minutes] = WindowSum(lo=lo)
            for sec in self.secs[bisect.bisect_right(self.secs, int(lo // 1)) :]:
                if sec > lo:
                    self._apply(window, sec, 1)
            return window
        self._move(window, lo)
        return window

    def _move(self, window: WindowSum, lo: float) -> None:
        old = window.lo
        if lo > old:
            first = bisect.bisect_left(self.secs, int(old // 1))
            for sec in self.secs[first:]:
                if sec > lo:
                    break
                if sec > old:
                    self._apply(window, sec, -1)
        elif lo < old:
            first = bisect.bisect_left(self.secs, int(lo // 1))
            for sec in self.secs[first:]:
                if sec > old:
                    break
                if sec > lo:
                    self._apply(window, sec, 1)
        window.lo = lo

    def _apply(self, window: WindowSum, sec: int, sign: int) -> None:
        for station, (good, defect) in self.buckets[sec].items():
            window.add(station, sign * good, sign * defect)

    def last_units(self, now: float, units: int) -> tuple[int, int]:
        """(good, defect) of the newest buckets up to ``units`` units (whole seconds)."""
        good = defect = 0
        end = bisect.bisect_right(self.secs, now)
        for sec in reversed(self.secs[:end]):
            if good + defect >= units:
                break
            for g, d in self.buckets[sec].values():
                good += g
                defect += d
        return good, defect

    def prune(self, cutoff: float) -> None:
        """Forget what ended before ``cutoff``, keeping the state in force at it."""
        for window in self.sums.values():
            if window.lo < cutoff:
                self._move(window, cutoff)
        index = bisect.bisect_left(self.secs, int(cutoff // 1))
        for sec in self.secs[:index]:
            del self.buckets[sec]
        del self.secs[:index]
        self.work = self.work[bisect.bisect_left(self.work, (cutoff,)) :]
        for station, timeline in self.states.items():
            index = bisect.bisect_left(timeline, (cutoff,))
            self.states[station] = timeline[max(0, index - 1) :]

    def stale(self, cutoff: float) -> bool:
        """Nothing left to judge: no units, work or machine state, no activity since ``cutoff``."""
        recent = self.last_output is not None and self.last_output >= cutoff
        return not (self.secs or self.work or self.states or recent)

    def current_state(self, station: str | None = None) -> str | None:
        """State of ``station`` (or the worst over all stations of the scope)."""
        if station is not None:
            timeline = self.states.get(station)
            return timeline[-1][1] if timeline else None
        lasts = [t[-1][1] for t in self.states.values() if t]
        for state in ("down", "idle", "running"):
            if state in lasts:
                return state
        return None

    def current_run(self, station: str) -> tuple[str, str, float] | None:
        """(state, reason, since): the state in force at ``station``, its reason and the
        event time it began (consecutive events of the same state and reason are one run)."""
        timeline = self.states.get(station)
        if not timeline:
            return None
        _, state, reason = timeline[-1]
        since = timeline[-1][0]
        for ts, other, other_reason in reversed(timeline):
            if (other, other_reason) != (state, reason):
                break
            since = ts
        return state, reason, since


def efficiency_inputs(
    series: Series, now: float, minutes: float, cycle: float | dict[str, float]
) -> tuple[float, float, int]:
    """(standard seconds earned, effective seconds worked, units) over the window.

    Work intervals that straddle the window edge count pro rata, so a long interval
    does not swing the figure when it slides out. Stations without a standard are left out.
    """
    window = series.window(now, minutes)
    earned = 0.0
    units = 0
    for station, (good, defect) in window.by_station.items():
        station_cycle = cycle if isinstance(cycle, float) else cycle.get(station)
        if station_cycle is None:
            continue
        earned += good * station_cycle
        units += good + defect
    start_ts = now - minutes * 60.0
    effective = 0.0
    for end, begin, eff, station in series.work:
        if end <= start_ts or begin >= now:
            continue
        if isinstance(cycle, dict) and station not in cycle:
            continue
        span = end - begin
        overlap = min(end, now) - max(begin, start_ts)
        effective += eff if span <= 0 else eff * max(0.0, overlap) / span
    return earned, effective, units


def down_minutes(series: Series, now: float, minutes: float) -> float:
    """Machine-down minutes within the window, summed over the scope's stations."""
    start_ts = now - minutes * 60.0
    total = 0.0
    for timeline in series.states.values():
        for index, (ts, state, _reason) in enumerate(timeline):
            if state != "down" or ts >= now:
                continue
            end = timeline[index + 1][0] if index + 1 < len(timeline) else now
            overlap = min(end, now) - max(ts, start_ts)
            if overlap > 0:
                total += overlap
    return total / 60.0


def scope_keys(obs: Obs) -> list[ScopeKey]:
    """The keys an observation feeds: its worker at its station, its station, its line."""
    keys: list[ScopeKey] = [
        ("station", obs.site, obs.line, obs.station, None),
        ("line", obs.site, obs.line, None, None),
    ]
    if obs.worker != UNATTRIBUTED:
        keys.insert(0, ("worker", obs.site, obs.line, obs.station, obs.worker))
    return keys
