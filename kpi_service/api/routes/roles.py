"""Workers' roles (HR): record a role from a day on, read a worker's history, list who
holds which role on a day. Schemes may apply to roles (``applies_to.roles``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel

from kpi_service.api.deps import Principal, audited
from kpi_service.api.routes.workers import WorkerPath
from kpi_service.api.stores import RolesDep
from kpi_service.scores.roles import Role, RoleIn

router = APIRouter(tags=["roles"])

HrWriter = Annotated[Principal, Depends(audited("hr:write"))]
HrReader = Annotated[Principal, Depends(audited("hr:read"))]


class RoleOut(BaseModel):
    worker: str
    role: str
    effective_from: date
    note: str
    set_by: str


def out(r: Role) -> RoleOut:
    return RoleOut(worker=r.worker, role=r.role, effective_from=r.effective_from, note=r.note,
                   set_by=r.set_by)  # fmt: skip


@router.post(
    "/workers/{worker_id}/roles",
    summary="Record a worker's role from a day on (HR); earlier days keep their role",
    status_code=status.HTTP_201_CREATED,
)
async def assign_role(
    worker_id: WorkerPath, body: RoleIn, principal: HrWriter, roles: RolesDep
) -> RoleOut:
    return out(await anyio.to_thread.run_sync(roles.assign, worker_id, body, principal.name))


@router.get("/workers/{worker_id}/roles", summary="A worker's roles over time (HR)")
async def role_history(
    worker_id: WorkerPath, principal: HrReader, roles: RolesDep
) -> list[RoleOut]:
    return [out(r) for r in await anyio.to_thread.run_sync(roles.history, worker_id)]


@router.get("/roles", summary="Who holds which role on a day (HR)")
async def roles_on(
    principal: HrReader,
    roles: RolesDep,
    at: Annotated[date, Query(description="The local day.")],
) -> dict[str, str]:
    return await anyio.to_thread.run_sync(roles.in_force, at)
