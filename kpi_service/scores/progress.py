"""Progress towards a target: the value so far, the share of the period elapsed, and a
projection to the period's end, from the same KPI computation as every other figure.

The share elapsed is calendar time in the site's zone. Counts (good units, effective
hours) are projected linearly (value / share elapsed); rates and ratios are projected
as they stand, since more of the same work does not change a rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import anyio.to_thread

from kpi_service.api.queries import compute_rows
from kpi_service.core.config import Settings
from kpi_service.influx import InfluxReader
from kpi_service.kpi.adjusted import fetch  # approved cases applied
from kpi_service.kpi.calendar import Bucket, local_instant
from kpi_service.kpi.compute import Entity
from kpi_service.kpi.metrics import METRICS
from kpi_service.kpi.repository import Filters
from kpi_service.scores.scoring import measured_value
from kpi_service.scores.targets import Target


@dataclass(frozen=True)
class Progress:
    target: Target
    period_end: date
    value: float | None
    elapsed: float
    projected: float | None
    on_track: bool | None


def period_end(target: Target) -> date:
    start = target.period_start
    if target.period == "day":
        return start
    if target.period == "week":
        return start + timedelta(days=6)
    nxt = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def contains(target: Target, day: date) -> bool:
    return target.period_start <= day <= period_end(target)


async def progress(
    reader: InfluxReader, settings: Settings, target: Target, at: datetime
) -> Progress:
    tz = ZoneInfo(settings.timezone)
    last = period_end(target)
    begin = local_instant(target.period_start, time(0), tz)
    finish = local_instant(last + timedelta(days=1), time(0), tz)
    elapsed = min(1.0, max(0.0, (at - begin) / (finish - begin)))
    value: float | None = None
    if elapsed > 0:
        bucket = Bucket(target.period_start.isoformat(), begin, min(at, finish))
        filters = Filters(
            lines=frozenset({target.line}),
            workers=frozenset({target.subject}) if target.kind == "worker" else None,
            stations=frozenset({target.subject}) if target.kind == "station" else None,
        )
        data = await fetch(
            reader, [bucket], "period", filters, with_serials=target.metric == "first_pass_yield"
        )
        rows = await anyio.to_thread.run_sync(
            compute_rows, data, settings, [bucket], "period", cast(Entity, target.kind)
        )
        key = {"worker": "worker", "station": "station", "line": "line"}[target.kind]
        row = next((r for r in rows if r.get(key) == target.subject), None)
        value = measured_value(target.metric, row) if row else None
    projected = value
    if value is not None and METRICS[target.metric].additive:
        projected = value / elapsed if elapsed > 0 else None
    on_track = None
    if projected is not None:
        lower = METRICS[target.metric].lower_is_better
        on_track = projected <= target.value if lower else projected >= target.value
    return Progress(target, last, value, elapsed, projected, on_track)
