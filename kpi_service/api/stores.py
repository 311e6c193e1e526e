"""Dependencies for the relational store's repositories (schemes, external metrics, closes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, cast

from fastapi import Depends, Request

from kpi_service.core.apikeys import Principal
from kpi_service.core.config import Settings
from kpi_service.influx import InfluxReader
from kpi_service.scores.closing import PeriodBook
from kpi_service.scores.external import ExternalStore
from kpi_service.scores.registry import SchemeRegistry
from kpi_service.scores.roles import RoleBook
from kpi_service.scores.service import ScoreRun, compute_scores


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


@dataclass(frozen=True)
class Scoring:
    """Everything a score computation reads, as one dependency (scores, closes, /me)."""

    settings: Settings
    reader: InfluxReader
    registry: SchemeRegistry
    externals: ExternalStore
    closes: PeriodBook
    roles: RoleBook

    async def run(
        self,
        principal: Principal,
        scheme: str,
        start: date,
        end: date,
        workers: list[str] | None = None,
        *,
        live: bool = False,
        raw_ids: bool = False,
    ) -> ScoreRun:
        """Scores under ``scheme``; closed periods from their snapshots unless ``live``."""
        return await compute_scores(
            self.reader, self.settings, self.registry, self.externals, principal, scheme,
            start, end, workers, None if live else self.closes, raw_ids=raw_ids,
            roles=self.roles,
        )  # fmt: skip


def get_scoring(request: Request) -> Scoring:
    state = request.app.state
    return Scoring(state.settings, state.influx, state.schemes, state.externals, state.closes,
                   state.roles)  # fmt: skip


ScoringDep = Annotated[Scoring, Depends(get_scoring)]
