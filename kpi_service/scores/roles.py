"""Workers' roles over time, so a scheme can apply to a role (operator, setter, team lead).

Roles come from HR, not from the line, and change: a role is recorded with the day it
takes effect, never edited, so a past month keeps the role that was in force then (the
same rule as scheme versions). The role in force on a day is the newest assignment
taking effect on or before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select

from kpi_service.api.queries import FIRST_DAY, LAST_DAY
from kpi_service.scores.model import Name
from kpi_service.store.db import Database, as_utc, utcnow
from kpi_service.store.tables import worker_roles as t


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Name = Field(description="Role name, e.g. operator, setter, team_lead.")
    effective_from: date = Field(
        ge=FIRST_DAY, le=LAST_DAY, description="First local day the role is in force."
    )
    note: str = Field("", max_length=1000)


@dataclass(frozen=True)
class Role:
    worker: str
    role: str
    effective_from: date
    note: str
    set_at: datetime
    set_by: str


class RoleBook:
    def __init__(self, db: Database) -> None:
        self.db = db

    def assign(self, worker: str, role: RoleIn, by: str) -> Role:
        now = utcnow()
        with self.db.engine.begin() as conn:
            conn.execute(
                insert(t).values(worker=worker, **role.model_dump(), set_at=now, set_by=by)
            )
        return Role(worker, role.role, role.effective_from, role.note, now, by)

    def history(self, worker: str | None = None) -> list[Role]:
        stmt = select(t).order_by(t.c.worker, t.c.effective_from, t.c.id)
        if worker is not None:
            stmt = stmt.where(t.c.worker == worker)
        with self.db.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            Role(r.worker, r.role, r.effective_from, r.note, as_utc(r.set_at) or utcnow(), r.set_by)
            for r in rows
        ]

    def in_force(self, day: date) -> dict[str, str]:
        """worker -> role in force on ``day`` (workers without one are absent)."""
        return _in_force(self.history(), day)

    def holders(self, roles: tuple[str, ...], days: list[date]) -> dict[date, frozenset[str]]:
        """Per day, the workers holding one of ``roles``: the table is read once for all."""
        history, wanted = self.history(), set(roles)
        return {
            d: frozenset(w for w, role in _in_force(history, d).items() if role in wanted)
            for d in days
        }


def _in_force(history: list[Role], day: date) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in history:  # ordered by worker, effective day, then insertion: the newest wins
        if r.effective_from <= day:
            out[r.worker] = r.role
    return out
