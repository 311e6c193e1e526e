"""One source of standards: efficiency rules read the KPI settings' standards.

A rule without ``standard_cycle_s`` uses the KPI standards of the scope's line exactly
as the KPI computation applies them (a line's own standard over the station-wide one);
a rule with ``standard_cycle_s`` overrides them; with neither, the rule is refused.
"""

from __future__ import annotations

import pytest

from kpi_service.alerts import live
from kpi_service.alerts.engine import Engine
from kpi_service.alerts.rules import RulesError, parse_rules
from kpi_service.core.config import Standard
from tests.alerts.factory import Line, wall

NO_OWN_STANDARD = """
rules:
  - id: slow
    metric: efficiency
    scope: worker
    window: {minutes: 10}
    min_samples: 5
    warning: 80
    clear: 90
"""
OWN_STANDARD = NO_OWN_STANDARD + "    standard_cycle_s: {S1: 20}\n"
KEY = ("worker", "s1", "L1", "S1", "W1")


def _fed(engine: Engine) -> Engine:
    line = Line()
    # 60 s of work, 4 s excused down time, 5 good units (as in test_engine's efficiency test).
    engine.feed([*line.units(0, 5, every=10), line.work(0, 60, down=4)], wall(60))
    return engine


def test_rule_without_standard_uses_the_kpi_standards() -> None:
    standards = [Standard(station="S1", cycle_s=10.0)]
    engine = _fed(Engine(parse_rules(NO_OWN_STANDARD, has_standards=True), standards=standards))
    value = engine.value(engine.rules.rules[0], KEY, wall(60))
    assert value == pytest.approx(100 * 5 * 10 / 56)


def test_a_lines_own_standard_wins_as_in_the_kpi_computation() -> None:
    standards = [
        Standard(station="S1", cycle_s=10.0),
        Standard(station="S1", line="L1", cycle_s=8.0),
        Standard(station="S1", line="L2", cycle_s=99.0),
    ]
    engine = _fed(Engine(parse_rules(NO_OWN_STANDARD, has_standards=True), standards=standards))
    value = engine.value(engine.rules.rules[0], KEY, wall(60))
    assert value == pytest.approx(100 * 5 * 8 / 56)
    assert live.standards(engine, "L1") == {"S1": 8.0}


def test_rule_standard_overrides_the_kpi_standards() -> None:
    standards = [Standard(station="S1", cycle_s=10.0)]
    engine = _fed(Engine(parse_rules(OWN_STANDARD, has_standards=True), standards=standards))
    value = engine.value(engine.rules.rules[0], KEY, wall(60))
    assert value == pytest.approx(100 * 5 * 20 / 56)


def test_station_without_any_standard_is_not_judged() -> None:
    standards = [Standard(station="S9", cycle_s=10.0)]
    engine = _fed(Engine(parse_rules(NO_OWN_STANDARD, has_standards=True), standards=standards))
    assert engine.value(engine.rules.rules[0], KEY, wall(60)) is None


def test_no_standard_anywhere_is_refused_naming_the_rule() -> None:
    with pytest.raises(RulesError, match=r"rules\.0.*needs standard_cycle_s"):
        parse_rules(NO_OWN_STANDARD, "config/rules.yaml")
    rules = parse_rules(NO_OWN_STANDARD, has_standards=True)
    with pytest.raises(ValueError, match=r"rules\.0 \(slow\).*needs standard_cycle_s"):
        rules.check_standards(False)
    rules.check_standards(True)
