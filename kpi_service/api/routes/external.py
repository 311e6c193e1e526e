"""External metrics from QMS, CRM, MES or review tools (scope ``ingest``), and reading them.

A batch is checked whole before anything is stored: every metric must be declared as an
external metric by some scheme and every worker must be known from line data; errors
name the value's index. Idempotent on (source, reference).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError

from kpi_service.api.deps import InfluxDep, Principal, SettingsDep, audited
from kpi_service.api.models import NameList
from kpi_service.api.queries import pseudonymiser, resolve_workers
from kpi_service.api.score_models import ExternalBatch, ExternalResult
from kpi_service.api.stores import ExternalDep, RegistryDep
from kpi_service.influx import InfluxError
from kpi_service.kpi.repository import Filters, known_workers
from kpi_service.scores.external import DuplicateReference

router = APIRouter(tags=["external-metrics"])


@router.post(
    "/external-metrics",
    summary="Store values from other systems (scope ingest); idempotent on (source, reference)",
    responses={409: {"description": "A (source, reference) already holds other content."}},
)
async def post_external(
    batch: ExternalBatch,
    principal: Annotated[Principal, Depends(audited("ingest"))],
    reader: InfluxDep,
    registry: RegistryDep,
    store: ExternalDep,
) -> ExternalResult:
    declared = await anyio.to_thread.run_sync(registry.declared_externals)
    try:
        workers = set(await known_workers(reader, Filters()))
    except InfluxError as err:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(err)) from err
    errors: list[dict[str, Any]] = []
    for i, v in enumerate(batch.values):
        if v.metric not in declared:
            known = ", ".join(sorted(declared)) or "none"
            errors.append(_error(i, "metric", f"no scheme declares external metric "
                                 f"{v.metric!r} (declared: {known})", v.metric))  # fmt: skip
        if v.worker not in workers:
            errors.append(_error(i, "worker", f"unknown worker {v.worker!r}", v.worker))
    if errors:
        raise RequestValidationError(errors)
    try:
        outcomes = await anyio.to_thread.run_sync(store.add, batch.values, principal.name)
    except DuplicateReference as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from err
    return ExternalResult(
        stored=outcomes.count("stored"), unchanged=outcomes.count("unchanged"), outcomes=outcomes
    )


def _error(index: int, field: str, message: str, value: str) -> dict[str, Any]:
    return {
        "type": "value_error",
        "loc": ("body", "values", index, field),
        "msg": message,
        "input": value,
    }


@router.get("/external-metrics", summary="Stored external values with their provenance (HR)")
async def list_external(
    _: Annotated[Principal, Depends(audited("hr:read"))],
    settings: SettingsDep,
    reader: InfluxDep,
    store: ExternalDep,
    metric: NameList,
    start: date,
    end: date,
    worker: NameList = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    if not metric:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("query", "metric"), "msg": "name a metric", "input": None}]
        )
    # Shown ids in, shown ids out: with pseudonymisation on, ``worker=`` takes pseudonyms
    # (real ids match nobody) and every value carries its worker's pseudonym, as in /kpis.
    try:
        workers = await resolve_workers(reader, settings, worker, None)
    except InfluxError as err:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(err)) from err
    if workers is not None and not workers:
        return []
    values = await anyio.to_thread.run_sync(
        store.values, set(metric), start, end, set(workers) if workers is not None else None, limit
    )
    pseudo = pseudonymiser(settings)
    return [
        {**vars(v), "worker": pseudo(v.worker), "period_start": v.period_start.isoformat(),
         "period_end": v.period_end.isoformat(), "received_at": v.received_at.isoformat()}
        for v in values
    ]  # fmt: skip
