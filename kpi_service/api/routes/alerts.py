"""``/api/v1/alerts``: list, inspect and acknowledge alerts, live stream, rules (admin).

The router carries the engine's lifespan, so mounting it is the only wiring the app
needs. Supervisors see and acknowledge only the alerts of their lines; every read of
worker-level data is audited like any KPI read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, cast
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from kpi_service.alerts import live
from kpi_service.alerts.config import AlertSettings
from kpi_service.alerts.display import alert_view
from kpi_service.alerts.model import Alert, Transition
from kpi_service.alerts.rules import RulesError, RuleSet
from kpi_service.alerts.service import AlertService, Conflict, NotFound
from kpi_service.api.deps import Principal, audited, require_scopes
from kpi_service.board.routes import router as board_router


@asynccontextmanager
async def alerts_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the engine when ``TAKT_ALERTS_ENABLED`` (or ``app.state.alert_settings``) says so."""
    settings = getattr(app.state, "alert_settings", None) or AlertSettings()
    app.state.alert_settings = settings
    if not settings.enabled:
        app.state.alerts = None
        yield
        return
    kpi = app.state.settings
    influx = settings.influx_for(kpi.influx)
    async with AlertService(settings, influx=influx, standards=kpi.standards) as service:
        app.state.alerts = service
        try:
            yield
        finally:
            app.state.alerts = None


def get_service(request: Request) -> AlertService:
    service = getattr(request.app.state, "alerts", None)
    if service is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "alerts are not enabled")
    return cast(AlertService, service)


Service = Annotated[AlertService, Depends(get_service)]
Supervisor = Annotated[Principal, Depends(audited("supervisor", "board"))]
"""A supervisor, or a board key (a paired tablet or wall screen), confined to its lines."""
Admin = Annotated[Principal, Depends(require_scopes("admin"))]

router = APIRouter(lifespan=alerts_lifespan)
alerts = APIRouter(prefix="/alerts", tags=["alerts"])


class AlertDetail(BaseModel):
    alert: Alert
    transitions: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]


def _visible(principal: Principal, alert: Alert | None, alert_id: str) -> Alert:
    if alert is None or not principal.may_see_line(alert.line):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
    return alert


@alerts.get("", summary="Alerts, newest first (supervisors: their lines)")
async def list_alerts(
    principal: Supervisor,
    service: Service,
    state: Annotated[
        Literal["open", "active", "acknowledged", "cleared"] | None,
        Query(alias="status", description="'open' = active or acknowledged"),
    ] = None,
    line: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[Alert]:
    lines = principal.lines
    if line is not None:
        lines = frozenset({line}) & lines if lines is not None else frozenset({line})
    return service.store.find(status=state, lines=lines, limit=limit, offset=offset)


def _snapshot(request: Request, service: AlertService, principal: Principal) -> dict[str, Any]:
    return live.snapshot(
        service.engine,
        service.clock(),
        service.settings.board_window_minutes,
        principal.may_see_line,
        tz=_zone(request),
        stale_after_s=service.settings.board_stale_after_s,
    )


def _zone(request: Request) -> ZoneInfo:
    """The site's time zone (the KPI settings'): the board shows line time in it."""
    return ZoneInfo(request.app.state.settings.timezone)


@alerts.get("/live", summary="Live figures of the visible lines and their open alerts")
async def live_board(principal: Supervisor, service: Service, request: Request) -> dict[str, Any]:
    return _snapshot(request, service, principal)


@alerts.get(
    "/stream",
    summary="Server-sent events: `snapshot` every few seconds, `transition` as they happen",
    response_class=StreamingResponse,
)
async def stream(
    principal: Supervisor,
    service: Service,
    request: Request,
    snapshot_every_s: Annotated[float, Query(ge=0.5, le=60)] = 2.0,
) -> StreamingResponse:
    zone = _zone(request)

    def snapshot() -> str:
        data = _snapshot(request, service, principal)
        return f"event: snapshot\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

    def shown(transition: Transition) -> str:
        """A transition with the alert as the board shows it (rule window, line time)."""
        alert = transition.alert
        data = {
            **transition.model_dump(mode="json"),
            "alert": alert_view(alert, service.rules.rule(alert.rule_id), zone),
        }
        return f"event: transition\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

    async def events() -> AsyncIterator[str]:
        async with service.hub.subscribe() as queue:
            yield snapshot()
            while True:
                try:
                    transition = await asyncio.wait_for(queue.get(), timeout=snapshot_every_s)
                except TimeoutError:
                    yield snapshot()
                    continue
                if transition is None:
                    yield "event: overflow\ndata: {}\n\n"
                    return
                if principal.may_see_line(transition.alert.line):
                    yield shown(transition)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@alerts.get("/rules", summary="The rule set in force (admin)")
async def get_rules(_: Admin, service: Service) -> RuleSet:
    return service.rules


@alerts.put("/rules", summary="Replace the rule set; saved to the rules file (admin)")
async def put_rules(_: Admin, service: Service, rules: RuleSet) -> RuleSet:
    try:
        service.set_rules(rules)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    return service.rules


@alerts.post("/rules/reload", summary="Re-read the rules file (admin)")
async def reload_rules(_: Admin, service: Service) -> RuleSet:
    try:
        return service.reload_rules()
    except (RulesError, ValueError) as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err


@alerts.get("/{alert_id}", summary="One alert with its transitions and deliveries")
async def get_alert(alert_id: str, principal: Supervisor, service: Service) -> AlertDetail:
    alert = _visible(principal, service.store.get(alert_id), alert_id)
    return AlertDetail(
        alert=alert,
        transitions=service.store.transitions(alert_id),
        deliveries=service.store.deliveries(alert_id),
    )


@alerts.post("/{alert_id}/ack", summary="Acknowledge an open alert (supervisor of its line)")
async def acknowledge(alert_id: str, principal: Supervisor, service: Service) -> Alert:
    _visible(principal, service.store.get(alert_id), alert_id)
    try:
        return service.acknowledge(alert_id, principal.name)
    except NotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}") from err
    except Conflict as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from err


router.include_router(alerts)
router.include_router(board_router)
