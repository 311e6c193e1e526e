"""The InfluxDB schema as code (prose and reasons: docs/influx-schema.md).

Measurements, their tags and fields, the point-time formula of each event kind and
its inverse, and the hourly rollups. The collector's formatter writes by these
definitions and every reader (the KPI service, the alert rebuild, replay) reads by
them, so the stamp and its inverse cannot drift apart again: the collector stamps
work and gaps at the interval's *start*, and the inverse gives back both the start
and the *end* of the interval (``end_ns``), which the alert windows need to count a
work interval pro rata.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from pydantic_core import TzInfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
SEQ_SLOTS = 1_000_000
"""Nanoseconds below a millisecond used to keep events of one agent apart (seq mod this)."""
HOUR_NS = 3_600_000_000_000

TAGS: dict[str, tuple[str, ...]] = {
    "units": ("site", "line", "station", "worker", "outcome", "defect_code", "edge"),
    "work": ("site", "line", "station", "worker", "edge"),
    "downtime": ("site", "line", "station", "worker", "reason", "edge"),
    "sessions": ("site", "line", "station", "worker", "action", "edge"),
    "states": ("site", "line", "station", "state", "reason", "edge"),
    "gaps": ("site", "line", "station", "worker", "reason", "edge"),
}
"""Tag keys per raw measurement, in the order the formatter's prefix cache stores them.
``edge`` is the agent id as a tag (the ``agent`` field's twin, which cannot share its
name): without it, events of two agents with equal tags, millisecond and seq mod 10^6
would share a point key and one would silently replace the other."""

FIELDS: dict[str, dict[str, str]] = {
    "units": {"count": "int", "agent": "str", "boot": "str", "device": "str", "seq": "int",
              "historical": "bool", "serial": "str?", "cycle_s": "float?"},
    "work": {"work_s": "float", "effective_s": "float", "down_s": "float", "start_ns": "int",
             "end_ns": "int?", "agent": "str", "boot": "str", "device": "str", "seq": "int",
             "historical": "bool"},
    "downtime": {"seconds": "float", "agent": "str", "boot": "str", "seq": "int"},
    "sessions": {"agent": "str", "boot": "str", "device": "str", "seq": "int",
                 "historical": "bool"},
    "states": {"worker": "str", "agent": "str", "boot": "str", "device": "str", "seq": "int",
               "historical": "bool"},
    "gaps": {"seconds": "float", "start_ns": "int", "agent": "str", "boot": "str",
             "device": "str", "seq": "int", "historical": "bool"},
}  # fmt: skip
"""Field types per raw measurement (``?``: optional; ``end_ns`` is absent on work points
written before it existed, see :func:`interval_of`)."""

MEASUREMENTS = tuple(TAGS)

MEASUREMENT_OF_KIND = {
    "unit": "units",
    "work": "work",
    "session": "sessions",
    "state": "states",
    "gap": "gaps",
}
"""Event kind -> its main measurement (a work event also writes one ``downtime`` point per
reason, at the work point's time)."""

STAMPED_AT_START = frozenset({"work", "gap"})
"""Kinds whose point time comes from the interval's start, not from ``ts`` (its end): an
interval ending on 14:00:00 belongs to the hour, shift and day that end there."""


# -- point time and its inverse -------------------------------------------------------------

_FIXED_OFFSET_TYPES = (timezone, TzInfo)
_ORDINAL_1970 = EPOCH.toordinal()


def epoch_us(ts: datetime) -> int:
    """Exact microseconds since the epoch of an aware datetime.

    ``ts - EPOCH`` costs ~3 us when the zone is pydantic's TzInfo (two utcoffset
    calls through the datetime machinery); summing the fields and asking a
    fixed-offset zone directly is ~4x cheaper. Other zones (zoneinfo) are asked
    with the datetime, as their offset varies.
    """
    tz = ts.tzinfo
    delta = tz.utcoffset(None) if type(tz) in _FIXED_OFFSET_TYPES else ts.utcoffset()  # type: ignore[union-attr]
    if delta is None:
        raise ValueError("naive datetime: the zone is required")
    seconds = (ts.toordinal() - _ORDINAL_1970) * 86400 + ts.hour * 3600 + ts.minute * 60 + ts.second
    us = seconds * 1_000_000 + ts.microsecond
    return us - delta // _US if delta else us


def point_time_us(us: int, seq: int) -> int:
    """Point timestamp (ns) from event identity: floor(time to ms) x 10^6 + seq mod 10^6."""
    return (us // 1000) * SEQ_SLOTS + seq % SEQ_SLOTS


def point_time_ns(ts: datetime, seq: int) -> int:
    """:func:`point_time_us` of an aware datetime."""
    return point_time_us(epoch_us(ts), seq)


def stamp_of(kind: str, ts: datetime, start: datetime | None) -> datetime:
    """The instant an event's point is stamped at: the start for intervals, else ``ts``."""
    if kind in STAMPED_AT_START:
        assert start is not None, f"a {kind} event has a start"
        return start
    return ts


def point_seconds(time_ns: int) -> float:
    """Inverse of the point time: the stamped instant, to the millisecond (what is kept)."""
    return (time_ns // SEQ_SLOTS) / 1000.0


def hour_of(time_ns: int) -> int:
    """Start of the UTC hour a point falls in, in ns (what rollups recompute)."""
    return time_ns - time_ns % HOUR_NS


def interval_of(measurement: str, row: Mapping[str, Any]) -> tuple[float, float]:
    """(start, end) in epoch seconds of a ``work`` or ``gaps`` row, to the microsecond.

    The point is stamped at the start, so its time is *not* the end. Work points carry
    ``end_ns``; older ones lack it and get ``start + work_s`` (the logged-in seconds,
    equal to the span unless the operator logged in or out within the interval). Gaps
    carry ``seconds`` = end - start exactly.
    """
    start_us = int(row["start_ns"]) // 1000
    if measurement == "work":
        end_ns = row.get("end_ns")
        if end_ns is not None:
            return start_us / 1e6, (int(end_ns) // 1000) / 1e6
        end_us = start_us + round(float(row["work_s"]) * 1e6)
    elif measurement == "gaps":
        end_us = start_us + round(float(row["seconds"]) * 1e6)
    else:
        raise ValueError(f"{measurement} points are instants, not intervals")
    return start_us / 1e6, end_us / 1e6


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """One raw point read back: its event time(s), identity, tags and fields."""

    measurement: str
    ts: float
    """The event's time (``ts``): the end of an interval, the instant of anything else
    (the latter to the millisecond: that is what the point key keeps)."""
    start: float | None
    """An interval's start (work, gaps), else None."""
    identity: tuple[str, str, int]
    """(agent, boot, seq)."""
    tags: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


def decode_row(measurement: str, row: Mapping[str, Any]) -> StoredPoint:
    """The inverse of the formatter for one row of ``SELECT * FROM <measurement>``
    (``epoch=ns``): which instant(s) and identity the point stands for."""
    tag_names = TAGS[measurement]
    tags = {name: str(row[name]) for name in tag_names if row.get(name) not in (None, "")}
    fields = {name: row[name] for name in FIELDS[measurement] if row.get(name) is not None}
    start: float | None = None
    if measurement in ("work", "gaps"):
        start, ts = interval_of(measurement, row)
    else:
        ts = point_seconds(int(row["time"]))
    identity = (str(row["agent"]), str(row["boot"]), int(row["seq"]))
    return StoredPoint(measurement, ts, start, identity, tags, fields)


def rows(series: Iterable[Mapping[str, Any]]) -> Iterable[dict[str, Any]]:
    """Rows of InfluxDB JSON series as dicts (tags of ``GROUP BY`` merged in)."""
    for one in series:
        columns = one["columns"]
        tags = one.get("tags") or {}
        for values in one.get("values") or []:
            row = dict(zip(columns, values, strict=True))
            if tags:
                row.update(tags)
            yield row


# -- rollups --------------------------------------------------------------------------------

ROLLUP_SUFFIX = "_1h"
ROLLUPS: dict[str, dict[str, str]] = {
    "units": {"count": "int"},
    "work": {"work_s": "float", "effective_s": "float", "down_s": "float"},
    "downtime": {"seconds": "float"},
}
"""Raw measurement -> summed fields (with their type) of ``<measurement>_1h``, one point
per raw tag set and UTC hour, stamped at the hour's start; the same fields in
``<measurement>_1d``, one point per raw tag set and *local* calendar day of a zone."""

DAY_SUFFIX = "_1d"
MONTH_SUFFIX = "_1mo"
"""``<m>_1mo``: one point per raw tag set and local calendar month, summed from the days
(a year is 12 points per series instead of 365: InfluxDB 1.x reads points one by one)."""
TZ_TAG = "tz"
"""Tag of a daily rollup point: the IANA zone whose calendar day it sums. A KPI service
reads only the days of its own zone, so a collector set to another zone can never
make it sum the wrong 24 hours (it falls back to the hourly rollups instead)."""


def rollup_aggregate(measurement: str) -> str:
    """``sum("f") AS "f", ...`` of a rollup's fields."""
    return ", ".join(f'sum("{f}") AS "{f}"' for f in ROLLUPS[measurement])


# -- local calendar days (daily rollups and the KPI calendar share these) ------------------


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall time ``at`` on ``day`` (fold=0: a time skipped by a spring
    DST change moves forward by the gap, an ambiguous autumn time is its first occurrence)."""
    return datetime.combine(day, at).replace(tzinfo=tz, fold=0).astimezone(UTC)


def day_start_ns(day: date, tz: ZoneInfo) -> int:
    """Local midnight of ``day`` in ns: where the day's daily rollup point is stamped."""
    return epoch_us(local_instant(day, time(0), tz)) * 1000


def day_bounds(day: date, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) of a local day in ns: 23 or 25 hours on DST change days."""
    return day_start_ns(day, tz), day_start_ns(day + timedelta(days=1), tz)


def month_bounds(month: date, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) of the local calendar month holding ``month``, in ns."""
    first = month.replace(day=1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return day_start_ns(first, tz), day_start_ns(following, tz)


def local_date(time_ns: int, tz: ZoneInfo) -> date:
    """The local calendar day an instant falls in."""
    return datetime.fromtimestamp(time_ns // 1_000_000_000, tz).date()


def days_of_hour(hour_ns: int, tz: ZoneInfo) -> set[date]:
    """Local days a UTC hour overlaps: one, or two where midnight is not on the hour
    (zones like Asia/Kolkata, +05:30)."""
    return {local_date(hour_ns, tz), local_date(hour_ns + HOUR_NS - 1, tz)}
