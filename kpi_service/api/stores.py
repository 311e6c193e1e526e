"""Dependencies for the relational store's repositories (schemes, external metrics, closes)."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from kpi_service.scores.closing import PeriodBook
from kpi_service.scores.external import ExternalStore
from kpi_service.scores.registry import SchemeRegistry
from kpi_service.scores.roles import RoleBook


def get_registry(request: Request) -> SchemeRegistry:
    return cast(SchemeRegistry, request.app.state.schemes)


def get_externals(request: Request) -> ExternalStore:
    return cast(ExternalStore, request.app.state.externals)


def get_closes(request: Request) -> PeriodBook:
    return cast(PeriodBook, request.app.state.closes)


def get_roles(request: Request) -> RoleBook:
    return cast(RoleBook, request.app.state.roles)


RegistryDep = Annotated[SchemeRegistry, Depends(get_registry)]
ExternalDep = Annotated[ExternalStore, Depends(get_externals)]
ClosesDep = Annotated[PeriodBook, Depends(get_closes)]
RolesDep = Annotated[RoleBook, Depends(get_roles)]
