"""Daily rollups in the site's zone: one point per raw tag set and *local* calendar day,
23 or 25 hours long on DST change days, recomputed (idempotently) when a late point lands;
monthly ones summed from the days.

The expected sums are made here from the events (each event's day is its point time
read on a Berlin or Kolkata wall clock); the DST days' bounds are calendar facts
written out by hand, not computed by the code under test.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from collector.lineproto import Formatter
from takt_cli.localservices import Influxd
from takt_store.capabilities import ensure_schema
from takt_store.client import InfluxClient
from takt_store.rollups import rebuild, recompute, recompute_days
from takt_store.schema import days_of_hour, hour_of
from takt_store.settings import InfluxSettings
from takt_wire import Event, UnitEvent, WorkEvent

BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = ZoneInfo("Asia/Kolkata")
Z = "+00:00"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text + Z)


def ns(t: datetime) -> int:
    return round(t.timestamp() * 1000) * 10**6


class Events:
    """Units and work of two workers, with a per-agent sequence like an edge agent."""

    def __init__(self) -> None:
        self.seq = 0
        self.out: list[Event] = []

    def _base(self, worker: str) -> dict[str, Any]:
        self.seq += 1
        station = "st1" if worker == "w1" else "st2"
        return {"site": "s1", "line": "L1", "station": station, "device": "d", "worker": worker,
                "agent": "gw-1", "boot": "b1", "seq": self.seq}  # fmt: skip

    def unit(self, worker: str, ts: datetime, n: int = 1, defect: bool = False) -> None:
        self.out.append(
            UnitEvent(
                **self._base(worker),
                ts=ts,
                count=n,
                outcome="defect" if defect else "good",
                defect_code="scratch" if defect else None,
            )
        )

    def work(self, worker: str, start: datetime, seconds: float, fault: float = 0.0) -> None:
        down = {"fault": fault} if fault else {}
        self.out.append(
            WorkEvent(
                **self._base(worker),
                ts=start + timedelta(seconds=seconds),
                start=start,
                work_s=seconds,
                effective_s=seconds - fault,
                down_s=down,
            )
        )


def dst_events() -> Events:
    """Every 20 minutes around both 2026 DST changes, plus points on the exact edges."""
    rng = random.Random(18)
    ev = Events()
    for first, hours in ((utc("2026-03-27T20:00:00"), 56), (utc("2026-10-23T20:00:00"), 80)):
        for k in range(hours * 3):
            t = first + timedelta(minutes=20 * k)
            for worker in ("w1", "w2"):
                ev.unit(worker, t + timedelta(seconds=rng.randint(0, 1100)), n=1 + k % 3,
                        defect=(k % 7 == 0))  # fmt: skip
                ev.work(worker, t, rng.uniform(60, 1199), fault=rng.choice([0.0, 0.5, 30.25]))
    # Local midnight and the last millisecond before it (a day is [00:00, 24:00) local).
    for edge in ("2026-03-28T23:00:00", "2026-03-29T22:00:00", "2026-10-25T23:00:00"):
        ev.unit("w1", utc(edge), n=100)
        ev.unit("w1", utc(edge) - timedelta(milliseconds=1), n=1000)
    # 02:30 twice on 25 October (CEST, then CET): both belong to that day.
    ev.unit("w2", utc("2026-10-25T00:30:00"), n=10_000)
    ev.unit("w2", utc("2026-10-25T01:30:00"), n=20_000)
    return ev


def local_day(t: datetime, tz: ZoneInfo) -> date:
    """The wall-clock date of an instant (to the millisecond, as the point keeps it)."""
    ms = t.replace(microsecond=t.microsecond // 1000 * 1000)
    return ms.astimezone(tz).date()


def expected_sums(events: list[Event], tz: ZoneInfo) -> dict[str, Any]:
    units: Counter[tuple[Any, ...]] = Counter()
    work: dict[tuple[Any, ...], float] = defaultdict(float)
    for e in events:
        if isinstance(e, UnitEvent):
            units[(local_day(e.ts, tz), e.worker, e.outcome)] += e.count
        elif isinstance(e, WorkEvent):
            day = local_day(e.start, tz)
            work[(day, e.worker, "work_s")] += e.work_s
            work[(day, e.worker, "effective_s")] += e.effective_s
            work[(day, e.worker, "down_s")] += sum(e.down_s.values())
    return {"units": units, "work": work}


def daily_points(server: Influxd, db: str, source: str) -> list[dict[str, Any]]:
    out = []
    answer: list[dict[str, Any]] = server.query(f"SELECT * FROM {source} GROUP BY *", db=db)
    for series in answer:
        for values in series["values"]:
            out.append(dict(zip(series["columns"], values, strict=True)) | series["tags"])
    return out


def unit_days(server: Influxd, db: str) -> Counter[tuple[Any, ...]]:
    """Unit counts per (day start, worker, outcome), summed over agents (``edge``)."""
    out: Counter[tuple[Any, ...]] = Counter()
    for p in daily_points(server, db, '"rollup"."units_1d"'):
        out[(p["time"], p["worker"], p["outcome"])] += p["count"]
    return out


async def load(influxd: Influxd, db: str, events: list[Event], retention_policies: bool) -> None:
    client = InfluxClient(
        InfluxSettings(url=influxd.url, database=db, retention_policies=retention_policies)
    )
    try:
        await ensure_schema(client)
        formatter, lines = Formatter(), list[str]()
        for event in events:
            formatter.lines(event, lines)
        assert (await client.write(lines)).rejected == []
    finally:
        await client.aclose()


def settings_of(influxd: Influxd, db: str, retention_policies: bool = True) -> InfluxSettings:
    return InfluxSettings(url=influxd.url, database=db, retention_policies=retention_policies)


@pytest.mark.parametrize("retention_policies", [True, False], ids=["rp", "no-rp"])
async def test_daily_rollups_follow_the_berlin_calendar_across_dst(
    influxd: Influxd, retention_policies: bool
) -> None:
    db = f"store_daily_{int(retention_policies)}"
    events = dst_events().out
    await load(influxd, db, events, retention_policies)
    client = InfluxClient(settings_of(influxd, db, retention_policies))
    try:
        written = await rebuild(
            client, ns(utc("2026-03-27T00:00:00")), ns(utc("2026-10-28T00:00:00")), [BERLIN]
        )
        assert written > 0
    finally:
        await client.aclose()
    rp = '"rollup".' if retention_policies else ""
    units = daily_points(influxd, db, f'{rp}"units_1d"')
    work = daily_points(influxd, db, f'{rp}"work_1d"')
    assert {p["tz"] for p in units + work} == {"Europe/Berlin"}

    # Day starts are local midnights: CET (+1) before 29 March, CEST (+2) from then on,
    # CET again from 26 October; the DST days last 23 and 25 hours.
    starts = {p["time"] for p in units}
    assert ns(utc("2026-03-28T23:00:00")) in starts  # 29 March 00:00 CET
    assert ns(utc("2026-03-29T22:00:00")) in starts  # 30 March 00:00 CEST (23 h later)
    assert ns(utc("2026-10-24T22:00:00")) in starts  # 25 October 00:00 CEST
    assert ns(utc("2026-10-25T23:00:00")) in starts  # 26 October 00:00 CET (25 h later)
    day_of_start = {ns(utc("2026-03-27T23:00:00")): date(2026, 3, 28)}
    for t in starts:
        wall = datetime.fromtimestamp(t / 1e9, UTC).astimezone(BERLIN)
        assert (wall.hour, wall.minute) == (0, 0), wall
        day_of_start[t] = wall.date()

    expected = expected_sums(events, BERLIN)
    got_units: Counter[tuple[Any, ...]] = Counter()
    for p in units:
        got_units[(day_of_start[p["time"]], p["worker"], p["outcome"])] += p["count"]
        assert isinstance(p["count"], int)
    assert got_units == expected["units"]
    got_work: dict[tuple[Any, ...], float] = defaultdict(float)
    for p in work:
        for f in ("work_s", "effective_s", "down_s"):
            got_work[(day_of_start[p["time"]], p["worker"], f)] += p[f]
    assert set(got_work) == set(expected["work"])
    for key, value in expected["work"].items():
        assert got_work[key] == pytest.approx(value, rel=1e-12), key
    # The repeated 02:00-03:00 of 25 October counted once each, in that day.
    assert expected["units"][(date(2026, 10, 25), "w2", "good")] >= 30_000

    # Months: local calendar months, summed from the days (March starts 28 Feb 23:00 UTC,
    # October on 30 Sep 22:00 UTC).
    month_start = {ns(utc("2026-02-28T23:00:00")): 3, ns(utc("2026-09-30T22:00:00")): 10}
    got_months: Counter[tuple[Any, ...]] = Counter()
    for p in daily_points(influxd, db, f'{rp}"units_1mo"'):
        assert p["tz"] == "Europe/Berlin" and isinstance(p["count"], int)
        got_months[(month_start[p["time"]], p["worker"], p["outcome"])] += p["count"]
    want_months: Counter[tuple[Any, ...]] = Counter()
    for (day, worker, outcome), count in expected["units"].items():
        want_months[(day.month, worker, outcome)] += count
    assert got_months == want_months

    # Recomputing is an idempotent overwrite.
    client = InfluxClient(settings_of(influxd, db, retention_policies))
    try:
        await recompute_days(client, [date(2026, 3, 29), date(2026, 10, 25)], BERLIN)
    finally:
        await client.aclose()
    assert sorted(map(repr, daily_points(influxd, db, f'{rp}"units_1d"'))) == sorted(
        map(repr, units)
    )


async def test_a_late_point_reaches_its_day_through_its_hour(influxd: Influxd) -> None:
    db = "store_daily_late"
    ev = dst_events()
    await load(influxd, db, ev.out, True)
    client = InfluxClient(settings_of(influxd, db))
    try:
        await rebuild(
            client, ns(utc("2026-03-27T00:00:00")), ns(utc("2026-03-31T00:00:00")), [BERLIN]
        )
        before = unit_days(influxd, db)
        # A gateway back online: 7 units at 23:30 CEST on 29 March (21:30 UTC), from another
        # agent, written raw; then what the collector does: the hour, then its day(s).
        late = Events()
        late.seq = 10**6
        late.unit("w1", utc("2026-03-29T21:30:00"), n=7)
        late_event = late.out[0]
        assert isinstance(late_event, UnitEvent)
        late_event = late_event.model_copy(update={"agent": "gw-2"})
        await load(influxd, db, [late_event], True)
        hour = hour_of(ns(utc("2026-03-29T21:30:00")))
        await recompute(client, hour)
        assert days_of_hour(hour, BERLIN) == {date(2026, 3, 29)}
        await recompute_days(client, days_of_hour(hour, BERLIN), BERLIN)
    finally:
        await client.aclose()
    after = unit_days(influxd, db)
    day29 = ns(utc("2026-03-28T23:00:00"))
    changed = {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}
    assert changed == {
        (day29, "w1", "good"): (before[(day29, "w1", "good")], before[(day29, "w1", "good")] + 7)
    }


async def test_days_not_on_the_hour_are_summed_from_raw_points(influxd: Influxd) -> None:
    """Asia/Kolkata (+05:30): local midnight is 18:30 UTC, so a day is no set of whole UTC
    hours; its rollup is read from the raw points and an hour may touch two days."""
    db = "store_daily_kolkata"
    ev = Events()
    for k in range(48 * 4):
        t = utc("2026-06-01T12:00:00") + timedelta(minutes=15 * k)
        ev.unit("w1", t + timedelta(seconds=k % 60), n=1 + k % 5)
    ev.unit("w2", utc("2026-06-01T18:30:00"), n=50)  # 2 June 00:00 IST
    ev.unit("w2", utc("2026-06-01T18:29:59.999"), n=60)  # 1 June 23:59:59.999 IST
    await load(influxd, db, ev.out, True)
    assert days_of_hour(ns(utc("2026-06-01T18:00:00")), KOLKATA) == {
        date(2026, 6, 1), date(2026, 6, 2)
    }  # fmt: skip
    client = InfluxClient(settings_of(influxd, db))
    try:
        await rebuild(
            client, ns(utc("2026-06-01T00:00:00")), ns(utc("2026-06-04T00:00:00")), [KOLKATA]
        )
    finally:
        await client.aclose()
    got: Counter[tuple[Any, ...]] = Counter()
    for p in daily_points(influxd, db, '"rollup"."units_1d"'):
        wall = datetime.fromtimestamp(p["time"] / 1e9, UTC).astimezone(KOLKATA)
        assert (wall.hour, wall.minute) == (0, 0) and p["tz"] == "Asia/Kolkata"
        got[(wall.date(), p["worker"], p["outcome"])] += p["count"]
    assert got == expected_sums(ev.out, KOLKATA)["units"]
    assert got[(date(2026, 6, 2), "w2", "good")] == 50
    assert got[(date(2026, 6, 1), "w2", "good")] == 60


def test_days_of_hour_on_dst_days() -> None:
    by_day: dict[date, int] = defaultdict(int)
    hour = ns(utc("2026-10-24T00:00:00"))
    for _ in range(72):
        for day in days_of_hour(hour, BERLIN):
            by_day[day] += 1
        hour += 3600 * 10**9
    assert by_day[date(2026, 10, 25)] == 25  # the autumn day has 25 hours
    hour = ns(utc("2026-03-28T00:00:00"))
    by_day.clear()
    for _ in range(72):
        for day in days_of_hour(hour, BERLIN):
            by_day[day] += 1
        hour += 3600 * 10**9
    assert by_day[date(2026, 3, 29)] == 23  # the spring day has 23
