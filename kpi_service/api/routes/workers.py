"""One worker: KPI trend over a period, and the evidence behind the figures."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status

from kpi_service.api.deps import InfluxDep, KpiReader, SettingsDep
from kpi_service.api.models import DataQuality, EvidencePage, KpiPage, KpiRow, NameList
from kpi_service.api.queries import KpiQuery, resolve_workers, run_kpis, scoped_lines
from kpi_service.influx import InfluxError
from kpi_service.kpi.calendar import Group
from kpi_service.kpi.metrics import FORMULAS, METRICS, Sums, fmt
from kpi_service.kpi.repository import Filters, evidence, unobserved

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
    measurement: Literal["units", "work", "downtime", "gaps"] = "units",
    line: NameList = None,
    station: NameList = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> EvidencePage:
    limit = min(limit, settings.max_evidence_rows)
    q = KpiQuery(start, end, "period", "worker", None, line, station, [worker_id], True)
    rows, _, bucket_list = await run_kpis(reader, settings, principal, q)
    lines = scoped_lines(principal, line)
    try:
        real = await resolve_workers(reader, settings, [worker_id], lines)
        events: list[dict[str, Any]] = []
        total = 0
        blind_s, spans = 0.0, 0
        if real:
            filters = Filters(lines=lines, stations=frozenset(station) if station else None)
            span = (bucket_list[0].start_ns, bucket_list[-1].end_ns)
            events, total = await evidence(
                reader, measurement, next(iter(real)), *span, filters, limit, offset
            )
            blind_s, spans = await unobserved(reader, next(iter(real)), *span, filters)
    except InfluxError as err:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(err)) from err
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
