"""Period close per scheme: freeze (HR), read with pending deltas, re-open (admin), export.

A closed period's scores are what payroll was computed from; the scores endpoints return
the snapshot for it. Late data is shown here as a pending delta per worker and applied
only by re-opening (an admin, with a reason, audited) and closing again.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from kpi_service.api.deps import KpiReader, Principal, SettingsDep, audited
from kpi_service.api.queries import pseudonymiser
from kpi_service.api.routes.schemes import SchemePath
from kpi_service.api.routes.scores import MEDIA, stream
from kpi_service.api.stores import ClosesDep, RegistryDep, ScoringDep
from kpi_service.scores.closing import CloseConflict, Closure, deltas
from kpi_service.scores.model import SchemeVersion
from kpi_service.scores.service import ScoreRun, check_scope
from kpi_service.store.db import utcnow

router = APIRouter(tags=["period close"], responses={404: {"description": "No such scheme."}})

DayPath = Annotated[date, Path(description="First local day of the period (month: the 1st).")]


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period_start: date = Field(description="First local day of the period to close.")


class ReopenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=10, max_length=2000, description="Why (kept with the close).")


class CloseOut(BaseModel):
    scheme: str
    period: str
    first_day: date
    last_day: date
    version: int
    workers: int
    content_hash: str = Field(description="SHA-256 of the canonical snapshot text.")
    closed_at: datetime
    closed_by: str
    reopened_at: datetime | None
    reopened_by: str | None
    reopen_reason: str | None


class CloseDetail(CloseOut):
    pending: list[dict[str, Any]] = Field(
        description="Per worker, what the data says now that differs from the snapshot "
        "(late data, approved corrections): never applied to a closed period silently."
    )


def out(c: Closure) -> CloseOut:
    return CloseOut(**{k: getattr(c, k) for k in CloseOut.model_fields})


def period_days(kind: str, first: date) -> tuple[date, date]:
    """The whole period starting on ``first`` (a close never covers part of a period)."""
    if kind == "month":
        if first.day != 1:
            raise HTTPException(422, "a monthly period starts on the 1st")
        return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])
    if kind == "week":
        if first.weekday() != 0:
            raise HTTPException(422, "a weekly period starts on a Monday")
        return first, first + timedelta(days=6)
    raise HTTPException(422, f"closing is per month or week; this scheme is scored per {kind}")


async def _versions(registry: Any, scheme: str, principal: Principal) -> list[SchemeVersion]:
    versions: list[SchemeVersion] = await anyio.to_thread.run_sync(registry.versions, scheme)
    if not versions:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no scheme named {scheme!r}")
    check_scope(principal, versions)
    return versions


@router.post(
    "/schemes/{scheme}/closes",
    summary="Close a period (HR): freeze its scores as a snapshot with a content hash",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "Already closed, or the period has not ended."}},
)
async def close_period(
    scheme: SchemePath,
    body: CloseIn,
    principal: Annotated[Principal, Depends(audited("hr:write"))],
    scoring: ScoringDep,
) -> CloseOut:
    registry, closes = scoring.registry, scoring.closes
    versions = await _versions(registry, scheme, principal)
    first, last = period_days(versions[-1].spec.period, body.period_start)
    version = registry.in_force(versions, first)
    if version is None:
        raise HTTPException(422, f"no version of {scheme!r} is in force on {first}")
    # Live (no closes passed): the snapshot is what the data says now.
    run = await scoring.run(principal, scheme, first, last, live=True, raw_ids=True)
    bucket = run.periods[0][0]
    if bucket.end > utcnow():
        raise HTTPException(409, f"the period {bucket.label} has not ended yet ({bucket.end})")
    scores = run.scores
    try:
        closure = await anyio.to_thread.run_sync(
            lambda: closes.close(
                scheme, bucket.label, first, last, version.version, scores, principal.name
            )
        )
    except CloseConflict as err:
        raise HTTPException(409, str(err)) from err
    return out(closure)


@router.get("/schemes/{scheme}/closes", summary="Every close of a scheme, re-opened ones too")
async def list_closes(
    scheme: SchemePath, principal: KpiReader, registry: RegistryDep, closes: ClosesDep
) -> list[CloseOut]:
    await _versions(registry, scheme, principal)
    return [out(c) for c in await anyio.to_thread.run_sync(closes.history, scheme)]


async def _closed(
    scheme: str, first: date, principal: Principal, registry: Any, closes: ClosesDep
) -> tuple[Closure, list[SchemeVersion]]:
    versions = await _versions(registry, scheme, principal)
    period_days(versions[-1].spec.period, first)
    for c in await anyio.to_thread.run_sync(closes.history, scheme):
        if c.first_day == first and c.open:
            return c, versions
    raise HTTPException(status.HTTP_404_NOT_FOUND, f"{scheme}: the period from {first} is open")


@router.get(
    "/schemes/{scheme}/closes/{period_start}",
    summary="A closed period with the pending deltas (live data differing from the snapshot)",
)
async def read_close(
    scheme: SchemePath,
    period_start: DayPath,
    principal: KpiReader,
    scoring: ScoringDep,
) -> CloseDetail:
    closure, _ = await _closed(scheme, period_start, principal, scoring.registry, scoring.closes)
    live = await scoring.run(principal, scheme, closure.first_day, closure.last_day, live=True)
    frozen = closure.scores()
    pseudo = pseudonymiser(scoring.settings)
    if pseudo.enabled:
        for s in frozen:
            s.worker = pseudo(s.worker)
    return CloseDetail(**out(closure).model_dump(), pending=deltas(frozen, live.scores))


@router.post(
    "/schemes/{scheme}/closes/{period_start}/reopen",
    summary="Re-open a closed period (admin, with a reason); the close stays in the history",
)
async def reopen_period(
    scheme: SchemePath,
    period_start: DayPath,
    body: ReopenIn,
    principal: Annotated[Principal, Depends(audited("admin"))],
    registry: RegistryDep,
    closes: ClosesDep,
) -> CloseOut:
    closure, _ = await _closed(scheme, period_start, principal, registry, closes)
    try:
        done = await anyio.to_thread.run_sync(
            lambda: closes.reopen(scheme, closure.period, principal.name, body.reason)
        )
    except CloseConflict as err:
        raise HTTPException(409, str(err)) from err
    return out(done)


@router.get(
    "/schemes/{scheme}/closes/{period_start}/export",
    summary="A closed period's frozen scores for payroll (CSV or XLSX), with the hash",
    responses={200: {"content": {m: {} for m in MEDIA.values()}}},
    response_class=StreamingResponse,
)
async def export_close(
    scheme: SchemePath,
    period_start: DayPath,
    principal: KpiReader,
    settings: SettingsDep,
    registry: RegistryDep,
    closes: ClosesDep,
    format: Annotated[Literal["csv", "xlsx"], Query()] = "csv",
) -> StreamingResponse:
    closure, versions = await _closed(scheme, period_start, principal, registry, closes)
    scores = closure.scores()
    pseudo = pseudonymiser(settings)
    if pseudo.enabled:
        for s in scores:
            s.worker = pseudo(s.worker)
    in_force = [v for v in versions if v.version == closure.version]
    run = ScoreRun(scheme, scores, {v.version: v for v in in_force}, [])
    name = f"takt-close-{scheme}-{closure.period}-{closure.content_hash[:12]}.{format}"
    return StreamingResponse(
        stream(run, format, ZoneInfo(settings.timezone)),
        media_type=MEDIA[format],
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Takt-Content-Hash": closure.content_hash,
        },
    )
