"""The pure part of a case's effect (``kpi.cases``): delta rows from hand-made raw points,
checked against figures worked out by hand here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from kpi_service.kpi.calendar import Bucket
from kpi_service.kpi.cases import (
    RAW_UNIT_COLUMNS,
    RAW_WORK_COLUMNS,
    CaseEffect,
    annotate,
    concat,
    excuse,
    reattribute,
)
from kpi_service.kpi.compute import compute_kpis

T0 = datetime(2026, 3, 25, 8, 0, tzinfo=UTC)
NS = 1_000_000_000


def ns(t: datetime) -> int:
    return int(t.timestamp()) * NS


def case(effect: str, start: datetime, end: datetime, to: str | None = None) -> CaseEffect:
    kind = "wrong_attribution" if effect == "reattribute" else "training"
    return CaseEffect(7, kind, effect, "W1", to, "L1", "S1", start, end)  # type: ignore[arg-type]


def work_point(start: datetime, seconds: float, effective: float, *, end: bool = True) -> dict:  # type: ignore[type-arg]
    return {"time": ns(start), "site": "s", "line": "L1", "station": "S1", "worker": "W1",
            "effective_s": effective, "work_s": seconds, "start_ns": ns(start),
            "end_ns": ns(start + timedelta(seconds=seconds)) if end else float("nan")}  # fmt: skip


def test_excuse_takes_whole_intervals_and_cut_ones_pro_rata() -> None:
    points = pd.DataFrame(
        [
            work_point(T0, 60, 50),  # 10 s already excused down: 50 effective
            work_point(T0 + timedelta(minutes=1), 60, 60),
            work_point(T0 + timedelta(minutes=2), 60, 60, end=False),  # written before end_ns
            work_point(T0 + timedelta(minutes=3), 60, 60),  # outside the span
        ],
        columns=RAW_WORK_COLUMNS,
    )
    # The span: the first minute whole, 15 s of the second, 45 s of the third.
    span = case("excuse", T0 - timedelta(seconds=5), T0 + timedelta(minutes=1, seconds=15))
    d = excuse(span, points)
    assert d.work["effective_s"].tolist() == pytest.approx([-50.0, -15.0])
    assert d.work["down_s"].tolist() == pytest.approx([50.0, 15.0])
    assert d.work["work_s"].tolist() == [0.0, 0.0]
    assert d.down["reason"].tolist() == ["case", "case"]
    later = excuse(case("excuse", T0 + timedelta(minutes=2, seconds=15),
                        T0 + timedelta(minutes=3)), points)  # fmt: skip
    assert later.work["effective_s"].tolist() == pytest.approx([-45.0])  # legacy point: work_s long
    assert later.work["time"].tolist() == [ns(T0 + timedelta(minutes=2))]  # the point's own time


def test_reattribution_moves_each_unit_of_the_span_and_nothing_else() -> None:
    def unit(offset_s: int, outcome: str, code: str, n: int, serial: str | None) -> dict:  # type: ignore[type-arg]
        return {"time": ns(T0 + timedelta(seconds=offset_s)), "site": "s", "line": "L1",
                "station": "S1", "worker": "W1", "outcome": outcome, "defect_code": code,
                "count": n, "serial": serial}  # fmt: skip

    raw = pd.DataFrame(
        [unit(0, "good", "none", 1, "SN1"), unit(30, "defect", "E1", 2, None),
         unit(3600, "good", "none", 5, None)],  # an hour later: outside
        columns=RAW_UNIT_COLUMNS,
    )  # fmt: skip
    d = reattribute(case("reattribute", T0, T0 + timedelta(minutes=30), to="W2"), raw)
    moved = d.units.groupby(["worker", "outcome"])["count"].sum().to_dict()
    assert moved == {("W1", "good"): -1, ("W1", "defect"): -2, ("W2", "good"): 1,
                     ("W2", "defect"): 2}  # fmt: skip
    assert d.serials[["worker", "serial"]].values.tolist() == [["W2", "SN1"]]


def test_deltas_sum_with_the_fetched_rows_and_are_named_on_them() -> None:
    hour = Bucket("08", T0, T0 + timedelta(hours=1))
    base_work = pd.DataFrame(
        [{"time": ns(T0), "site": "s", "line": "L1", "station": "S1", "worker": "W1",
          "work_s": 3600.0, "effective_s": 3500.0, "down_s": 100.0}]
    )  # fmt: skip
    raw = pd.DataFrame(
        [work_point(T0 + timedelta(minutes=m), 60, 60) for m in range(10)], columns=RAW_WORK_COLUMNS
    )
    span = case("excuse", T0, T0 + timedelta(minutes=10))
    d = concat([excuse(span, raw)])
    work = pd.concat([base_work, d.work.drop(columns="case")], ignore_index=True)
    empty_units = pd.DataFrame(columns=["time", "site", "line", "station", "worker", "outcome",
                                        "defect_code", "count"])  # fmt: skip
    down = d.down.drop(columns="case")
    (row,) = compute_kpis(empty_units, work, down, [hour], "hour", "worker", [])
    assert (row["work_s"], row["effective_s"], row["down_s"]) == (3600.0, 2900.0, 700.0)
    annotate([row], d, {7: span}, [hour], "hour", "worker")
    assert row["cases"][0]["case"] == 7 and row["cases"][0]["change"] == {"excused_s": 600.0}
