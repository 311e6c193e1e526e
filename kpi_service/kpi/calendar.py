"""Buckets of a period in the plant's local time: hours, shifts, days, ISO weeks, months.

Everything here is pure: (dates, zone, shift definitions) in, UTC intervals out. Local
times are turned into instants with ``zoneinfo`` (fold=0): a wall time skipped by a
spring DST change moves forward by the gap, an ambiguous autumn time means its first
occurrence, so a night shift 22:00-06:00 lasts 7 h on 2026-03-29 and 9 h on 2026-10-25
in Europe/Berlin, exactly as the clock on the wall says.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from kpi_service.core.config import ShiftDef
from takt_store.schema import epoch_us
from takt_store.schema import local_instant as local_instant

# ``local_instant`` lives with the storage schema: the daily rollups cut days with it too.

Group = Literal["period", "hour", "shift", "day", "week", "month"]
UNSCHEDULED = "unscheduled"
"""Label of time inside a shift-grouped period but outside every shift (nothing is dropped)."""


@dataclass(frozen=True)
class Bucket:
    label: str
    start: datetime
    end: datetime
    shift: str | None = None
    planned_s: float | None = None
    """Shift length less its breaks (shifts only): the time the plant plans work for."""

    @property
    def start_ns(self) -> int:
        return epoch_ns(self.start)

    @property
    def end_ns(self) -> int:
        return epoch_ns(self.end)


def epoch_ns(t: datetime) -> int:
    """Exact nanoseconds since the epoch of an aware datetime (the storage schema's own
    conversion: no float on the way, so no rounding at any date)."""
    return epoch_us(t) * 1000


def shift_instances(first: date, last: date, tz: ZoneInfo, shifts: list[ShiftDef]) -> list[Bucket]:
    """Shifts dated ``first``..``last``; a shift is dated by the day it starts (night of 14 March
    runs into 15 March). Breaks reduce planned time but their units still count for the shift."""
    out: list[Bucket] = []
    day = first
    while day <= last:
        for shift in shifts:
            if day.weekday() not in shift.weekdays:
                continue
            start = local_instant(day, shift.start, tz)
            end_day = day + timedelta(days=1) if shift.end <= shift.start else day
            end = local_instant(end_day, shift.end, tz)
            planned = (end - start).total_seconds()
            for brk in shift.breaks:
                b_day = day if brk.start >= shift.start else day + timedelta(days=1)
                b_start = local_instant(b_day, brk.start, tz)
                b_end_day = b_day + timedelta(days=1) if brk.end < brk.start else b_day
                b_end = local_instant(b_end_day, brk.end, tz)
                overlap = (min(b_end, end) - max(b_start, start)).total_seconds()
                planned -= max(0.0, overlap)
            out.append(Bucket(f"{day.isoformat()} {shift.name}", start, end, shift.name, planned))
        day += timedelta(days=1)
    out.sort(key=lambda b: b.start)
    for a, b in itertools.pairwise(out):
        if b.start < a.end:
            raise ValueError(f"shifts overlap: {a.label} and {b.label}")
    return out


def _step(d: date, group: Group) -> date:
    if group == "day":
        return d + timedelta(days=1)
    if group == "week":
        return d + timedelta(days=7 - d.weekday())
    if group == "month":
        return date(d.year + d.month // 12, d.month % 12 + 1, 1)
    raise ValueError(group)


def _label(d: date, group: Group) -> str:
    if group == "week":
        iso = d.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if group == "month":
        return f"{d.year}-{d.month:02d}"
    return d.isoformat()


def buckets(
    group: Group, first: date, last: date, tz: ZoneInfo, shifts: list[ShiftDef]
) -> list[Bucket]:
    """Buckets covering local days ``first``..``last`` (weeks and months clipped to them)."""
    if last < first:
        raise ValueError("the period ends before it starts")
    if group == "shift":
        return shift_instances(first, last, tz, shifts)
    begin = local_instant(first, time(0), tz)
    finish = local_instant(last + timedelta(days=1), time(0), tz)
    if group == "period":
        return [Bucket(f"{first.isoformat()}/{last.isoformat()}", begin, finish)]
    if group == "hour":
        out = []
        t = begin
        while t < finish:
            nxt = min(t + timedelta(hours=1), finish)
            out.append(Bucket(t.astimezone(tz).isoformat(), t, nxt))
            t = nxt
        return out
    days: list[Bucket] = []
    d = first
    while d <= last:
        nxt_day = min(_step(d, group), last + timedelta(days=1))
        days.append(
            Bucket(
                _label(d, group), local_instant(d, time(0), tz), local_instant(nxt_day, time(0), tz)
            )
        )
        d = nxt_day
    return days


def granularity_s(bucket_list: list[Bucket]) -> int:
    """Largest step (≤ 1 h) that divides every boundary, so Influx can pre-aggregate on it."""
    g = 3600
    for b in bucket_list:
        for t in (b.start, b.end):
            g = math.gcd(g, int(t.timestamp()) % 3600)
            if t.microsecond:
                return 1
    return max(g, 1)
