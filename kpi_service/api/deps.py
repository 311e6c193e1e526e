"""FastAPI dependencies as ``Annotated`` aliases: settings, the caller, scopes, Influx, audit."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, cast

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from kpi_service.api.guard import AUTHENTICATED
from kpi_service.core.apikeys import SCOPES, KeyStore, Principal, Refused
from kpi_service.core.audit import AuditLog
from kpi_service.core.config import Settings
from kpi_service.influx import InfluxReader

__all__ = [
    "SCOPES",
    "AuditDep",
    "CurrentPrincipal",
    "InfluxDep",
    "Principal",
    "SettingsDep",
    "require_scopes",
]


def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token.")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key.")

UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="missing or invalid credentials",
    headers={"WWW-Authenticate": "Bearer"},
)


def get_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header_key: Annotated[str | None, Security(_header)],
) -> Principal:
    key = bearer.credentials if bearer else header_key
    if not key:
        raise UNAUTHORIZED
    # A request with a body was authenticated by the guard already: same key, same answer.
    found: Principal | Refused | None
    checked = request.scope.get("state", {}).get(AUTHENTICATED)
    if checked is not None and checked[0] == key:
        found = checked[1]
    else:
        found = cast(KeyStore, request.app.state.keys).authenticate(key)
    if isinstance(found, Refused):
        request.state.refused_as = f"{found.reason}:{found.name}"
        raise UNAUTHORIZED
    if found is None:
        request.state.refused_as = "invalid-key"
        raise UNAUTHORIZED
    request.state.principal = found
    return found


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_scopes(*scopes: str) -> Callable[[Principal], Principal]:
    """Dependency: the caller holds at least ONE of ``scopes`` (admin implies all), else 403."""
    unknown = set(scopes) - SCOPES
    if unknown or not scopes:
        raise ValueError(f"unknown scopes {sorted(unknown)}; known: {sorted(SCOPES)}")

    def check(principal: CurrentPrincipal) -> Principal:
        if not any(principal.has(s) for s in scopes):
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"needs one of the scopes: {', '.join(scopes)}",
            )
        return principal

    return check


def get_influx(request: Request) -> InfluxReader:
    return cast(InfluxReader, request.app.state.influx)


InfluxDep = Annotated[InfluxReader, Depends(get_influx)]


def get_audit(request: Request) -> AuditLog:
    return cast(AuditLog, request.app.state.audit)


AuditDep = Annotated[AuditLog, Depends(get_audit)]


def audited(*scopes: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """Dependency for KPI reads: the scope check. Every /api request, allowed or refused,
    is recorded with its status by ``kpi_service.api.auditing.AuditMiddleware``."""
    checker = require_scopes(*scopes)

    async def check(
        # A default, not Annotated: a closure variable cannot be resolved from a string annotation.
        principal: Principal = Depends(checker),  # noqa: B008
    ) -> Principal:
        return principal

    return check


KpiReader = Annotated[Principal, Depends(audited("hr:read", "supervisor"))]
"""A caller allowed to read KPIs (HR: all lines; supervisor: its lines), audited."""
