"""Shift calendar and bucket math (pure): overnight shifts, breaks, DST days in Europe/Berlin."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from kpi_service.api.routes.distribution import band_split
from kpi_service.core.config import Band, BreakDef, ShiftDef
from kpi_service.kpi.calendar import buckets, granularity_s, shift_instances
from kpi_service.kpi.compute import assign_buckets

BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = ShiftDef(
    name="night", start=time(22), end=time(6), breaks=(BreakDef(start=time(2), end=time(2, 30)),)
)
EARLY = ShiftDef(
    name="early", start=time(6), end=time(14), breaks=(BreakDef(start=time(9), end=time(9, 15)),
    BreakDef(start=time(12), end=time(12, 30))),
)  # fmt: skip


def utc(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "start", "end", "hours"),
    [
        ("2026-03-14", "2026-03-14T21:00", "2026-03-15T05:00", 8),
        ("2026-03-28", "2026-03-28T21:00", "2026-03-29T04:00", 7),  # clocks go forward
        ("2026-10-24", "2026-10-24T20:00", "2026-10-25T05:00", 9),  # clocks go back
        ("2026-07-01", "2026-07-01T20:00", "2026-07-02T04:00", 8),
    ],
)
def test_overnight_shift_is_dated_by_its_start(day: str, start: str, end: str, hours: int) -> None:
    [night] = shift_instances(date.fromisoformat(day), date.fromisoformat(day), BERLIN, [NIGHT])
    assert night.label == f"{day} night"
    assert (night.start, night.end) == (utc(start), utc(end))
    assert night.planned_s == hours * 3600 - 1800


def test_breaks_reduce_planned_time_only() -> None:
    [early] = shift_instances(date(2026, 3, 10), date(2026, 3, 10), BERLIN, [EARLY])
    assert early.planned_s == 8 * 3600 - 45 * 60
    assert (early.end - early.start).total_seconds() == 8 * 3600


def test_weekdays_and_overlap() -> None:
    weekdays = ShiftDef(name="early", start=time(6), end=time(14), weekdays=(0, 1, 2, 3, 4))
    got = shift_instances(date(2026, 3, 9), date(2026, 3, 15), BERLIN, [weekdays])
    assert [b.label[:10] for b in got] == [f"2026-03-{d:02d}" for d in range(9, 14)]
    long = ShiftDef(name="long", start=time(5), end=time(23))
    with pytest.raises(ValueError, match="overlap"):
        shift_instances(date(2026, 3, 9), date(2026, 3, 9), BERLIN, [NIGHT, long, weekdays])


def test_days_weeks_months_are_local() -> None:
    days = buckets("day", date(2026, 3, 28), date(2026, 3, 30), BERLIN, [])
    assert [(b.end - b.start).total_seconds() / 3600 for b in days] == [24, 23, 24]
    weeks = buckets("week", date(2026, 3, 25), date(2026, 4, 2), BERLIN, [])
    assert [b.label for b in weeks] == ["2026-W13", "2026-W14"]
    assert weeks[0].start == utc("2026-03-24T23:00") and weeks[1].start == utc("2026-03-29T22:00")
    months = buckets("month", date(2026, 10, 15), date(2026, 12, 31), BERLIN, [])
    assert [b.label for b in months] == ["2026-10", "2026-11", "2026-12"]
    hours = buckets("hour", date(2026, 10, 25), date(2026, 10, 25), BERLIN, [])
    assert len(hours) == 25 and hours[2].label == "2026-10-25T02:00:00+02:00"
    assert hours[3].label == "2026-10-25T02:00:00+01:00"


def test_granularity_follows_boundaries() -> None:
    half = ShiftDef(name="a", start=time(6, 30), end=time(14, 30))
    assert (
        granularity_s(shift_instances(date(2026, 3, 9), date(2026, 3, 9), BERLIN, [half])) == 1800
    )
    assert granularity_s(buckets("day", date(2026, 3, 9), date(2026, 3, 9), BERLIN, [])) == 3600
    kolkata = buckets("day", date(2026, 3, 9), date(2026, 3, 9), ZoneInfo("Asia/Kolkata"), [])
    assert granularity_s(kolkata) == 1800


def test_time_between_shifts_is_unscheduled_not_dropped() -> None:
    early = ShiftDef(name="early", start=time(6), end=time(14))
    bl = shift_instances(date(2026, 3, 9), date(2026, 3, 10), BERLIN, [early])
    ns = [int(utc(t).timestamp()) * 10**9 for t in ("2026-03-09T05:00", "2026-03-09T13:00",
          "2026-03-09T20:00", "2026-03-10T05:30", "2026-03-10T14:00")]  # fmt: skip
    assert assign_buckets(pd.Series(ns), bl, "shift").tolist() == [0, -1, -1, 1, -2]


def test_bands_cover_everyone_best_first() -> None:
    values = [(f"W{i:02d}", float(i)) for i in range(20)]
    bands = [Band(name="top", fraction=0.25), Band(name="middle", fraction=0.55),
             Band(name="bottom", fraction=0.2)]  # fmt: skip
    top, middle, bottom = band_split(values, bands, lower_is_better=False)
    assert (top.count, middle.count, bottom.count) == (5, 11, 4)
    assert top.workers[0] == "W19" and bottom.workers[-1] == "W00"
    assert (top.min, top.max) == (15.0, 19.0)
    low = band_split(values, bands, lower_is_better=True)
    assert low[0].workers[0] == "W00"
