"""The alert engine and the KPI computation give the same figures for the same events.

Both read the metric registry and the same standards; here one set of events (two
stations, one with a line-specific standard, one without any) goes through the engine's
window and through ``compute_kpis``, and both are checked against a hand calculation.
"""

from __future__ import annotations

import pandas as pd
import pytest

from kpi_service.alerts.engine import Engine
from kpi_service.alerts.rules import parse_rules
from kpi_service.core.config import Standard
from kpi_service.kpi.calendar import Bucket
from kpi_service.kpi.compute import DOWN_COLUMNS, UNIT_COLUMNS, WORK_COLUMNS, compute_kpis
from takt_wire import UnitEvent, WorkEvent
from tests.alerts.factory import T0, Line, wall

RULES = """
rules:
  - {id: eff, metric: efficiency, scope: worker, window: {minutes: 60}, min_samples: 1,
     warning: 1, clear: 2}
  - {id: defects, metric: defect_rate, scope: worker, window: {minutes: 60}, min_samples: 1,
     warning: 99, clear: 98}
"""
STANDARDS = [
    Standard(station="S1", cycle_s=12.0),
    Standard(station="S1", line="L1", cycle_s=10.0),
]


def _events() -> list[UnitEvent | WorkEvent]:
    line = Line()
    return [
        *line.units(0, 30, every=10, defect_every=6, station="S1"),
        line.work(0, 600, station="S1", down=60),
        *line.units(1, 20, every=10, station="S2"),  # no standard: left out of % of standard
        line.work(0, 600, station="S2"),
    ]


def _frames(events: list[UnitEvent | WorkEvent]) -> tuple[pd.DataFrame, pd.DataFrame]:
    def ns(e: UnitEvent | WorkEvent) -> int:
        return int(e.ts.timestamp() * 1e9)

    units = [
        (ns(e), e.site, e.line, e.station, e.worker, e.outcome, e.defect_code or "", e.count)
        for e in events
        if isinstance(e, UnitEvent)
    ]
    work = [
        (
            ns(e),
            e.site,
            e.line,
            e.station,
            e.worker,
            e.work_s,
            e.effective_s,
            sum(e.down_s.values()),
        )
        for e in events
        if isinstance(e, WorkEvent)
    ]
    return pd.DataFrame(units, columns=UNIT_COLUMNS), pd.DataFrame(work, columns=WORK_COLUMNS)


def test_engine_and_kpi_rows_agree_with_a_hand_calculation() -> None:
    events = _events()
    # By hand: S1 has 30 units, every 6th defective -> 25 good at the line's 10 s standard,
    # over 600 - 60 = 540 effective seconds at S1; S2 has no standard.
    pct = 100 * 25 * 10 / 540
    defect_rate = 5 / 50  # both stations count towards the worker's defect rate

    engine = Engine(parse_rules(RULES, has_standards=True), standards=STANDARDS)
    engine.feed(events, wall(600))
    key = ("worker", "s1", "L1", "S1", "W1")
    eff_rule, defect_rule = engine.rules.rules
    assert engine.value(eff_rule, key, wall(600)) == pytest.approx(pct)
    line_key = ("line", "s1", "L1", None, None)
    assert engine.value(defect_rule, line_key, wall(600)) == pytest.approx(100 * defect_rate)

    units, work = _frames(events)
    hour = Bucket("h", T0, T0 + pd.Timedelta(hours=1).to_pytimedelta())
    down = pd.DataFrame(columns=DOWN_COLUMNS)
    (row,) = compute_kpis(units, work, down, [hour], "hour", "worker", STANDARDS)
    assert row["pct_of_standard"] == pytest.approx(pct)
    assert row["defect_rate"] == pytest.approx(defect_rate)
