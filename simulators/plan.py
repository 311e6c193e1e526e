"""The whole run, decided before it starts: per station, what happens at which millisecond.

Planning is a pure function of the scenario (seeded RNG per station), so the
devices only *replay* the plan against an accelerated clock and the ledger is
computed from the plan, not from what the network happened to deliver. Wall-clock
jitter therefore cannot change the truth, and the same seed gives the same run.

Rules that keep the truth unambiguous for a reader of the devices:
- the station's (operator, state) is constant over a *segment*; a change is one
  event at the segment's first millisecond;
- a cycle interrupted by a segment end is lost (the part is re-started), so a unit
  always completes strictly inside a segment, at least ``GUARD_MS`` before its end:
  a unit and a change never share a timestamp.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

from simulators.scenario import STATE_CODE, CycleTime, Line, Scenario, Station, Worker

GUARD_MS = 10
MIN_CYCLE_S = 0.05


@dataclass(frozen=True, slots=True)
class Unit:
    t_ms: int
    good: bool
    code: str
    cycle_s: float
    worker: str | None


@dataclass(frozen=True, slots=True)
class Change:
    t_ms: int
    badge: str
    worker: str | None
    state: str


@dataclass(frozen=True, slots=True)
class Restart:
    t_ms: int


Event = Unit | Change | Restart


@dataclass(frozen=True, slots=True)
class Segment:
    start_ms: int
    end_ms: int
    worker: str | None
    badge: str
    state: str
    unattended: bool


@dataclass
class StationPlan:
    line: Line
    station: Station
    segments: list[Segment] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def draw_cycle(rng: random.Random, cycle: CycleTime, standard_s: float) -> float:
    """One cycle time in seconds, rounded to the millisecond."""
    mean = standard_s / cycle.pace
    if cycle.dist == "fixed" or cycle.cv == 0:
        value = mean
    elif cycle.dist == "normal":
        value = rng.gauss(mean, cycle.cv * mean)
    else:
        sigma2 = math.log(1 + cycle.cv**2)
        value = rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))
    return round(max(value, cycle.min_factor * standard_s, MIN_CYCLE_S), 3)


def _segments(scenario: Scenario, station: Station) -> tuple[list[Segment], list[int]]:
    end_ms = _ms(scenario.duration)
    logins = [
        (_ms(a.start), _ms(a.end), w)
        for w in scenario.workers
        for a in w.assignments
        if a.station == station.id
    ]
    downs = [(_ms(d.start), _ms(d.end), d.reason) for d in station.downtime]
    unattended = [(_ms(u.start), _ms(u.end)) for u in station.unattended]
    restarts = sorted({_ms(r) for r in station.restarts})
    cuts = {0, end_ms, *restarts}
    for s, e, _ in logins:
        cuts |= {s, e}
    for s, e, _r in downs:
        cuts |= {s, e}
    for s, e in unattended:
        cuts |= {s, e}
    points = sorted(c for c in cuts if 0 <= c <= end_ms)
    raw: list[Segment] = []
    for a, b in itertools.pairwise(points):
        worker = next((w for s, e, w in logins if s <= a < e), None)
        down = next((r for s, e, r in downs if s <= a < e), None)
        auto = any(s <= a < e for s, e in unattended)
        state = down or ("running" if worker is not None or auto else "idle")
        badge = worker.badge if worker is not None else ""
        raw.append(Segment(a, b, worker.id if worker else None, badge, state, auto))
    merged: list[Segment] = []
    restart_set = set(restarts)
    for seg in raw:
        prev = merged[-1] if merged else None
        if (
            prev is not None
            and seg.start_ms not in restart_set
            and (prev.worker, prev.state, prev.unattended)
            == (seg.worker, seg.state, seg.unattended)
        ):
            merged[-1] = Segment(
                prev.start_ms, seg.end_ms, prev.worker, prev.badge, prev.state, prev.unattended
            )
        else:
            merged.append(seg)
    return merged, restarts


def _defect(
    rng: random.Random, t_s: float, worker: Worker | None, station: Station
) -> tuple[bool, str]:
    if worker is None:
        rate = station.unattended_defect_rate
        weights = {code: 1.0 for code in station.defect_codes}
    else:
        rate = worker.defect_rate
        for spike in worker.defect_spikes:
            if spike.start <= t_s < spike.end:
                rate = spike.rate
        weights = worker.defect_codes or {code: 1.0 for code in station.defect_codes}
    if not weights or rng.random() >= rate:
        return True, ""
    codes = sorted(weights)
    return False, rng.choices(codes, weights=[weights[c] for c in codes])[0]


def plan_station(scenario: Scenario, line: Line, station: Station) -> StationPlan:
    """Segments, changes, restarts and units of one station, in time order."""
    rng = random.Random(f"{scenario.seed}/{line.id}/{station.id}")
    workers = {w.id: w for w in scenario.workers}
    segments, restarts = _segments(scenario, station)
    plan = StationPlan(line, station, segments)
    events: list[tuple[int, int, Event]] = [(t, 0, Restart(t)) for t in restarts]
    badge, state = "", "idle"
    for seg in segments:
        if (seg.badge, seg.state) != (badge, state):
            events.append((seg.start_ms, 1, Change(seg.start_ms, seg.badge, seg.worker, seg.state)))
            badge, state = seg.badge, seg.state
        if seg.state != "running":
            continue
        worker = workers[seg.worker] if seg.worker else None
        cycle = worker.cycle if worker else station.unattended_cycle
        t_ms = seg.start_ms
        while True:
            cycle_s = draw_cycle(rng, cycle, station.standard_cycle_s)
            t_ms += _ms(cycle_s)
            if t_ms > seg.end_ms - GUARD_MS:
                break
            good, code = _defect(rng, t_ms / 1000, worker, station)
            events.append((t_ms, 2, Unit(t_ms, good, code, cycle_s, seg.worker)))
    events.sort(key=lambda e: (e[0], e[1]))
    plan.events = [e for _, _, e in events]
    return plan


def plan_scenario(scenario: Scenario) -> dict[str, StationPlan]:
    """Plans keyed by station id, in scenario order."""
    return {st.id: plan_station(scenario, line, st) for line, st in scenario.stations()}


__all__ = [
    "STATE_CODE",
    "Change",
    "Event",
    "Restart",
    "Segment",
    "StationPlan",
    "Unit",
    "draw_cycle",
    "plan_scenario",
    "plan_station",
]
