"""The KPI service application factory.

Lifespan hooks are async context manager factories taking the app, entered in order at
start-up and exited in reverse at shutdown: the store and InfluxDB here, plus those a
caller passes (``hooks``). The alert engine needs none: its router carries its lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from starlette.types import Scope

from kpi_service.api.auditing import AuditMiddleware
from kpi_service.api.guard import RequestGuard
from kpi_service.api.main import api_router
from kpi_service.board.pairing_routes import REDEEM_PATH
from kpi_service.core.apikeys import KeyStore, Principal, Refused
from kpi_service.core.audit import AuditLog
from kpi_service.core.config import Settings, load_settings
from kpi_service.influx import InfluxReader
from kpi_service.kpi import adjusted
from kpi_service.scores.cases import CaseBook
from kpi_service.scores.closing import PeriodBook
from kpi_service.scores.external import ExternalStore
from kpi_service.scores.registry import SchemeRegistry
from kpi_service.scores.roles import RoleBook
from kpi_service.scores.targets import TargetStore
from kpi_service.store.db import Database
from kpi_service.store.legacy import import_legacy

LifespanHook = Callable[[FastAPI], AbstractAsyncContextManager[None]]


@asynccontextmanager
async def _influx_hook(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    reader = InfluxReader(
        settings.influx, use_rollups=lambda: settings.use_rollups, timezone=settings.timezone
    )
    app.state.influx = reader
    adjusted.bind(reader, app.state.cases)  # approved cases change every figure read
    try:
        yield
    finally:
        await reader.aclose()


@asynccontextmanager
async def _store_hook(app: FastAPI) -> AsyncIterator[None]:
    try:
        yield
    finally:
        app.state.store.dispose()  # pooled connections closed at shutdown


def create_app(
    settings: Settings | None = None, *, hooks: list[LifespanHook] | None = None
) -> FastAPI:
    """Build the app; ``hooks`` run after the store's and InfluxDB's."""
    settings = settings or load_settings()
    all_hooks: list[LifespanHook] = [_store_hook, _influx_hook, *(hooks or [])]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for hook in all_hooks:
                await stack.enter_async_context(hook(app))
            yield

    app = FastAPI(
        title="Takt KPI service",
        version="1.0",
        description=(
            "Objective production KPIs per worker, station, line and site, with the "
            "evidence behind every figure. Worker data is personal data: every read is "
            "audited. Figures are a decision aid for people, never an automatic decision."
        ),
        lifespan=lifespan,
        # Outside development the API description is not served anonymously either.
        openapi_url="/openapi.json" if settings.environment == "development" else None,
    )
    app.state.settings = settings
    app.state.store = Database(settings.store_url)  # migrated to the newest schema on open
    import_legacy(app.state.store, settings.state_dir)
    app.state.keys = KeyStore(app.state.store, settings.secret_key.get_secret_value())
    app.state.audit = AuditLog(app.state.store)
    app.state.schemes = SchemeRegistry(app.state.store)
    app.state.externals = ExternalStore(app.state.store)
    app.state.closes = PeriodBook(app.state.store)
    app.state.roles = RoleBook(app.state.store)
    app.state.targets = TargetStore(app.state.store)
    # Usable without the lifespan too (e.g. API fuzzers driving the ASGI app directly).
    app.state.influx = InfluxReader(
        settings.influx, use_rollups=lambda: settings.use_rollups, timezone=settings.timezone
    )
    app.state.cases = CaseBook(app.state.store)
    adjusted.bind(app.state.influx, app.state.cases)

    @app.get("/healthz", tags=["health"], summary="Liveness (no credentials needed)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(api_router)
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.max_body_bytes,
        authenticate=_authenticate,
        open_paths=frozenset({REDEEM_PATH}),
    )
    # Added last, so outermost: a request the guard refuses (no key, oversized body)
    # is audited too.
    app.add_middleware(AuditMiddleware)
    return app


def _authenticate(scope: Scope, key: str) -> Principal | Refused | None:
    """``key`` looked up in the keys of the app serving ``scope`` (scopes come later)."""
    store: KeyStore = scope["app"].state.keys
    return store.authenticate(key)
