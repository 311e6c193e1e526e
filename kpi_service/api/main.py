"""``/api/v1``: one router per resource in ``routes/``."""

from __future__ import annotations

from fastapi import APIRouter

from kpi_service.api.routes import (
    alerts,
    audit,
    calendar,
    closes,
    distribution,
    external,
    kpis,
    me,
    roles,
    schemes,
    scores,
    selfservice,
    targets,
    workers,
)
from kpi_service.board import pairing_routes

api_router = APIRouter(
    prefix="/api/v1",
    responses={
        401: {"description": "Missing or invalid credentials."},
        403: {"description": "The key lacks the scope, or the line is not the caller's."},
        502: {"description": "InfluxDB failed or is unreachable (the answer says why)."},
    },
)
api_router.include_router(me.router)
api_router.include_router(selfservice.router)
api_router.include_router(kpis.router)
api_router.include_router(workers.router)
api_router.include_router(distribution.router)
api_router.include_router(calendar.router)
api_router.include_router(audit.router)
# Before the board's static files (``/board/{name}``), which would shadow it.
api_router.include_router(pairing_routes.router)
api_router.include_router(alerts.router)
api_router.include_router(schemes.router)
api_router.include_router(scores.router)
api_router.include_router(closes.router)
api_router.include_router(external.router)
api_router.include_router(targets.router)
api_router.include_router(roles.router)
