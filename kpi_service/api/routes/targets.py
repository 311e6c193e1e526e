"""Targets and progress: set by a supervisor for its own lines or by HR (scope hr:write),
every change kept and audited, the worker's acknowledgement recorded; progress for a
worker or a whole line."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, cast
from zoneinfo import ZoneInfo

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from kpi_service.api.deps import InfluxDep, KpiReader, Principal, SettingsDep, audited
from kpi_service.api.models import NameList, NameParam
from kpi_service.api.queries import scoped_lines
from kpi_service.influx import InfluxError
from kpi_service.scores.progress import contains, progress
from kpi_service.scores.targets import Target, TargetIn, TargetStore, UnknownTarget

router = APIRouter(tags=["targets"])

Setter = Annotated[Principal, Depends(audited("supervisor", "hr:write"))]


def get_targets(request: Request) -> TargetStore:
    return cast(TargetStore, request.app.state.targets)


TargetsDep = Annotated[TargetStore, Depends(get_targets)]


class TargetOut(BaseModel):
    id: int
    kind: str
    subject: str
    line: str
    metric: str
    period: str
    period_start: date
    value: float
    note: str
    set_at: datetime
    set_by: str
    acknowledged_at: datetime | None


class AckIn(BaseModel):
    worker: NameParam = Field(description="The worker acknowledging their own target.")


class ProgressOut(BaseModel):
    target: TargetOut
    period_end: date
    value: float | None = Field(description="The metric so far this period (None: no data).")
    elapsed: float = Field(description="Share of the period's calendar time elapsed, 0..1.")
    projected: float | None = Field(
        description="Counts: value / elapsed; rates and ratios: the value as it stands."
    )
    on_track: bool | None


def _may_manage(principal: Principal, line: str) -> None:
    if principal.has("hr:write") or principal.may_see_line(line):
        return
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        f"line {line!r} is not supervised by this key; a supervisor sets targets "
        "only for its own lines",
    )


def _out(t: Target) -> TargetOut:
    return TargetOut(**vars(t))


@router.post(
    "/targets",
    summary="Set a target (supervisor: own lines; HR: hr:write); a change adds a version",
    status_code=status.HTTP_201_CREATED,
)
def set_target(target: TargetIn, principal: Setter, store: TargetsDep) -> TargetOut:
    _may_manage(principal, target.line)
    return _out(store.set(target, principal.name))


@router.get("/targets", summary="Targets in force (or their whole history)")
def list_targets(
    principal: KpiReader,
    store: TargetsDep,
    line: NameList = None,
    kind: Annotated[str | None, Query(pattern="^(worker|station|line)$")] = None,
    subject: Annotated[str | None, Query(max_length=64)] = None,
    start: date | None = None,
    end: date | None = None,
    history: bool = False,
) -> list[TargetOut]:
    lines = scoped_lines(principal, line)
    found = store.query(lines=lines, kind=kind, subject=subject, first=start, last=end,
                        history=history)  # fmt: skip
    return [_out(t) for t in found]


@router.post(
    "/targets/{target_id}/acknowledgement",
    summary="Record that the worker has seen and acknowledged their target",
    status_code=status.HTTP_201_CREATED,
    responses={404: {"description": "No such target."}, 409: {"description": "Already."}},
)
def acknowledge(
    target_id: Annotated[int, Path(ge=1, le=2**62)],
    body: AckIn,
    principal: Setter,
    store: TargetsDep,
) -> dict[str, Any]:
    try:
        target = store.get(target_id)
    except UnknownTarget as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from err
    _may_manage(principal, target.line)
    try:
        at = store.acknowledge(target_id, body.worker, principal.name)
    except ValueError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from err
    return {"target": target_id, "worker": body.worker, "acknowledged_at": at.isoformat()}


@router.get("/progress", summary="Progress towards the targets of a line (or one worker)")
async def line_progress(
    principal: KpiReader,
    settings: SettingsDep,
    reader: InfluxDep,
    store: TargetsDep,
    line: NameParam,
    worker: Annotated[str | None, Query(max_length=64)] = None,
    at: Annotated[datetime | None, Query(description="As of (default: now).")] = None,
) -> list[ProgressOut]:
    lines = scoped_lines(principal, [line])
    now = at or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    today = now.astimezone(ZoneInfo(settings.timezone)).date()
    found = await anyio.to_thread.run_sync(
        lambda: store.query(lines=lines, kind="worker" if worker else None, subject=worker)
    )
    out = []
    try:
        for t in found:
            if contains(t, today):
                p = await progress(reader, settings, t, now)
                out.append(ProgressOut(target=_out(t), period_end=p.period_end, value=p.value,
                                       elapsed=p.elapsed, projected=p.projected,
                                       on_track=p.on_track))  # fmt: skip
    except InfluxError as err:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(err)) from err
    return out
