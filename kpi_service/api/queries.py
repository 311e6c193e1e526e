"""What every KPI route does: check the caller's lines, plan buckets, fetch, compute, rename.

Kept out of the route modules so list, export, worker trend, evidence and distribution
all apply the same scoping and pseudonymisation rules.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import HTTPException, status
from fastapi.exceptions import RequestValidationError

from kpi_service.core.apikeys import Principal
from kpi_service.core.config import Settings
from kpi_service.core.pseudonym import Pseudonymiser
from kpi_service.influx import InfluxError, InfluxReader
from kpi_service.kpi.adjusted import annotated, fetch
from kpi_service.kpi.calendar import Bucket, Group, buckets
from kpi_service.kpi.compute import ENTITY_KEYS, Entity, compute_kpis
from kpi_service.kpi.repository import Filters, KpiData, known_workers

MAX_DAYS = 366
FIRST_DAY = date(1970, 1, 2)
LAST_DAY = date(2200, 12, 31)
"""InfluxDB stores int64 nanoseconds since 1970; dates outside this range cannot hold data."""


def pseudonymiser(settings: Settings) -> Pseudonymiser:
    key = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    return Pseudonymiser(key if settings.pseudonymise else None)


def scoped_lines(principal: Principal, requested: list[str] | None) -> frozenset[str] | None:
    """Lines the query may touch; a supervisor asking for another line gets 403."""
    wanted = frozenset(requested) if requested else None
    if principal.has("hr:read") or principal.lines is None:
        return wanted
    if wanted is not None and not wanted <= principal.lines:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "a supervisor may only read the lines it supervises"
        )
    return wanted or principal.lines


def invalid(field: str, message: str, value: object) -> RequestValidationError:
    """A 422 in FastAPI's own validation shape, for rules OpenAPI cannot express."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", field), "msg": message, "input": str(value)}]
    )


def period_buckets(settings: Settings, group: Group, start: date, end: date) -> list[Bucket]:
    if start < FIRST_DAY or end > LAST_DAY:
        raise invalid("start", f"periods lie within {FIRST_DAY}..{LAST_DAY}", start)
    if end < start:
        raise invalid("end", "end is before start", end)
    if end - start > timedelta(days=MAX_DAYS):
        raise invalid("end", f"a period spans at most {MAX_DAYS} days", end)
    try:
        result = buckets(group, start, end, ZoneInfo(settings.timezone), settings.shifts)
    except (ValueError, OverflowError) as err:
        raise invalid("start", f"period outside the supported calendar: {err}", start) from err
    if not result:
        raise invalid("group", "no shift is scheduled in this period", group)
    if len(result) > settings.max_buckets:
        # Checked before anything is fetched: a year by hour for every worker was
        # minutes of CPU and a gigabyte of memory to answer a request for ten rows.
        raise invalid(
            "group",
            f"the period has {len(result)} {group} buckets; at most {settings.max_buckets} "
            "per request (choose a coarser group or a shorter period)",
            group,
        )
    return result


def row_bound(data: KpiData, entity: Entity, n_buckets: int) -> int:
    """Most rows ``compute_kpis`` can return for ``data``: entities seen x buckets."""
    keys = ENTITY_KEYS[entity]
    seen: set[tuple[Any, ...]] = set()
    for df in (data.units, data.work):
        if not df.empty:
            seen.update(df[keys].drop_duplicates().itertuples(index=False, name=None))
    return len(seen) * n_buckets


def compute_rows(
    data: KpiData, settings: Settings, bucket_list: list[Bucket], group: Group, entity: Entity
) -> list[dict[str, Any]]:
    """Bound check, then the pandas work: called in a worker thread, off the event loop.

    Every caller of ``compute_kpis`` on request data (KPIs, scores, progress) goes through
    here, so ``settings.max_rows`` bounds them all.
    """
    bound = row_bound(data, entity, len(bucket_list))
    if bound > settings.max_rows:
        raise invalid(
            "group",
            f"the request would compute up to {bound} rows; at most {settings.max_rows} "
            "(narrow the filters, choose a coarser group or a shorter period)",
            group,
        )
    rows = compute_kpis(
        data.units, data.work, data.down, bucket_list, group, entity, settings.standards,
        data.serials,
    )  # fmt: skip
    return annotated(data, rows, bucket_list, group, entity)  # the cases that changed a row


@dataclass
class KpiQuery:
    start: date
    end: date
    group: Group = "period"
    entity: Entity = "worker"
    sites: list[str] | None = None
    lines: list[str] | None = None
    stations: list[str] | None = None
    workers: list[str] | None = None
    fpy: bool = False


async def resolve_workers(
    reader: InfluxReader, settings: Settings, shown: list[str] | None, lines: frozenset[str] | None
) -> frozenset[str] | None:
    """Shown ids → real ids (pseudonyms resolved); unknown pseudonyms match nobody."""
    if not shown:
        return None
    pseudo = pseudonymiser(settings)
    if not pseudo.enabled:
        return frozenset(shown)
    known = await known_workers(reader, Filters(lines=lines))
    return frozenset(r for r in (pseudo.resolve(s, known) for s in shown) if r is not None)


async def run_kpis(
    reader: InfluxReader, settings: Settings, principal: Principal, q: KpiQuery
) -> tuple[list[dict[str, Any]], str, list[Bucket]]:
    lines = scoped_lines(principal, q.lines)
    bucket_list = period_buckets(settings, q.group, q.start, q.end)
    try:
        workers = await resolve_workers(reader, settings, q.workers, lines)
        filters = Filters(
            sites=frozenset(q.sites) if q.sites else None,
            lines=lines,
            stations=frozenset(q.stations) if q.stations else None,
            workers=workers,
        )
        if workers is not None and not workers:
            return [], "none", bucket_list
        data = await fetch(reader, bucket_list, q.group, filters, with_serials=q.fpy)
    except InfluxError as err:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(err)) from err
    # pandas holds the event loop for seconds on big periods; in a thread, /healthz and
    # the alert engine (same loop) keep answering meanwhile.
    rows = await asyncio.to_thread(compute_rows, data, settings, bucket_list, q.group, q.entity)
    pseudo = pseudonymiser(settings)
    if pseudo.enabled and q.entity == "worker":
        for row in rows:
            row["worker"] = pseudo(row["worker"])
        rows.sort(key=lambda r: (r["worker"], r["start"]))
    return rows, data.source, bucket_list
