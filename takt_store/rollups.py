"""Hourly and daily rollups as a query plus a write (no ``SELECT ... INTO``, which 2.x/3.x lack).

One hour of ``<m>_1h`` is recomputed by reading ``sum(...) GROUP BY time(1h), *`` from
the raw points and writing the answer back through ``/write`` with the same tags, the
same hour timestamp and the field types of the schema. This is exactly what 1.x's
``SELECT ... INTO ... GROUP BY time(1h), *`` stored (checked against it in
tests/store), and rewriting a whole hour is the same idempotent overwrite.

One local calendar day of ``<m>_1d`` (a zone's midnight to midnight: 23 or 25 hours
on DST change days) is recomputed the same way one level up: the sums of the day's
hourly rollup points (or of its raw points where midnight is not on a UTC hour, as
in Asia/Kolkata), written with the raw tag set plus ``tz`` at the day's local
midnight. Whoever recomputes an hour recomputes its day after it (the collector
does), so a late point reaches the daily rollup through its hour. A local calendar
month of ``<m>_1mo`` is the sum of its days, recomputed after them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from takt_store.client import InfluxClient, Series, qualified, quote_ident, quote_str
from takt_store.errors import InfluxError
from takt_store.lineproto import point_line
from takt_store.schema import (
    DAY_SUFFIX,
    HOUR_NS,
    MONTH_SUFFIX,
    ROLLUP_SUFFIX,
    ROLLUPS,
    TZ_TAG,
    day_bounds,
    local_date,
    month_bounds,
    rollup_aggregate,
)
from takt_store.settings import InfluxSettings

DAYS_PER_REQUEST = 31
"""Days whose statements share one ``/query`` request when many are recomputed (backfill)."""


def hour_query(settings: InfluxSettings, measurement: str, start_ns: int, end_ns: int) -> str:
    """The read half: sums per raw tag set and UTC hour in [start_ns, end_ns)."""

    return (
        f"SELECT {rollup_aggregate(measurement)} FROM {qualified(settings, measurement)} "
        f"WHERE time >= {start_ns} AND time < {end_ns} GROUP BY time(1h), * fill(none)"
    )


def day_query(settings: InfluxSettings, measurement: str, start_ns: int, end_ns: int) -> str:
    """The read half of one local day: sums per raw tag set over [start_ns, end_ns), from
    the hourly rollups when both ends are on the hour, else from the raw points."""
    if start_ns % HOUR_NS == 0 and end_ns % HOUR_NS == 0:
        source = qualified(settings, measurement + ROLLUP_SUFFIX, "rollup")
    else:
        source = qualified(settings, measurement)
    return (
        f"SELECT {rollup_aggregate(measurement)} FROM {source} "
        f"WHERE time >= {start_ns} AND time < {end_ns} GROUP BY *"
    )


def rollup_lines(
    measurement: str,
    series: list[Series],
    *,
    suffix: str = ROLLUP_SUFFIX,
    extra_tags: dict[str, str] | None = None,
    time_ns: int | None = None,
) -> list[str]:
    """The write half: one rollup line per answered row (pure). ``time_ns`` stamps every
    line (a day's midnight) instead of the row's own time."""
    types = ROLLUPS[measurement]
    target = measurement + suffix
    out = []
    for one in series:
        tags: dict[str, str] = dict(one.get("tags") or {})
        if extra_tags:
            tags.update(extra_tags)
        columns: list[str] = one["columns"]
        for values in one.get("values") or []:
            row = dict(zip(columns, values, strict=True))
            fields = {name: row.get(name) for name in types}
            if all(value is None for value in fields.values()):
                continue
            stamp = int(row["time"]) if time_ns is None else time_ns
            out.append(point_line(target, tags, fields, types, stamp))
    return out


async def _write(client: InfluxClient, lines: list[str]) -> int:
    if not lines:
        return 0
    result = await client.write(lines, which="rollup", retry=False)
    if result.rejected:
        line, why = result.rejected[0]
        raise InfluxError(f"{len(result.rejected)} rollup points refused, e.g. {line!r}: {why}")
    return result.written


async def recompute(client: InfluxClient, start_ns: int, end_ns: int | None = None) -> int:
    """Recompute every hourly rollup for the hours in [start_ns, end_ns) (default: one
    hour); returns the points written. Raises :class:`InfluxError` on any failure (the
    caller retries the hour; a rejected line is a failure too, never skipped silently)."""
    end = start_ns + HOUR_NS if end_ns is None else end_ns
    lines: list[str] = []
    statements = [hour_query(client.settings, m, start_ns, end) for m in ROLLUPS]
    answers = await client.query(";".join(statements))
    for measurement, series in zip(ROLLUPS, answers, strict=True):
        lines += rollup_lines(measurement, series)
    return await _write(client, lines)


async def recompute_days(client: InfluxClient, days: Iterable[date], tz: ZoneInfo) -> int:
    """Recompute the daily rollups of ``days`` (local days of ``tz``) from their hours;
    returns the points written. Run it after the hours of those days are recomputed.
    Raises :class:`InfluxError` on any failure, like :func:`recompute`."""
    ordered = sorted(set(days))
    written = 0
    for i in range(0, len(ordered), DAYS_PER_REQUEST):
        chunk = [(day, *day_bounds(day, tz)) for day in ordered[i : i + DAYS_PER_REQUEST]]
        statements = [
            day_query(client.settings, m, start, end) for _day, start, end in chunk for m in ROLLUPS
        ]
        answers = await client.query(";".join(statements))
        lines: list[str] = []
        answer = iter(answers)
        for _day, start, _end in chunk:
            for measurement in ROLLUPS:
                lines += rollup_lines(
                    measurement,
                    next(answer),
                    suffix=DAY_SUFFIX,
                    extra_tags={TZ_TAG: tz.key},
                    time_ns=start,
                )
        written += await _write(client, lines)
    return written


def month_query(
    settings: InfluxSettings, measurement: str, start_ns: int, end_ns: int, zone: str
) -> str:
    """The read half of one local month: sums per tag set of its days (of ``zone``)."""
    source = qualified(settings, measurement + DAY_SUFFIX, "rollup")
    return (
        f"SELECT {rollup_aggregate(measurement)} FROM {source} WHERE time >= {start_ns} "
        f"AND time < {end_ns} AND {quote_ident(TZ_TAG)} = {quote_str(zone)} GROUP BY *"
    )


async def recompute_months(client: InfluxClient, days: Iterable[date], tz: ZoneInfo) -> int:
    """Recompute the monthly rollups of the local months holding ``days``, from their daily
    rollups (run it after those); returns the points written."""
    months = sorted({day.replace(day=1) for day in days})
    written = 0
    for i in range(0, len(months), DAYS_PER_REQUEST):
        chunk = [month_bounds(month, tz) for month in months[i : i + DAYS_PER_REQUEST]]
        statements = [
            month_query(client.settings, m, start, end, tz.key)
            for start, end in chunk
            for m in ROLLUPS
        ]
        answer = iter(await client.query(";".join(statements)))
        lines: list[str] = []
        for start, _end in chunk:
            for measurement in ROLLUPS:
                lines += rollup_lines(
                    measurement, next(answer), suffix=MONTH_SUFFIX,
                    extra_tags={TZ_TAG: tz.key}, time_ns=start,
                )  # fmt: skip
        written += await _write(client, lines)
    return written


async def rebuild(
    client: InfluxClient, start_ns: int, end_ns: int, zones: Iterable[ZoneInfo] = ()
) -> int:
    """Recompute every hourly rollup in [start_ns, end_ns) (widened to whole hours), then
    the daily and monthly rollups in each of ``zones`` of every local day it touches. For a backfill
    after enabling rollups or changing the zone, and for tests; returns the points written."""
    first_hour = start_ns - start_ns % HOUR_NS
    last_hour = end_ns - 1 - (end_ns - 1) % HOUR_NS
    written = 0
    hour = first_hour
    step = 24 * HOUR_NS  # a day of raw points per request keeps the answers small
    while hour <= last_hour:
        stop = min(hour + step, last_hour + HOUR_NS)
        written += await recompute(client, hour, stop)
        hour = stop
    for tz in zones:
        first, last = local_date(first_hour, tz), local_date(last_hour + HOUR_NS - 1, tz)
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        written += await recompute_days(client, days, tz)
        written += await recompute_months(client, days, tz)
    return written
