"""The alert engine: events in, alert transitions out. Pure: no I/O, time is passed in.

Windows run on event time. Each line has a watermark (the newest event time seen);
rules are evaluated at it after every batch, and on ticks at the watermark advanced by
the wall time elapsed since it last moved, so a silent station still ages. Duration
and cooldown are measured in event time, escalation in wall time (it waits for people).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kpi_service.alerts.model import Alert, Severity, Transition, alert_id
from kpi_service.alerts.rules import UNITS, Rule, RuleSet, kpi_value
from kpi_service.alerts.windows import (
    Obs,
    ScopeKey,
    Series,
    down_minutes,
    efficiency_inputs,
    obs_from_event,
    scope_keys,
)
from kpi_service.core.config import Standard
from kpi_service.kpi.compute import line_cycles
from kpi_service.kpi.metrics import Sums
from takt_wire import Event

RuleKey = tuple[str, ScopeKey]


@dataclass
class RuleState:
    """Where one rule stands for one scope key."""

    pending_since: float | None = None
    alert: Alert | None = None
    cleared_event_ts: float | None = None


@dataclass
class LineClock:
    watermark: float
    wall: float

    def at(self, wall: float) -> float:
        return self.watermark + max(0.0, wall - self.wall)


@dataclass
class Counters:
    """Why events were not counted (exported as metrics, asserted in tests)."""

    accepted: int = 0
    historical: int = 0
    duplicate: int = 0
    too_late: int = 0
    future: int = 0


@dataclass
class Engine:
    rules: RuleSet
    retention_s: float = 3600.0
    """How far behind the watermark an event may arrive and still count."""
    max_future_s: float | None = None
    """Refuse events this far ahead of wall time (None: trust device clocks, e.g. simulators)."""
    dedupe_capacity: int = 500_000
    standards: list[Standard] = field(default_factory=list)
    """The KPI settings' standards: efficiency rules without their own ``standard_cycle_s``
    use these, exactly as the KPI computation does."""
    series: dict[ScopeKey, Series] = field(default_factory=dict)
    clocks: dict[tuple[str, str], LineClock] = field(default_factory=dict)
    states: dict[RuleKey, RuleState] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    _seen: dict[tuple[str, str, int], None] = field(default_factory=dict)
    _cycles: dict[str, dict[str, float]] = field(default_factory=dict)

    def cycles(self, line: str) -> dict[str, float]:
        """Station -> standard cycle seconds on ``line`` from the KPI standards (cached)."""
        found = self._cycles.get(line)
        if found is None:
            found = self._cycles[line] = line_cycles(self.standards, line)
        return found

    def __post_init__(self) -> None:
        longest = max((r.window.minutes or 0.0 for r in self.rules.rules), default=0.0) * 60.0
        self.retention_s = max(self.retention_s, longest * 1.5)

    # -- input -------------------------------------------------------------------------

    def feed(self, events: Iterable[Event], wall: float) -> list[Transition]:
        """Take a batch of live events; return the transitions they cause."""
        touched: dict[ScopeKey, None] = {}
        for event in events:
            if event.historical:
                self.counters.historical += 1
                continue
            if not self.remember(event.identity):
                self.counters.duplicate += 1
                continue
            obs = obs_from_event(event)
            if obs is not None and self.observe(obs, wall):
                touched.update(dict.fromkeys(scope_keys(obs)))
        return self._evaluate(touched, wall, tick=False)

    def remember(self, identity: tuple[str, str, int]) -> bool:
        """False when this event was already counted (redelivery, or already rebuilt)."""
        if identity in self._seen:
            return False
        self._seen[identity] = None
        if len(self._seen) > self.dedupe_capacity:
            del self._seen[next(iter(self._seen))]
        return True

    def observe(self, obs: Obs, wall: float) -> bool:
        """Add one observation to its windows (also used to rebuild after a restart)."""
        if self.max_future_s is not None and obs.ts > wall + self.max_future_s:
            self.counters.future += 1
            return False
        line = (obs.site, obs.line)
        clock = self.clocks.get(line)
        if clock is not None and obs.ts < clock.watermark - self.retention_s:
            self.counters.too_late += 1
            return False
        if clock is None or obs.ts > clock.watermark:
            self.clocks[line] = LineClock(obs.ts, wall)
        for key in scope_keys(obs):
            if (obs.kind == "session") != (key[0] == "worker") and obs.kind in ("session", "state"):
                continue  # logins belong to the worker, machine states to the station and line
            self.series.setdefault(key, Series()).add(obs)
        self.counters.accepted += 1
        return True

    # -- time and people ---------------------------------------------------------------

    def tick(self, wall: float) -> list[Transition]:
        """Re-evaluate everything (time-based rules, escalation) and forget old data."""
        out = self._evaluate(dict.fromkeys(self.series), wall, tick=True)
        for (rule_id, _key), state in self.states.items():
            rule = self.rules.rule(rule_id)
            alert = state.alert
            if rule is None or alert is None or rule.escalate_after_s is None:
                continue
            if (
                alert.status == "active"
                and alert.escalated_at is None
                and wall - alert.raised_at >= rule.escalate_after_s
            ):
                alert.escalated_at = wall
                out.append(Transition(kind="escalated", at=wall, alert=alert.model_copy()))
        for key in list(self.series):
            clock = self.clocks.get((key[1], key[2]))
            if clock is None:
                continue
            series = self.series[key]
            cutoff = clock.at(wall) - self.retention_s
            series.prune(cutoff)
            if series.stale(cutoff) and self._idle(key):
                del self.series[key]
        return out

    def _idle(self, key: ScopeKey) -> bool:
        return not any(s.alert is not None for (_, k), s in self.states.items() if k == key)

    def acknowledge(self, alert_id_: str, by: str, wall: float) -> Transition | None:
        """Mark an open alert acknowledged; None when unknown or not active any more."""
        for state in self.states.values():
            alert = state.alert
            if alert is not None and alert.id == alert_id_:
                if alert.status != "active":
                    return None
                alert.status = "acknowledged"
                alert.acknowledged_at = wall
                alert.acknowledged_by = by
                return Transition(kind="acknowledged", at=wall, alert=alert.model_copy())
        return None

    def restore(self, open_alerts: Iterable[Alert], cooldowns: dict[RuleKey, float]) -> None:
        """Take back the alert state of the previous run (from the store)."""
        for alert in open_alerts:
            self.states.setdefault((alert.rule_id, alert.key), RuleState()).alert = alert
        for rule_key, cleared in cooldowns.items():
            self.states.setdefault(rule_key, RuleState()).cleared_event_ts = cleared

    def set_rules(self, rules: RuleSet, wall: float) -> list[Transition]:
        """Swap the rule set; open alerts of rules that are gone or disabled are cleared."""
        self.rules = rules
        self.__post_init__()
        out: list[Transition] = []
        for (rule_id, _key), state in self.states.items():
            rule = rules.rule(rule_id)
            if state.alert is not None and (rule is None or not rule.enabled):
                out.append(self._clear(state, None, wall))
        return out

    def open_alerts(self) -> list[Alert]:
        return [s.alert for s in self.states.values() if s.alert is not None]

    # -- evaluation --------------------------------------------------------------------

    def _evaluate(self, keys: dict[ScopeKey, None], wall: float, *, tick: bool) -> list[Transition]:
        out: list[Transition] = []
        for key in keys:
            clock = self.clocks.get((key[1], key[2]))
            if clock is None:
                continue
            now = clock.at(wall) if tick else clock.watermark
            for rule in self.rules.rules:
                if not rule.enabled or rule.scope != key[0] or not rule.applies_to_line(key[2]):
                    continue
                value = self.value(rule, key, now)
                state = self.states.get((rule.id, key))
                if state is None:
                    if value is None:
                        continue
                    state = self.states[(rule.id, key)] = RuleState()
                transition = self._step(rule, key, state, value, now, wall)
                if transition is not None:
                    out.append(transition)
        return out

    def value(self, rule: Rule, key: ScopeKey, now: float) -> float | None:
        """The rule's figure for ``key`` at event time ``now``; None when it cannot be judged."""
        series = self.series.get(key)
        if series is None:
            return None
        window = rule.window
        if rule.metric == "defect_rate":
            if window.minutes is not None:
                totals = series.window(now, window.minutes)
                good, defect = totals.good, totals.defect
            else:
                assert window.units is not None
                good, defect = series.last_units(now, window.units)
            total = good + defect
            if total == 0 or total < rule.min_samples:
                return None
            return kpi_value("defect_rate", Sums(units_good=good, units_defect=defect))
        if rule.metric == "efficiency":
            assert window.minutes is not None
            own = rule.standard_cycle_s
            cycle = self.cycles(key[2]) if own is None else own
            cycle = float(cycle) if isinstance(cycle, int | float) else cycle
            if not cycle:
                return None
            earned, effective, units = efficiency_inputs(series, now, window.minutes, cycle)
            if units < rule.min_samples:
                return None
            sums = Sums(standard_s=earned, standard_effective_s=effective)
            return kpi_value("efficiency", sums)
        if rule.metric == "down_time":
            assert window.minutes is not None
            return down_minutes(series, now, window.minutes)
        # no_output: only while someone works there and the machine is not down or idle.
        if not series.logged_in or series.last_output is None:
            return None
        station = self.series.get(("station", key[1], key[2], key[3], None))
        state = station.current_state(key[3]) if station and key[3] else None
        if state in ("down", "idle"):
            return None
        return max(0.0, now - series.last_output) / 60.0

    def _step(
        self,
        rule: Rule,
        key: ScopeKey,
        state: RuleState,
        value: float | None,
        now: float,
        wall: float,
    ) -> Transition | None:
        alert = state.alert
        if value is None:
            if alert is None:
                state.pending_since = None
            return None  # not enough data: an open alert is held, never cleared on silence
        if alert is not None:
            alert.value = value
            recovered = value <= rule.clear if rule.higher_is_worse else value >= rule.clear
            if recovered:
                return self._clear(state, now, wall)
            if (
                alert.severity == "warning"
                and rule.critical is not None
                and rule.worse(value, rule.critical)
            ):
                alert.severity = "critical"
                alert.threshold = rule.critical
                return Transition(kind="severity", at=wall, event_ts=now, alert=alert.model_copy())
            return None
        severity: Severity | None = None
        if rule.critical is not None and rule.worse(value, rule.critical):
            severity = "critical"
        elif rule.worse(value, rule.warning):
            severity = "warning"
        if severity is None:
            state.pending_since = None
            return None
        if state.pending_since is None or state.pending_since > now:
            state.pending_since = now
        if now - state.pending_since < rule.for_s:
            return None
        if state.cleared_event_ts is not None and now - state.cleared_event_ts < rule.cooldown_s:
            return None
        threshold = rule.critical if severity == "critical" else rule.warning
        assert threshold is not None
        state.alert = Alert(
            id=alert_id(rule.id, key, now),
            rule_id=rule.id,
            metric=rule.metric,
            scope=key[0],
            site=key[1],
            line=key[2],
            station=key[3],
            worker=key[4],
            severity=severity,
            status="active",
            value=value,
            threshold=threshold,
            unit=UNITS[rule.metric],
            raised_event_ts=now,
            raised_at=wall,
        )
        state.pending_since = None
        return Transition(kind="raised", at=wall, event_ts=now, alert=state.alert.model_copy())

    def _clear(self, state: RuleState, now: float | None, wall: float) -> Transition:
        alert = state.alert
        assert alert is not None
        alert.status = "cleared"
        alert.cleared_at = wall
        alert.cleared_event_ts = now
        state.alert = None
        state.pending_since = None
        if now is not None:
            state.cleared_event_ts = now
        return Transition(kind="cleared", at=wall, event_ts=now, alert=alert.model_copy())
