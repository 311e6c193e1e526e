"""Cases of the review loop: file (a worker for themselves, a supervisor for its lines),
list and read (the filer's worker, the line's supervisors, HR), decide (a supervisor of
the line other than the filer). What an approved case does to the figures:
``kpi_service.kpi.cases``; the loop from each side: docs/review-loop.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel

from kpi_service.api.deps import AuditDep, InfluxDep, Principal, SettingsDep, audited
from kpi_service.api.models import NameList
from kpi_service.api.queries import invalid, pseudonymiser, resolve_workers, scoped_lines
from kpi_service.core.audit import AuditLog
from kpi_service.core.config import Settings
from kpi_service.influx import InfluxError, InfluxReader, quote_str
from kpi_service.scores.cases import Case, CaseBook, CaseConflict, CaseIn, DecisionIn

router = APIRouter(tags=["cases"], responses={404: {"description": "No such case (for you)."}})

Filer = Annotated[Principal, Depends(audited("self", "supervisor"))]
Reader = Annotated[Principal, Depends(audited("self", "supervisor", "hr:read"))]
Decider = Annotated[Principal, Depends(audited("supervisor"))]
CasePath = Annotated[int, Path(ge=1, le=2**62, description="Case id.")]


def get_cases(request: Request) -> CaseBook:
    return cast(CaseBook, request.app.state.cases)


CasesDep = Annotated[CaseBook, Depends(get_cases)]


class CaseOut(BaseModel):
    id: int
    kind: str
    effect: Literal["excuse", "reattribute"]
    worker: str
    to_worker: str | None
    line: str
    station: str
    start: datetime
    end: datetime
    text: str
    evidence: str
    status: Literal["open", "approved", "rejected"]
    filed_at: datetime
    filed_by: str
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None


def _out(c: Case, settings: Settings, principal: Principal) -> CaseOut:
    """Worker ids as the caller knows them (a worker's own key: the real one)."""
    shown = pseudonymiser(settings)
    name = (lambda w: w) if principal.has("self") or not shown.enabled else shown
    body: dict[str, Any] = {k: getattr(c, k) for k in CaseOut.model_fields}
    body["worker"] = name(c.worker)
    body["to_worker"] = name(c.to_worker) if c.to_worker else None
    return CaseOut(**body)


def _visible(principal: Principal, case: Case) -> bool:
    if principal.has("self"):
        return case.worker == principal.worker and principal.may_see_line(case.line)
    if principal.has("hr:read"):
        return True
    return principal.has("supervisor") and principal.may_see_line(case.line)


def _record(audit: AuditLog, principal: Principal, case: Case, step: str) -> None:
    """The case's own audit entry: what was filed or decided (the request's entry, written
    by the middleware, has only the path and status)."""
    pairs = [("kind", case.kind), ("effect", case.effect), ("worker", case.worker),
             ("to_worker", case.to_worker or ""), ("line", case.line),
             ("station", case.station), ("start", case.start.isoformat()),
             ("end", case.end.isoformat()), ("status", case.status)]  # fmt: skip
    if case.decision_reason:
        pairs.append(("reason", case.decision_reason))
    audit.record(principal.name, "CASE", f"/cases/{case.id}/{step}", pairs, 200)


async def _real_worker(reader: InfluxReader, settings: Settings, shown: str, line: str) -> str:
    if not pseudonymiser(settings).enabled:
        return shown
    found = await resolve_workers(reader, settings, [shown], frozenset({line}))
    if not found:
        raise invalid("worker", f"no worker {shown!r} on line {line}", shown)
    return next(iter(found))


async def _check_station(reader: InfluxReader, line: str, station: str) -> None:
    q = (
        f'SHOW TAG VALUES FROM {reader.source("work")} WITH KEY = "station" '
        f'WHERE "line" = {quote_str(line)}'
    )
    (series,) = await reader.query(q)
    known = {str(row[1]) for s in series for row in s["values"]}
    if station not in known:
        raise invalid(
            "station", f"no station {station!r} on line {line!r} has recorded work", station
        )


@router.post(
    "/cases",
    summary="File a case: a worker for themselves, a supervisor for its lines",
    status_code=status.HTTP_201_CREATED,
)
async def file_case(
    body: CaseIn,
    principal: Filer,
    cases: CasesDep,
    settings: SettingsDep,
    reader: InfluxDep,
    audit: AuditDep,
) -> CaseOut:
    if principal.has("self"):
        assert principal.worker is not None
        if body.worker is not None and body.worker != principal.worker:
            raise HTTPException(403, "a worker's own key files cases about that worker only")
        worker = principal.worker
    else:
        if body.worker is None:
            raise invalid("worker", "a supervisor names the worker the case is about", None)
        worker = body.worker
    if not principal.may_see_line(body.line):
        raise HTTPException(403, f"line {body.line!r} is not one this key may file cases for")
    if body.end > datetime.now(UTC):
        raise invalid("end", "the span has not ended yet: a case is about what happened", body.end)
    try:
        await _check_station(reader, body.line, body.station)
        if not principal.has("self"):
            worker = await _real_worker(reader, settings, worker, body.line)
        to_worker = body.to_worker
        if to_worker is not None:
            to_worker = await _real_worker(reader, settings, to_worker, body.line)
    except InfluxError as err:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(err)) from err
    if to_worker == worker:
        raise invalid("to_worker", "to_worker is the worker the case is about", to_worker)
    body = body.model_copy(update={"to_worker": to_worker})

    def write() -> Case:
        case = cases.file(body, worker, principal.name)
        _record(audit, principal, case, "filed")
        return case

    return _out(await anyio.to_thread.run_sync(write), settings, principal)


@router.get("/cases", summary="Cases the caller may see (own, its lines', or all for HR)")
async def list_cases(
    principal: Reader,
    cases: CasesDep,
    settings: SettingsDep,
    case_status: Annotated[
        Literal["open", "approved", "rejected"] | None, Query(alias="status")
    ] = None,
    line: NameList = None,
) -> list[CaseOut]:
    worker = principal.worker if principal.has("self") else None
    lines = scoped_lines(principal, line)  # 403 for a line the caller may not see
    found = await anyio.to_thread.run_sync(
        lambda: cases.query(lines=lines, worker=worker, status=case_status)
    )
    return [_out(c, settings, principal) for c in found if _visible(principal, c)]


async def _visible_case(cases: CaseBook, case_id: int, principal: Principal) -> Case:
    case = await anyio.to_thread.run_sync(cases.get, case_id)
    if case is None or not _visible(principal, case):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case {case_id}")
    return case


@router.get("/cases/{case_id}", summary="One case (the filer's worker, its line, HR)")
async def read_case(
    case_id: CasePath, principal: Reader, cases: CasesDep, settings: SettingsDep
) -> CaseOut:
    return _out(await _visible_case(cases, case_id, principal), settings, principal)


@router.post(
    "/cases/{case_id}/decision",
    summary="Approve or reject an open case (a supervisor of its line, not the filer)",
    responses={409: {"description": "Decided already, or overlaps an approved case."}},
)
async def decide_case(
    case_id: CasePath,
    body: DecisionIn,
    principal: Decider,
    cases: CasesDep,
    settings: SettingsDep,
    audit: AuditDep,
) -> CaseOut:
    case = await _visible_case(cases, case_id, principal)
    if case.filed_by == principal.name:
        raise HTTPException(403, "the filer of a case cannot decide it: another supervisor does")

    def write() -> Case:
        done = cases.decide(case_id, body.decision == "approve", body.reason, principal.name)
        _record(audit, principal, done, done.status)
        return done

    try:
        decided = await anyio.to_thread.run_sync(write)
    except CaseConflict as err:
        raise HTTPException(409, str(err)) from err
    return _out(decided, settings, principal)
