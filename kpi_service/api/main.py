"""``/api/v1``: one router per resource in ``routes/``."""

from __future__ import annotations

from fastapi import APIRouter

from kpi_service.api.routes import audit, calendar, distribution, kpis, me, workers

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(me.router)
api_router.include_router(kpis.router)
api_router.include_router(workers.router)
api_router.include_router(distribution.router)
api_router.include_router(calendar.router)
api_router.include_router(audit.router)
