"""The query planner: monthly rollups for whole local months, daily for whole local days,
hourly for the partial edges, raw for the rest and the recent part, and the same KPIs
whichever path answers.

The figures are checked against sums made here from the events (each point falls in
the bucket holding its time), never against another path of the code under test.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kpi_service.influx import InfluxReader
from kpi_service.kpi.calendar import Bucket, buckets, shift_instances
from kpi_service.kpi.compute import compute_kpis
from kpi_service.kpi.plan import Read, plan
from kpi_service.kpi.repository import Filters, fetch
from kpi_service.testing import lines_of, point_time, roll_up
from takt_cli.localservices import Influxd
from takt_store.settings import InfluxSettings
from takt_wire import Event, UnitEvent, WorkEvent
from tests.store.test_daily_rollups import Events, dst_events

from .conftest import load_events

BERLIN = ZoneInfo("Europe/Berlin")
H = 3600 * 10**9
LATER = 2_000_000_000 * 10**9  # a clock long after the data: nothing is recent


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text + "+00:00")


def ns(t: datetime) -> int:
    return round(t.timestamp() * 1e6) * 1000


def levels(reads: list[Read]) -> list[tuple[str, int, int, int | None]]:
    return [(r.level, r.start_ns, r.end_ns, r.step_s) for r in reads]


# -- the plan (pure) ------------------------------------------------------------------------


def test_a_year_is_one_monthly_sum_and_by_day_one_grouped_read() -> None:
    year = buckets("period", date(2026, 1, 1), date(2026, 12, 31), BERLIN, [])
    begin, end = ns(utc("2025-12-31T23:00:00")), ns(utc("2026-12-31T23:00:00"))
    assert levels(plan(year, hourly=True, zone=BERLIN, now_ns=LATER)) == [
        ("month", begin, end, None)
    ]
    # By month: the monthly points, one row each (grouped by hour: every local midnight
    # of Berlin is on a UTC hour); by day, the daily points likewise.
    months = buckets("month", date(2026, 1, 1), date(2026, 12, 31), BERLIN, [])
    assert levels(plan(months, hourly=True, zone=BERLIN, now_ns=LATER)) == [
        ("month", begin, end, 3600)
    ]
    days = buckets("day", date(2026, 1, 1), date(2026, 12, 31), BERLIN, [])
    assert levels(plan(days, hourly=True, zone=BERLIN, now_ns=LATER)) == [("day", begin, end, 3600)]
    # Mid-month to mid-month: days, the whole month between, days.
    span = buckets("period", date(2026, 1, 15), date(2026, 3, 14), BERLIN, [])
    assert levels(plan(span, hourly=True, zone=BERLIN, now_ns=LATER)) == [
        ("day", ns(utc("2026-01-14T23:00:00")), ns(utc("2026-01-31T23:00:00")), None),
        ("month", ns(utc("2026-01-31T23:00:00")), ns(utc("2026-02-28T23:00:00")), None),
        ("day", ns(utc("2026-02-28T23:00:00")), ns(utc("2026-03-14T23:00:00")), None),
    ]
    # Without calendar rollups in our zone: hourly; rollups off: raw, one sum per month.
    assert {r.level for r in plan(year, hourly=True, zone=None, now_ns=LATER)} == {"hour"}
    raw = plan(months, hourly=False, zone=BERLIN, now_ns=LATER)
    assert {(r.level, r.step_s) for r in raw} == {("raw", None)} and len(raw) == 12


def test_mid_day_edges_are_hourly_and_raw_and_the_recent_hour_raw() -> None:
    start = utc("2026-03-28T09:30:00")  # mid-hour, mid-day (10:30 CET)
    end = utc("2026-03-31T10:17:23.5")  # "now"
    bucket = [Bucket("p", start, end)]
    now = ns(end) + 10**9
    assert levels(plan(bucket, hourly=True, zone=BERLIN, now_ns=now)) == [
        ("raw", ns(start), ns(utc("2026-03-28T10:00:00")), None),
        ("hour", ns(utc("2026-03-28T10:00:00")), ns(utc("2026-03-28T23:00:00")), None),
        # 29 March (23 h) and 30 March, local days
        ("day", ns(utc("2026-03-28T23:00:00")), ns(utc("2026-03-30T22:00:00")), None),
        ("hour", ns(utc("2026-03-30T22:00:00")), ns(utc("2026-03-31T10:00:00")), None),
        ("raw", ns(utc("2026-03-31T10:00:00")), ns(end), None),
    ]
    # Five minutes into an hour, the previous hour is still read raw.
    early = utc("2026-03-31T10:03:00")
    reads = plan([Bucket("p", start, early)], hourly=True, zone=BERLIN, now_ns=ns(early))
    assert levels(reads)[-2:] == [
        ("hour", ns(utc("2026-03-30T22:00:00")), ns(utc("2026-03-31T09:00:00")), None),
        ("raw", ns(utc("2026-03-31T09:00:00")), ns(early), None),
    ]


def test_shifts_are_hourly_with_the_time_between_them() -> None:
    from kpi_service.core.config import ShiftDef

    shifts = [ShiftDef(name="early", start="06:00", end="14:00")]
    instances = shift_instances(date(2026, 3, 2), date(2026, 3, 4), BERLIN, shifts)
    reads = plan(instances, hourly=True, zone=BERLIN, now_ns=LATER)
    # No shift holds a whole day: hours only, the time between shifts read too (its units
    # are "unscheduled"), one sum per shift and per gap (few, long segments).
    edges = sorted({b.start_ns for b in instances} | {b.end_ns for b in instances})
    assert levels(reads) == [("hour", a, b, None) for a, b in itertools.pairwise(edges)]
    # A month of shifts: too many segments for one sum each; one read grouped by hour.
    month = shift_instances(date(2026, 3, 2), date(2026, 3, 31), BERLIN, shifts)
    assert levels(plan(month, hourly=True, zone=BERLIN, now_ns=LATER)) == [
        ("hour", month[0].start_ns, month[-1].end_ns, 3600)
    ]


def test_a_zone_off_the_hour_reads_days_with_raw_edges() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    bucket = [Bucket("p", utc("2026-06-01T12:00:00"), utc("2026-06-04T12:00:00"))]
    assert levels(plan(bucket, hourly=True, zone=kolkata, now_ns=LATER)) == [
        ("hour", ns(utc("2026-06-01T12:00:00")), ns(utc("2026-06-01T18:00:00")), None),
        ("raw", ns(utc("2026-06-01T18:00:00")), ns(utc("2026-06-01T18:30:00")), None),
        ("day", ns(utc("2026-06-01T18:30:00")), ns(utc("2026-06-03T18:30:00")), None),
        ("raw", ns(utc("2026-06-03T18:30:00")), ns(utc("2026-06-03T19:00:00")), None),
        ("hour", ns(utc("2026-06-03T19:00:00")), ns(utc("2026-06-04T12:00:00")), None),
    ]


# -- the same KPIs from raw, hourly and daily (real influxd) --------------------------------


def stamp(e: Event) -> int:
    """The instant a point is kept at (to the ms): the start for work, the time otherwise."""
    t = e.start if isinstance(e, WorkEvent) else e.ts
    return ns(t) // 10**6 * 10**6


def truth(events: list[Event], bucket_list: list[Bucket]) -> dict[tuple[str, str], Counter[str]]:
    """Sums per (worker, bucket) made here: the bucket is the one holding the point time."""
    out: dict[tuple[str, str], Counter[str]] = {}
    for e in events:
        t = stamp(e)
        for b in bucket_list:
            if b.start_ns <= t < b.end_ns:
                sums = out.setdefault((e.worker, b.label), Counter())
                if isinstance(e, UnitEvent):
                    sums["good" if e.outcome == "good" else "defect"] += e.count
                elif isinstance(e, WorkEvent):
                    sums["work_s"] += e.work_s  # type: ignore[assignment]
                    sums["effective_s"] += e.effective_s  # type: ignore[assignment]
                    sums["down_s"] += sum(e.down_s.values())  # type: ignore[assignment]
    return out


async def kpis(
    reader: InfluxReader, bucket_list: list[Bucket], group: str, now_ns: int = LATER
) -> tuple[dict[tuple[str, str], dict[str, Any]], set[str]]:
    data = await fetch(reader, bucket_list, group, Filters(), with_serials=False, now_ns=now_ns)
    rows = compute_kpis(data.units, data.work, data.down, bucket_list, group, "worker", [])
    return {(r["worker"], r["bucket"]): r for r in rows}, {r.level for r in data.reads}


def check(got: dict[tuple[str, str], dict[str, Any]], want: dict[Any, Counter[str]]) -> None:
    assert set(got) == set(want)
    for key, sums in want.items():
        row = got[key]
        assert (row["units_good"], row["units_defect"]) == (sums["good"], sums["defect"]), key
        for f in ("work_s", "effective_s", "down_s"):
            assert row[f] == pytest.approx(sums[f], rel=1e-12, abs=1e-9), (key, f)


CASES: list[tuple[str, list[Bucket], str]] = [
    ("days around the spring change", buckets("day", date(2026, 3, 27), date(2026, 3, 30), BERLIN, []), "day"),  # noqa: E501
    ("autumn week as one period", buckets("period", date(2026, 10, 22), date(2026, 10, 28), BERLIN, []), "period"),  # noqa: E501
    ("months", buckets("month", date(2026, 3, 1), date(2026, 10, 31), BERLIN, []), "month"),
    ("mid-day to mid-day", [Bucket("p", utc("2026-03-28T09:30:00"), utc("2026-03-30T13:45:30.25"))], "period"),  # noqa: E501
]  # fmt: skip


@pytest.fixture(scope="module")
def loaded(influxd: Influxd) -> tuple[str, list[Event]]:
    events = dst_events().out
    return load_events(influxd, events), events  # hourly and daily rollups (UTC, Berlin)


@pytest.mark.parametrize("name,bucket_list,group", CASES, ids=[c[0] for c in CASES])
async def test_raw_hourly_and_calendar_paths_give_the_independent_sums(
    influxd: Influxd, loaded: tuple[str, list[Event]], name: str, bucket_list: list[Bucket],
    group: str,
) -> None:  # fmt: skip
    db, events = loaded
    settings = InfluxSettings(url=influxd.url, database=db)
    want = truth(events, bucket_list)
    assert want, name
    paths = {
        "raw": InfluxReader(settings, use_rollups=lambda: False, timezone="Europe/Berlin"),
        "hourly": InfluxReader(settings, timezone=None),
        "calendar": InfluxReader(settings, timezone="Europe/Berlin"),
    }
    try:
        for path, reader in paths.items():
            got, used = await kpis(reader, bucket_list, group)
            check(got, want)
            if path == "raw":
                assert used == {"raw"}
            elif path == "hourly":
                assert "day" not in used and "hour" in used
            else:  # whole months from monthly rollups, whole days from daily ones
                assert used & {"day", "month"}
                assert ("month" in used) == (group == "month")
    finally:
        for reader in paths.values():
            await reader.aclose()


async def test_the_recent_part_is_read_raw(
    influxd: Influxd, loaded: tuple[str, list[Event]]
) -> None:
    """Points written a moment ago have no rollup yet; a period ending now still has them."""
    db, events = loaded
    end = utc("2026-10-25T12:34:56")
    bucket_list = [Bucket("today", utc("2026-10-24T22:00:00"), end)]  # 25 October, to "now"
    fresh = Events()
    fresh.seq = 2 * 10**6
    fresh.unit("w1", utc("2026-10-25T12:30:00"), n=3)  # not rolled up
    influxd.write(db, lines_of(fresh.out))
    reader = InfluxReader(InfluxSettings(url=influxd.url, database=db), timezone="Europe/Berlin")
    try:
        got, used = await kpis(reader, bucket_list, "period", now_ns=ns(end))
    finally:
        await reader.aclose()
    assert used == {"hour", "raw"}  # the day is not over: its hours, then the last ones raw
    check(got, truth([*events, *fresh.out], bucket_list))


async def test_a_late_point_reaches_the_calendar_path(influxd: Influxd) -> None:
    events = dst_events().out
    db = load_events(influxd, events)
    year = buckets("period", date(2026, 1, 1), date(2026, 12, 31), BERLIN, [])
    reader = InfluxReader(InfluxSettings(url=influxd.url, database=db), timezone="Europe/Berlin")
    try:
        before, used = await kpis(reader, year, "period")
        assert used == {"month"}
        check(before, truth(events, year))
        # Back from a week offline: 9 units at 23:59:59.999 local on the 23-hour day,
        # written raw, then rolled up as the collector does (its hour, day and month).
        late = Events()
        late.seq = 3 * 10**6
        late.unit("w2", utc("2026-03-29T21:59:59.999"), n=9)
        influxd.write(db, lines_of(late.out))
        hour = point_time(late.out[0]) // H * H
        roll_up(influxd.url, db, hour, hour + H)
        after, _ = await kpis(reader, year, "period")
    finally:
        await reader.aclose()
    check(after, truth([*events, *late.out], year))
    label = year[0].label
    assert after[("w2", label)]["units_good"] == before[("w2", label)]["units_good"] + 9
