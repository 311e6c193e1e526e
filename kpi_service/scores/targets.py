"""Targets per worker, station or line and period, with their history and acknowledgements.

Setting a target again adds a row (the newest is in force), so every change stays visible
with who made it; a worker's acknowledgement is recorded against the exact row they saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from kpi_service.scores.model import MEASURED, Finite, Name
from kpi_service.store.db import Database, as_utc, utcnow
from kpi_service.store.tables import target_acks, targets
from takt_common.errors import TaktError

TargetPeriod = Literal["day", "week", "month"]


class TargetIn(BaseModel):
    """A target as a supervisor (own lines) or HR sets it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["worker", "station", "line"]
    subject: Name = Field(description="Worker id, station id or line id (per kind).")
    line: Name = Field(description="The line the target is for (a supervisor's authority).")
    metric: str = Field(description=f"Measured metric: one of {sorted(MEASURED)}.")
    period: TargetPeriod = "month"
    period_start: date = Field(description="First local day of the period.")
    value: Finite
    note: str = Field("", max_length=1000)

    @model_validator(mode="after")
    def _checked(self) -> TargetIn:
        if self.metric not in MEASURED:
            raise ValueError(
                f"unknown metric {self.metric!r}; known: {', '.join(sorted(MEASURED))}"
            )
        if self.kind == "line" and self.subject != self.line:
            raise ValueError("a line target's subject is the line itself")
        if self.period == "month" and self.period_start.day != 1:
            raise ValueError("a monthly target starts on the first day of a month")
        if self.period == "week" and self.period_start.weekday() != 0:
            raise ValueError("a weekly target starts on a Monday")
        return self


@dataclass(frozen=True)
class Target:
    id: int
    kind: str
    subject: str
    line: str
    metric: str
    period: str
    period_start: date
    value: float
    note: str
    set_at: datetime
    set_by: str
    acknowledged_at: datetime | None = None


class UnknownTarget(TaktError, LookupError):
    pass


class TargetStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def set(self, target: TargetIn, by: str) -> Target:
        now = utcnow()
        with self.db.engine.begin() as conn:
            result = conn.execute(
                insert(targets).values(**target.model_dump(), set_at=now, set_by=by)
            )
            key = result.inserted_primary_key
        assert key is not None
        return Target(id=int(key[0]), **target.model_dump(), set_at=now, set_by=by)

    def get(self, target_id: int) -> Target:
        found = self.query(target_id=target_id, history=True)
        if not found:
            raise UnknownTarget(f"no target {target_id}")
        return found[0]

    def query(
        self,
        *,
        lines: frozenset[str] | None = None,
        kind: str | None = None,
        subject: str | None = None,
        metric: str | None = None,
        first: date | None = None,
        last: date | None = None,
        history: bool = False,
        target_id: int | None = None,
    ) -> list[Target]:
        """Targets (by default only the one in force per subject, metric and period)."""
        stmt = select(targets, target_acks.c.acknowledged_at).outerjoin(
            target_acks, target_acks.c.target_id == targets.c.id
        )
        if target_id is not None:
            stmt = stmt.where(targets.c.id == target_id)
        if lines is not None:
            stmt = stmt.where(targets.c.line.in_(sorted(lines)))
        for column, value in ((targets.c.kind, kind), (targets.c.subject, subject),
                              (targets.c.metric, metric)):  # fmt: skip
            if value is not None:
                stmt = stmt.where(column == value)
        if first is not None:
            stmt = stmt.where(targets.c.period_start >= first)
        if last is not None:
            stmt = stmt.where(targets.c.period_start <= last)
        with self.db.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(targets.c.id)).all()
        out = [
            Target(
                id=int(r.id), kind=r.kind, subject=r.subject, line=r.line, metric=r.metric,
                period=r.period, period_start=r.period_start, value=float(r.value), note=r.note,
                set_at=as_utc(r.set_at) or utcnow(), set_by=r.set_by,
                acknowledged_at=as_utc(r.acknowledged_at),
            )
            for r in rows
        ]  # fmt: skip
        if history:
            return out
        newest: dict[tuple[str, str, str, str, str, date], Target] = {}
        for t in out:
            newest[(t.kind, t.subject, t.line, t.metric, t.period, t.period_start)] = t
        return sorted(newest.values(), key=lambda t: t.id)

    def acknowledge(self, target_id: int, worker: str, by: str) -> datetime:
        target = self.get(target_id)
        if target.kind != "worker" or target.subject != worker:
            raise ValueError(f"target {target_id} is not worker {worker}'s own target")
        now = utcnow()
        try:
            with self.db.engine.begin() as conn:
                conn.execute(
                    insert(target_acks).values(
                        target_id=target_id, worker=worker, acknowledged_at=now, recorded_by=by
                    )
                )
        except IntegrityError as err:
            raise ValueError(
                f"worker {worker} has already acknowledged target {target_id}"
            ) from err
        return now
