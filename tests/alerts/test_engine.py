"""Rule semantics on event sequences: the pure engine, events in and transitions out."""

from __future__ import annotations

import pytest

from kpi_service.alerts.engine import Engine
from kpi_service.alerts.model import Transition
from kpi_service.alerts.rules import parse_rules
from tests.alerts.factory import Line, wall

DEFECT_RULES = """
rules:
  - id: defects
    metric: defect_rate
    scope: worker
    window: {minutes: 10}
    min_samples: 20
    warning: 10
    critical: 30
    clear: 5
    for_s: 30
    cooldown_s: 300
    escalate_after_s: 120
"""


def engine(text: str = DEFECT_RULES) -> Engine:
    return Engine(parse_rules(text))


def feed_units(eng: Engine, line: Line, t0: float, n: int, defect_every: int) -> list[Transition]:
    """Feed ``n`` units one second apart, one batch per unit (as a live line does)."""
    out: list[Transition] = []
    for event in line.units(t0, n, defect_every=defect_every):
        out += eng.feed([event], wall(event.ts.timestamp() - wall(0)))
    return out


def kinds(transitions: list[Transition]) -> list[str]:
    return [t.kind for t in transitions]


def test_minimum_sample_holds_back_a_small_window() -> None:
    eng, line = engine(), Line()
    # 19 units, all defective, over 60 s: 100 % but below the minimum sample of 20.
    out = feed_units(eng, line, 0, 19, defect_every=1)
    assert out == []
    out = feed_units(eng, line, 19, 40, defect_every=1)  # pending from unit 20, 30 s
    assert kinds(out) == ["raised"]
    assert out[0].alert.severity == "critical"


def test_alert_names_the_right_worker_and_station() -> None:
    eng, line = engine(), Line()
    out: list[Transition] = []
    for t in range(60):  # both stations produce side by side, in event-time order
        good = line.unit(t, station="S1", worker="W1")
        other = line.unit(t + 0.5, station="S2", worker="W2", defect=(t + 1) % 4 == 0)
        out += eng.feed([good, other], wall(t + 0.5))
    assert kinds(out) == ["raised"]
    alert = out[0].alert
    assert (alert.worker, alert.station, alert.line, alert.site) == ("W2", "S2", "L1", "s1")
    assert alert.severity == "warning" and alert.value == pytest.approx(25.0, abs=3)


def test_hysteresis_no_flapping_around_the_threshold() -> None:
    eng, line = engine(), Line()
    out = feed_units(eng, line, 0, 100, defect_every=5)  # 20 %: raised after 30 s
    assert kinds(out) == ["raised"]
    # Now hover around the warning threshold (every 9th / 11th defective: 11 % / 9 %).
    t = 100.0
    for every in (9, 11, 9, 11, 12, 9):
        out += feed_units(eng, line, t, 100, defect_every=every)
        t += 100
    assert kinds(out) == ["raised"], "an alert between clear and warning must stay open"
    out += feed_units(eng, line, t, 600, defect_every=0)  # recovers below 5 %
    assert kinds(out) == ["raised", "cleared"]
    assert out[-1].alert.cleared_event_ts is not None


def test_duration_a_short_burst_does_not_raise() -> None:
    eng, line = engine(), Line()
    out = feed_units(eng, line, 0, 200, defect_every=0)
    # 25 s of defects: rate crosses 10 % but recovers before 30 s have passed.
    out += feed_units(eng, line, 200, 25, defect_every=1)
    out += feed_units(eng, line, 225, 200, defect_every=0)
    assert out == []
    out += feed_units(eng, line, 425, 80, defect_every=1)
    assert kinds(out) == ["raised"]
    assert out[0].event_ts is not None


def test_cooldown_after_clear() -> None:
    eng, line = engine(), Line()
    out = feed_units(eng, line, 0, 60, defect_every=2)
    out += feed_units(eng, line, 60, 600, defect_every=0)
    assert kinds(out) == ["raised", "cleared"]
    cleared_at = out[-1].event_ts
    assert cleared_at is not None
    # A new breach right away: within the 300 s cooldown, so nothing yet ...
    t0 = cleared_at - wall(0) + 1
    first = feed_units(eng, line, t0, 120, defect_every=2)
    assert first == []
    # ... and raised once the cooldown is over while the breach still holds.
    later = feed_units(eng, line, t0 + 120, 300, defect_every=2)
    assert kinds(later)[0] == "raised"
    assert later[0].event_ts is not None and later[0].event_ts - cleared_at >= 300


def test_severity_goes_up_not_down_while_open() -> None:
    eng, line = engine(), Line()
    out = feed_units(eng, line, 0, 200, defect_every=6)  # ~17 %: warning
    out += feed_units(eng, line, 200, 200, defect_every=2)  # 50 %: critical
    out += feed_units(eng, line, 400, 200, defect_every=8)  # ~12 %: stays critical, open
    assert kinds(out) == ["raised", "severity"]
    assert eng.open_alerts()[0].severity == "critical"


def test_escalation_when_not_acknowledged() -> None:
    eng, line = engine(), Line()
    out = feed_units(eng, line, 0, 60, defect_every=2)
    raised = out[0].alert
    assert eng.tick(raised.raised_at + 119) == []
    escalated = eng.tick(raised.raised_at + 121)
    assert kinds(escalated) == ["escalated"]
    assert eng.tick(raised.raised_at + 500) == [], "escalates once"


def test_acknowledged_alert_does_not_escalate() -> None:
    eng, line = engine(), Line()
    raised = feed_units(eng, line, 0, 60, defect_every=2)[0].alert
    ack = eng.acknowledge(raised.id, "sup-1", raised.raised_at + 10)
    assert ack is not None and ack.alert.acknowledged_by == "sup-1"
    assert eng.acknowledge(raised.id, "sup-1", raised.raised_at + 11) is None
    assert eng.acknowledge("no-such-alert", "sup-1", raised.raised_at + 11) is None
    assert eng.tick(raised.raised_at + 500) == []


def test_historical_events_never_raise() -> None:
    eng, line = engine(), Line(historical=True)
    out = feed_units(eng, line, 0, 200, defect_every=1)
    assert out == [] and eng.tick(wall(300)) == []
    assert eng.counters.historical == 200 and eng.counters.accepted == 0


def test_redelivered_events_count_once() -> None:
    eng, line = engine(), Line()
    events = line.units(0, 40, defect_every=0)
    eng.feed(events, wall(40))
    eng.feed(events, wall(41))  # QoS 1 redelivery of the same batch
    assert eng.counters.duplicate == 40
    assert eng.series[("worker", "s1", "L1", "S1", "W1")].window(wall(40), 10).good == 40


def test_late_events_land_in_their_window_and_too_late_ones_are_refused() -> None:
    eng, line = engine(), Line()
    on_time = line.units(100, 30, defect_every=0)
    late = line.units(50, 30, defect_every=1)  # produced earlier, delivered after
    eng.feed(on_time, wall(130))
    out = eng.feed(late, wall(131))
    window = eng.series[("worker", "s1", "L1", "S1", "W1")].window(on_time[-1].ts.timestamp(), 10)
    assert (window.good, window.defect) == (30, 30)
    assert out == [], "late defects are counted, and the duration starts at their event time"
    ancient = Line(seq=10_000).units(-4 * 3600, 5, defect_every=1)
    eng.feed(ancient, wall(132))
    assert eng.counters.too_late == 5


def test_restart_restores_alert_and_does_not_raise_twice() -> None:
    first, line = engine(), Line()
    events = line.units(0, 100, defect_every=2)
    out: list[Transition] = []
    for event in events:
        out += first.feed([event], wall(event.ts.timestamp() - wall(0)))
    assert kinds(out) == ["raised"]
    # A new process: alert state from the store, windows rebuilt from what was written.
    second = engine()
    second.restore(first.open_alerts(), {})
    from kpi_service.alerts.windows import obs_from_event

    for event in events:
        second.remember(event.identity)
        obs = obs_from_event(event)
        assert obs is not None
        second.observe(obs, wall(100))
    again: list[Transition] = second.tick(wall(101))
    again += second.feed(events[-10:], wall(101))  # redelivered after the restart
    again += feed_units(second, line, 100, 30, defect_every=2)
    assert again == []
    recovered = feed_units(second, line, 130, 700, defect_every=0)
    assert kinds(recovered) == ["cleared"]
    assert recovered[0].alert.id == out[0].alert.id


NO_OUTPUT = """
rules:
  - id: stalled
    metric: no_output
    scope: station
    window: {minutes: 5}
    warning: 3
    clear: 0.5
    cooldown_s: 0
"""


def test_no_output_raises_on_a_silent_station_and_not_while_it_is_down() -> None:
    eng, line = engine(NO_OUTPUT), Line()
    assert eng.feed(line.units(0, 10), wall(10)) == []
    assert eng.tick(wall(9 + 170)) == []
    out = eng.tick(wall(9 + 185))
    assert kinds(out) == ["raised"] and out[0].alert.station == "S1"
    out = eng.feed([line.unit(200)], wall(200))
    assert kinds(out) == ["cleared"]
    # Down with a fault: that is down time, not a stalled operator.
    eng.feed([line.state(201, "down")], wall(201))
    assert eng.tick(wall(201 + 600)) == []


DOWN = """
rules:
  - id: down
    metric: down_time
    scope: station
    window: {minutes: 15}
    warning: 5
    clear: 1
"""


def test_down_time_in_window() -> None:
    eng, line = engine(DOWN), Line()
    eng.feed([line.state(0, "running")], wall(0))
    eng.feed([line.state(60, "down")], wall(60))
    assert eng.tick(wall(60 + 290)) == []
    out = eng.tick(wall(60 + 310))
    assert kinds(out) == ["raised"]
    out = eng.feed([line.state(400, "running")], wall(400))
    assert out == []
    assert kinds(eng.tick(wall(60 + 15 * 60 + 300))) == ["cleared"]


EFFICIENCY = """
rules:
  - id: slow
    metric: efficiency
    scope: worker
    window: {minutes: 10}
    min_samples: 5
    warning: 80
    clear: 90
    standard_cycle_s: {S1: 10}
"""


def test_efficiency_below_standard_excludes_excused_down_time() -> None:
    eng, line = engine(EFFICIENCY), Line()
    # 60 s of work, 4 s excused down: 5 good units of 10 s standard = 50 / 56 s = 89 %.
    out = eng.feed([*line.units(0, 5, every=10), line.work(0, 60, down=4)], wall(60))
    assert out == []
    value = eng.value(eng.rules.rules[0], ("worker", "s1", "L1", "S1", "W1"), wall(60))
    assert value == pytest.approx(100 * 50 / 56)
    out = eng.feed([*line.units(61, 3, every=20), line.work(60, 180)], wall(180))
    assert kinds(out) == ["raised"]  # 80 s earned / 176 s = 45 %
    assert out[0].alert.unit == "%"
