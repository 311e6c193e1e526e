"""The metric registry reaches every consumer, and its figures match a hand calculation.

Adding a metric to ``kpi_service.kpi.metrics`` must be enough for it to show up in the
KPI rows (and the row model, CSV columns), the formulas, the evidence explanations, the
distribution's metric list, scheme and target validation, and progress; these tests
fail for any entry some consumer does not pick up.
"""

from __future__ import annotations

import typing
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from kpi_service.api.models import KpiRow
from kpi_service.api.routes import distribution
from kpi_service.api.routes.workers import explain
from kpi_service.core.config import Standard
from kpi_service.kpi.calendar import Bucket
from kpi_service.kpi.compute import (
    SERIAL_COLUMNS,
    UNIT_COLUMNS,
    WORK_COLUMNS,
    compute_kpis,
)
from kpi_service.kpi.metrics import FORMULAS, METRICS
from kpi_service.scores.model import MEASURED, MetricDef
from kpi_service.scores.scoring import measured_value
from kpi_service.scores.targets import TargetIn

T0 = datetime(2026, 3, 2, 6, tzinfo=UTC)
NS = 1_000_000_000
START_NS = int(T0.timestamp()) * NS


def _rows() -> list[dict[str, typing.Any]]:
    """One worker, one day: S1 (standard 30 s) and S2 (no standard), known sums."""
    units = pd.DataFrame(
        [
            (START_NS + 60 * NS, "s1", "L1", "S1", "W1", "good", "", 90),
            (START_NS + 61 * NS, "s1", "L1", "S1", "W1", "defect", "scratch", 6),
            (START_NS + 62 * NS, "s1", "L1", "S2", "W1", "good", "", 40),
            (START_NS + 63 * NS, "s1", "L1", "S2", "W1", "defect", "dent", 4),
        ],
        columns=UNIT_COLUMNS,
    )
    work = pd.DataFrame(
        [
            (START_NS + 60 * NS, "s1", "L1", "S1", "W1", 3600.0, 3000.0, 600.0),
            (START_NS + 62 * NS, "s1", "L1", "S2", "W1", 1800.0, 1800.0, 0.0),
        ],
        columns=WORK_COLUMNS,
    )
    down = pd.DataFrame(columns=["time", "site", "line", "station", "worker", "reason", "seconds"])
    serials = pd.DataFrame(
        [
            (START_NS + 1 * NS, "s1", "L1", "S1", "W1", "good", "A"),
            (START_NS + 2 * NS, "s1", "L1", "S1", "W1", "defect", "B"),
            (START_NS + 3 * NS, "s1", "L1", "S1", "W1", "good", "B"),  # rework: no pass
            (START_NS + 4 * NS, "s1", "L1", "S1", "W1", "good", "C"),
        ],
        columns=SERIAL_COLUMNS,
    )
    day = Bucket("2026-03-02", T0, datetime(2026, 3, 3, 6, tzinfo=UTC))
    standards = [Standard(station="S1", cycle_s=30.0)]
    return compute_kpis(units, work, down, [day], "day", "worker", standards, serials)


# Independent figures for the sums above, written out by hand.
GOOD, DEFECT = 90 + 40, 6 + 4
EXPECTED: dict[str, float] = {
    "defect_rate": DEFECT / (GOOD + DEFECT),
    "quality_rate": GOOD / (GOOD + DEFECT),
    "good_per_work_hour": GOOD / ((3600 + 1800) / 3600),
    "good_per_effective_hour": GOOD / ((3000 + 1800) / 3600),
    "pct_of_standard": 100 * 90 * 30 / 3000,  # only S1 has a standard
    "pct_of_standard_gross": 100 * 90 * 30 / 3600,
    "first_pass_yield": 2 / 3,
    "units_good": GOOD,
    "effective_hours": (3000 + 1800) / 3600,
}


def test_every_metric_has_a_hand_checked_figure() -> None:
    # A new registry entry needs its own line in EXPECTED: this is "its test".
    assert set(EXPECTED) == set(METRICS)


@pytest.mark.parametrize("name", list(METRICS))
def test_rows_carry_every_metric_with_the_right_value(name: str) -> None:
    (row,) = _rows()
    assert row[name] == pytest.approx(EXPECTED[name])
    assert KpiRow(**row).model_dump()[name] == pytest.approx(EXPECTED[name])


@pytest.mark.parametrize("name", list(METRICS))
def test_every_metric_reaches_every_consumer(name: str) -> None:
    (row,) = _rows()
    m = METRICS[name]
    # Formulas shown with every KPI page, and the row model (and so the CSV columns).
    assert FORMULAS[name] == m.formula
    assert name in KpiRow.model_fields
    # Evidence: the formula with this period's numbers, ending in the row's value.
    text = explain(row)[name]
    assert text.endswith(f"= {float(EXPECTED[name]):.6g}") or text.endswith(
        f"= {int(EXPECTED[name])}"
    )
    # Distribution: a metric one can rank by, in the registry's direction.
    assert name in typing.get_args(distribution.MetricName)
    # Schemes and targets: accepted as a measured metric, with the registry's formula.
    assert MEASURED[name] == m.formula
    spec = {"name": "x", "source": "measured", "measure": name, "weight": 100}
    bounds = (
        {"target": 2.0, "floor": 1.0}
        if m.direction == "higher"
        else {
            "target": 1.0,
            "floor": 2.0,
        }
    )
    MetricDef.model_validate({**spec, **bounds, "direction": m.direction})
    TargetIn.model_validate(
        {
            "kind": "worker",
            "subject": "W1",
            "line": "L1",
            "metric": name,
            "value": 1.0,
            "period_start": date(2026, 3, 1),
        }
    )
    assert measured_value(name, row) == pytest.approx(EXPECTED[name])


def test_unknown_metric_is_refused_by_schemes() -> None:
    with pytest.raises(ValueError, match="unknown measured metric 'oee'"):
        MetricDef.model_validate(
            {
                "name": "x",
                "source": "measured",
                "measure": "oee",
                "weight": 100,
                "target": 2,
                "floor": 1,
            }
        )


def test_evidence_numbers_recompute_to_the_figure() -> None:
    (row,) = _rows()
    explained = explain(row)
    assert explained["pct_of_standard"] == "100 * 2700 / 3000 = 90"
    assert explained["pct_of_standard_gross"] == "100 * 2700 / 3600 = 75"
    assert explained["defect_rate"] == "10 / 140 = 0.0714286"
    assert explained["first_pass_yield"] == "2 / 3 = 0.666667"
