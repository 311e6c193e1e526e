"""``/api/v1``: one router per resource in ``routes/``."""

from __future__ import annotations

from fastapi import APIRouter

from kpi_service.api.routes import me

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(me.router)
