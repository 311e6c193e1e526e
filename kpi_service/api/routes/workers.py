"""One worker: KPI trend over a period, and the evidence behind the figures."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from kpi_service.api.deps import InfluxDep, KpiReader, Principal, SettingsDep
from kpi_service.api.models import DataQuality, EvidencePage, KpiPage, KpiRow, NameList
from kpi_service.api.queries import KpiQuery, resolve_workers, run_kpis, scoped_lines
from kpi_service.core.config import Settings
from kpi_service.influx import InfluxError, InfluxReader
from kpi_service.kpi.calendar import Bucket, Group
from kpi_service.kpi.metrics import FORMULAS, METRICS, Sums, fmt
from kpi_service.kpi.repository import EVIDENCE_FIELDS, Filters, evidence, unobserved

router = APIRouter(tags=["workers"])

WorkerPath = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$",
        max_length=64,
        description="Worker id as the site knows it, or its pseudonym when pseudonymised.",
    ),
]


@router.get("/workers/{worker_id}/kpis", summary="One worker's KPIs and trend")
async def worker_kpis(
    worker_id: WorkerPath,
    principal: KpiReader,
    settings: SettingsDep,
    reader: InfluxDep,
    start: date,
    end: date,
    group: Group = "day",
    line: NameList = None,
    station: NameList = None,
    fpy: bool = True,
) -> KpiPage:
    q = KpiQuery(start, end, group, "worker", None, line, station, [worker_id], fpy)
    rows, source, _ = await run_kpis(reader, settings, principal, q)
    return KpiPage(
        items=[KpiRow(**r) for r in rows],
        total=len(rows),
        limit=len(rows),
        offset=0,
        source=source,
        timezone=settings.timezone,
        formulas=FORMULAS,
    )


def explain(row: dict[str, Any] | None) -> dict[str, str]:
    """Each metric's formula with the period's numbers substituted, for a human to recompute."""
    if row is None:
        return {"note": "no events for this worker in this period"}
    sums = Sums.of_row(row)
    out = {m.name: m.explain(sums) for m in METRICS.values()}
    out["effective_s"] = f"{fmt(sums.work_s)} - {fmt(sums.down_s)} = {fmt(sums.effective_s)}"
    out["standards"] = (
        "standard_s = sum over good units of the station's standard cycle time "
        "(configuration, see GET /api/v1/kpis formulas)"
    )
    return out


async def _evidence(
    worker_id: str,
    principal: Principal,
    settings: Settings,
    reader: InfluxReader,
    q: KpiQuery,
    measurement: str,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int, list[dict[str, Any]], list[Bucket], float, int]:
    """(events, total, kpi rows, buckets, unobserved seconds, unobserved spans)."""
    rows, _, bucket_list = await run_kpis(reader, settings, principal, q)
    lines = scoped_lines(principal, q.lines)
    try:
        real = await resolve_workers(reader, settings, [worker_id], lines)
        events: list[dict[str, Any]] = []
        total = 0
        blind_s, spans = 0.0, 0
        if real:
            filters = Filters(lines=lines, stations=frozenset(q.stations) if q.stations else None)
            span = (bucket_list[0].start_ns, bucket_list[-1].end_ns)
            events, total = await evidence(
                reader, measurement, next(iter(real)), *span, filters, limit, offset
            )
            blind_s, spans = await unobserved(reader, next(iter(real)), *span, filters)
    except InfluxError as err:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(err)) from err
    return (
        local_times(events, ZoneInfo(settings.timezone)),
        total,
        rows,
        bucket_list,
        blind_s,
        spans,
    )


def local_times(events: list[dict[str, Any]], tz: ZoneInfo) -> list[dict[str, Any]]:
    """Each event's time (and a work interval's start) also as ISO 8601 in the site's time
    zone, to the millisecond; the nanosecond epochs stay for exact matching."""
    for event in events:
        for key, local in (("time", "time_local"), ("start_ns", "start_local")):
            if isinstance(event.get(key), int):
                moment = datetime.fromtimestamp(event[key] / 1e9, tz)
                event[local] = moment.isoformat(timespec="milliseconds")
    return events


Measurement = Literal["units", "work", "downtime", "gaps"]


@router.get(
    "/workers/{worker_id}/evidence",
    summary="The events behind a worker's KPIs for a period, and the formulas applied",
)
async def worker_evidence(
    worker_id: WorkerPath,
    principal: KpiReader,
    settings: SettingsDep,
    reader: InfluxDep,
    start: date,
    end: date,
    measurement: Measurement = "units",
    line: NameList = None,
    station: NameList = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> EvidencePage:
    limit = min(limit, settings.max_evidence_rows)
    q = KpiQuery(start, end, "period", "worker", None, line, station, [worker_id], True)
    events, total, rows, bucket_list, blind_s, spans = await _evidence(
        worker_id, principal, settings, reader, q, measurement, limit, offset
    )
    row = rows[0] if rows else None
    return EvidencePage(
        worker=worker_id,
        measurement=measurement,
        start=bucket_list[0].start,
        end=bucket_list[-1].end,
        kpi=KpiRow(**row) if row else None,
        explained=explain(row),
        events=events,
        total=total,
        limit=limit,
        offset=offset,
        data_quality=DataQuality(
            unobserved_s=round(blind_s, 3),
            unobserved_spans=spans,
            note=(
                f"{blind_s:.0f} s not observed in {spans} span(s): a device could not be read "
                "and could not tell afterwards what happened; units counted when it was read "
                "again may belong to anyone who worked then (measurement=gaps lists them)"
            )
            if spans
            else None,
        ),
    )


FIRST_COLUMNS = ["time_local", "start_local", "site", "line", "station"]


def evidence_csv(events: list[dict[str, Any]], measurement: str) -> str:
    """The events as CSV: local times first, then every field of the measurement."""
    columns = [*FIRST_COLUMNS, "time", *EVIDENCE_FIELDS[measurement]]
    if "start_ns" not in EVIDENCE_FIELDS[measurement]:  # intervals (work, gaps) have a start
        columns.remove("start_local")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(events)
    return out.getvalue()


@router.get(
    "/workers/{worker_id}/evidence/export",
    summary="The same evidence events as a CSV file (site-local ISO times first)",
    responses={200: {"content": {"text/csv": {}}}},
    response_class=Response,
)
async def worker_evidence_csv(
    worker_id: WorkerPath,
    principal: KpiReader,
    settings: SettingsDep,
    reader: InfluxDep,
    start: date,
    end: date,
    measurement: Measurement = "units",
    line: NameList = None,
    station: NameList = None,
) -> Response:
    q = KpiQuery(start, end, "period", "worker", None, line, station, [worker_id], False)
    limit = settings.max_evidence_rows
    events, total, *_ = await _evidence(
        worker_id, principal, settings, reader, q, measurement, limit, 0
    )
    name = f"takt-evidence-{worker_id}-{measurement}-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(
        evidence_csv(events, measurement),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            # More events than one file holds: the caller narrows the period or pages the JSON.
            "X-Total-Count": str(total),
            "X-Truncated": "true" if total > len(events) else "false",
        },
    )
