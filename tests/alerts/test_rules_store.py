"""Rules validation (file and field named), the store's idempotency, hub overflow, clock skew."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kpi_service.alerts.engine import Engine
from kpi_service.alerts.hub import Hub
from kpi_service.alerts.rules import RulesError, dump_rules, load_rules, parse_rules
from kpi_service.alerts.store import AlertStore
from tests.alerts.factory import Line, wall

GOOD = """
channels:
  hook: {type: webhook, url: "http://127.0.0.1:9/x"}
rules:
  - {id: defects, metric: defect_rate, scope: worker, warning: 10, critical: 20, clear: 5,
     channels: [hook]}
  - {id: slow, metric: efficiency, scope: station, warning: 70, clear: 80,
     standard_cycle_s: {S1: 30}}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [{id: r, metric: defect_rate, scope: worker, warning: 10, clear: 12}]",
         "clear must be below warning"),
        ("rules: [{id: r, metric: efficiency, scope: worker, warning: 80, clear: 70,"
         " standard_cycle_s: 30}]", "clear must be above warning"),
        ("rules: [{id: r, metric: defect_rate, scope: worker, warning: 10, critical: 5,"
         " clear: 2}]", "critical must be above warning"),
        ("rules: [{id: r, metric: efficiency, scope: worker, warning: 80, clear: 90}]",
         "needs standard_cycle_s"),
        ("rules: [{id: r, metric: defect_rate, scope: worker, warning: 10, clear: 5,"
         " channels: [nope]}]", "unknown channel 'nope'"),
        ("rules: [{id: r, metric: down_time, scope: worker, warning: 10, clear: 5}]",
         "scope station or line"),
        ("rules: [{id: r, metric: defect_rate, scope: worker, warning: 10, clear: 5,"
         " window: {minutes: 5, units: 10}}]", "rules.0.window"),
        ("rules: [{id: r, metric: defect_rate, scope: worker, warning: .nan, clear: 5}]",
         "rules.0.warning"),
        ("rules: [{id: r, metric: defect_rate, scope: worker, warning: 10, clear: 5, colour: 1}]",
         "rules.0.colour"),
        ("rules: [{id: r, metric: defect_rate, scope: worker, warning: 10, clear: 5},"
         " {id: r, metric: defect_rate, scope: station, warning: 10, clear: 5}]", "unique"),
        ("rules: [", "not valid YAML"),
        ("- just a list", "expected a mapping"),
    ],
)  # fmt: skip
def test_invalid_rules_name_the_file_and_field(text: str, message: str) -> None:
    with pytest.raises(RulesError) as err:
        parse_rules(text, "config/rules.yaml")
    assert str(err.value).startswith("config/rules.yaml: ")
    assert message in str(err.value)


def test_rules_round_trip_through_the_file(tmp_path: Path) -> None:
    rules = parse_rules(GOOD)
    path = tmp_path / "rules.yaml"
    path.write_text(dump_rules(rules))
    assert load_rules(path) == rules
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")


def test_store_refuses_a_second_raise_and_keeps_cooldowns(tmp_path: Path) -> None:
    rules = parse_rules(GOOD)
    eng, line = Engine(rules), Line()
    out = []
    for event in line.units(0, 40, defect_every=2):
        out += eng.feed([event], wall(event.ts.timestamp() - wall(0)))
    for event in line.units(40, 1200, defect_every=0):
        out += eng.feed([event], wall(event.ts.timestamp() - wall(0)))
    raised, cleared = out[0], out[-1]
    assert (raised.kind, cleared.kind) == ("raised", "cleared")
    store = AlertStore(tmp_path / "a.sqlite")
    assert store.apply(raised) is not None
    assert store.apply(raised) is None, "the same raise twice is one alert"
    assert store.apply(cleared) is not None
    store.close()
    reopened = AlertStore(tmp_path / "a.sqlite")
    assert reopened.open_alerts() == []
    assert reopened.cooldowns() == {("defects", raised.alert.key): cleared.event_ts}
    assert [a.status for a in reopened.find()] == ["cleared"]
    assert reopened.find(lines=frozenset()) == []
    assert reopened.find(lines=frozenset({"L2"})) == []


async def test_a_board_that_stops_reading_is_dropped_not_waited_for() -> None:
    hub = Hub(queue_size=3)
    rules = parse_rules(GOOD)
    eng, line = Engine(rules), Line()
    transitions = []
    for event in line.units(0, 40, defect_every=2):
        transitions += eng.feed([event], wall(event.ts.timestamp() - wall(0)))
    async with hub.subscribe() as slow, hub.subscribe() as fast:
        for _ in range(5):
            hub.publish(transitions[0])
            await asyncio.sleep(0)
            assert (await fast.get()) is not None
        assert hub.subscribers == 1
        assert slow.get_nowait() is None, "the slow one is told to reconnect"


def test_clock_skew_guard_refuses_events_from_the_future() -> None:
    eng = Engine(parse_rules(GOOD), max_future_s=300)
    line = Line()
    eng.feed([line.unit(0)], wall(0))
    eng.feed([line.unit(3600)], wall(1))  # a device clock an hour ahead
    assert eng.counters.future == 1 and eng.counters.accepted == 1


def test_the_shipped_example_rules_are_valid() -> None:
    import kpi_service.alerts

    example = Path(kpi_service.alerts.__file__).with_name("rules.example.yaml")
    rules = load_rules(example)
    assert {r.metric for r in rules.rules} == {"defect_rate", "no_output", "down_time"}


def test_escalations_go_to_the_escalation_channels() -> None:
    from kpi_service.alerts.dispatch import route

    rules = parse_rules("""
channels: {a: {type: mqtt}, b: {type: mqtt}}
rules:
  - {id: r1, metric: defect_rate, scope: worker, warning: 10, clear: 5, min_samples: 1,
     channels: [a], escalation_channels: [b]}
  - {id: r2, metric: defect_rate, scope: worker, warning: 10, clear: 5, channels: [a]}
""")
    eng, line = Engine(rules), Line()
    raised = eng.feed(line.units(0, 5, defect_every=1), wall(5))
    assert sorted(t.alert.rule_id for t in raised) == ["r1"]  # r2 waits for 20 units
    escalated = raised[0].model_copy(update={"kind": "escalated"})
    assert route(rules, raised[0]) == ("a",) and route(rules, escalated) == ("b",)
    other = raised[0].model_copy(
        update={"alert": raised[0].alert.model_copy(update={"rule_id": "r2"})}
    )
    assert route(rules, other.model_copy(update={"kind": "escalated"})) == ("a",)
