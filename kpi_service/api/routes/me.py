"""Who am I: lets a client check its key and see its scopes and lines."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from kpi_service.api.deps import CurrentPrincipal

router = APIRouter(tags=["auth"])


class Me(BaseModel):
    name: str
    scopes: list[str]
    lines: list[str] | None
    worker: str | None = None


@router.get("/me", summary="The calling key's name, scopes and lines")
async def me(principal: CurrentPrincipal) -> Me:
    return Me(
        name=principal.name,
        scopes=sorted(principal.scopes),
        lines=sorted(principal.lines) if principal.lines is not None else None,
        worker=principal.worker,
    )
