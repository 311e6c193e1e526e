"""Read the audit log (admin only; the API offers no way to change it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from kpi_service.api.deps import AuditDep, audited
from kpi_service.api.models import AuditOut
from kpi_service.core.apikeys import Principal

router = APIRouter(tags=["audit"])


@router.get("/audit", summary="Audit entries after an id (append-only; admin)")
async def read_audit(
    _: Annotated[Principal, Depends(audited("admin"))],
    audit: AuditDep,
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    principal: Annotated[str | None, Query(max_length=128, description="Only this caller.")] = None,
) -> list[AuditOut]:
    entries = audit.entries(after_id=after_id, limit=limit, principal=principal)
    return [AuditOut(**vars(e)) for e in entries]
