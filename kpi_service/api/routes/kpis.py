"""KPIs for many entities: paginated list and CSV/XLSX export (same filters).

Exports are streamed: CSV in chunks formatted in worker threads, XLSX written to a
temporary file in a thread and sent from it, so neither a big file in memory nor
formatting on the event loop (which also runs /healthz and the alert engine).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import IO, Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter
from starlette.concurrency import iterate_in_threadpool

from kpi_service.api.deps import InfluxDep, KpiReader, SettingsDep
from kpi_service.api.models import KpiPage, KpiRow, NameList
from kpi_service.api.queries import KpiQuery, run_kpis
from kpi_service.api.xlsx import Chart, kpi_columns, write_book
from kpi_service.kpi.calendar import Group
from kpi_service.kpi.compute import Entity
from kpi_service.kpi.metrics import FORMULAS

router = APIRouter(tags=["kpis"])

StartQ = Annotated[
    date, Query(description="First local day of the period.", examples=["2026-03-14"])
]
EndQ = Annotated[date, Query(description="Last local day (inclusive).", examples=["2026-03-14"])]
GroupQ = Annotated[Group, Query(description="Calendar buckets in the site's time zone.")]
EntityQ = Annotated[Entity, Query(description="Whose KPIs: worker, station, line or site.")]


def _query(
    start: date, end: date, group: Group, entity: Entity, site: list[str] | None,
    line: list[str] | None, station: list[str] | None, worker: list[str] | None, fpy: bool,
) -> KpiQuery:  # fmt: skip
    return KpiQuery(start, end, group, entity, site, line, station, worker, fpy)


@router.get(
    "/kpis",
    summary="KPIs per worker (or station, line, site) with filters and pagination",
    response_model=KpiPage,
)
async def list_kpis(
    principal: KpiReader,
    settings: SettingsDep,
    reader: InfluxDep,
    start: StartQ,
    end: EndQ,
    group: GroupQ = "period",
    entity: EntityQ = "worker",
    site: NameList = None,
    line: NameList = None,
    station: NameList = None,
    worker: NameList = None,
    fpy: Annotated[
        bool, Query(description="Also compute first pass yield (reads raw serials).")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> KpiPage:
    limit = min(limit, settings.max_page_size)
    q = _query(start, end, group, entity, site, line, station, worker, fpy)
    rows, source, _ = await run_kpis(reader, settings, principal, q)
    return KpiPage(
        items=ROWS.validate_python(rows[offset : offset + limit]),
        total=len(rows),
        limit=limit,
        offset=offset,
        source=source,
        timezone=settings.timezone,
        formulas=FORMULAS,
    )


ROWS = TypeAdapter(list[KpiRow])
"""One validation call for a page of rows (no Python call per row)."""


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: json.dumps(v, sort_keys=True)
        if isinstance(v, dict | list)
        else v.isoformat()
        if isinstance(v, date)
        else v
        for k, v in KpiRow(**row).model_dump().items()
    }


CHUNK_ROWS = 500
"""Rows formatted per step of a CSV export (each step runs in a worker thread)."""
CHUNK_BYTES = 256 * 1024


def csv_chunks(rows: list[dict[str, Any]]) -> Iterator[bytes]:
    """The CSV file in pieces, so a big export never sits whole in memory."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(KpiRow.model_fields))
    writer.writeheader()
    for i, row in enumerate(rows, 1):
        writer.writerow(_flat(row))
        if i % CHUNK_ROWS == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


def to_csv(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(csv_chunks(rows))


def write_xlsx(rows: list[dict[str, Any]], target: IO[bytes], tz: ZoneInfo, entity: str) -> None:
    """The HR workbook (``api.xlsx``): typed, hours, percentages, Definitions, a chart."""
    write_book(
        target, "KPIs", kpi_columns(rows), rows, tz,
        notes=[("Time zone", f"Times are local to the site ({tz.key}).")],
        chart=Chart(f"% of standard by {entity}", "% of standard", entity),
    )  # fmt: skip


async def xlsx_stream(
    rows: list[dict[str, Any]], tz: ZoneInfo, entity: str
) -> AsyncIterator[bytes]:
    """Written to a temporary file in a thread (a workbook is a zip), then streamed from it."""
    with tempfile.TemporaryFile() as spool:
        await asyncio.to_thread(write_xlsx, rows, spool, tz, entity)
        await asyncio.to_thread(spool.seek, 0)
        while chunk := await asyncio.to_thread(spool.read, CHUNK_BYTES):
            yield chunk


MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.get(
    "/kpis/export",
    summary="The same KPIs as a CSV or XLSX file (all rows, no pagination)",
    responses={200: {"content": {m: {} for m in MEDIA.values()}}},
    response_class=StreamingResponse,
)
async def export_kpis(
    principal: KpiReader,
    settings: SettingsDep,
    reader: InfluxDep,
    start: StartQ,
    end: EndQ,
    format: Annotated[Literal["csv", "xlsx"], Query()] = "csv",
    group: GroupQ = "period",
    entity: EntityQ = "worker",
    site: NameList = None,
    line: NameList = None,
    station: NameList = None,
    worker: NameList = None,
    fpy: bool = False,
) -> StreamingResponse:
    q = _query(start, end, group, entity, site, line, station, worker, fpy)
    rows, _, _ = await run_kpis(reader, settings, principal, q)
    tz = ZoneInfo(settings.timezone)
    body = (
        iterate_in_threadpool(csv_chunks(rows))
        if format == "csv"
        else xlsx_stream(rows, tz, entity)
    )
    name = f"takt-kpis-{entity}-{group}-{start.isoformat()}-{end.isoformat()}.{format}"
    return StreamingResponse(
        body,
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
