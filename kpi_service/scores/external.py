"""External metric values (QMS, CRM, MES, reviews) in the store, idempotent on (source,
reference): resending the same value is harmless, reusing a reference for a different
value is refused, so a retried upload can never double-count and a typo cannot silently
overwrite a figure that may already have been scored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import and_, insert, select, tuple_

from kpi_service.scores.model import Finite, Name
from kpi_service.store.db import Database, as_utc, utcnow
from kpi_service.store.tables import external_metrics as t
from takt_common.errors import TaktError

Reference = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e][\x20-\x7e]*$", max_length=256)]


class ExternalValue(BaseModel):
    """One value from another system, for one worker and period (local days, inclusive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    worker: Name
    metric: Name = Field(description="An external metric declared by some scheme.")
    period_start: date
    period_end: date
    value: Finite
    source: Name = Field(description="The sending system, e.g. qms, crm, reviews.")
    reference: Reference = Field(description="Ticket ids, survey id...: unique per source.")

    @model_validator(mode="after")
    def _period(self) -> ExternalValue:
        if self.period_end < self.period_start:
            raise ValueError("period_end is before period_start")
        if self.period_end - self.period_start > timedelta(days=366):
            raise ValueError("a period spans at most 366 days")
        return self


@dataclass(frozen=True)
class StoredValue:
    worker: str
    metric: str
    period_start: date
    period_end: date
    value: float
    source: str
    reference: str
    received_at: datetime
    received_by: str


class DuplicateReference(TaktError, ValueError):
    """A (source, reference) already stored with different content."""


def _same(row: object, v: ExternalValue) -> bool:
    return (
        getattr(row, "worker", None) == v.worker
        and getattr(row, "metric", None) == v.metric
        and getattr(row, "period_start", None) == v.period_start
        and getattr(row, "period_end", None) == v.period_end
        and getattr(row, "value", None) == v.value
    )


class ExternalStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, values: list[ExternalValue], by: str) -> list[str]:
        """Store a batch all-or-nothing; per value ``stored`` or ``unchanged`` (a resend)."""
        keys = [(v.source, v.reference) for v in values]
        if len(set(keys)) != len(keys):
            raise DuplicateReference("the batch repeats a (source, reference)")
        now = utcnow()
        outcome: list[str] = []
        with self.db.engine.begin() as conn:
            existing = {
                (r.source, r.reference): r
                for r in conn.execute(select(t).where(tuple_(t.c.source, t.c.reference).in_(keys)))
            }
            fresh = []
            for v in values:
                old = existing.get((v.source, v.reference))
                if old is None:
                    fresh.append(v.model_dump() | {"received_at": now, "received_by": by})
                    outcome.append("stored")
                elif _same(old, v):
                    outcome.append("unchanged")
                else:
                    raise DuplicateReference(
                        f"source {v.source!r} reference {v.reference!r} is already stored "
                        f"with other content (worker {old.worker}, metric {old.metric}, "
                        f"value {old.value:g}); a correction needs a new reference"
                    )
            if fresh:
                conn.execute(insert(t), fresh)
        return outcome

    def values(
        self,
        metrics: set[str],
        first: date,
        last: date,
        workers: set[str] | None = None,
        limit: int | None = None,
    ) -> list[StoredValue]:
        """Values of ``metrics`` whose period lies within local days ``first``..``last``;
        the first ``limit`` of them (in the order stored) when given."""
        if not metrics:
            return []
        stmt = select(t).where(
            t.c.metric.in_(sorted(metrics)),
            and_(t.c.period_start >= first, t.c.period_end <= last),
        )
        if workers is not None:
            stmt = stmt.where(t.c.worker.in_(sorted(workers)))
        with self.db.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(t.c.id).limit(limit)).all()
        return [
            StoredValue(
                r.worker,
                r.metric,
                r.period_start,
                r.period_end,
                float(r.value),
                r.source,
                r.reference,
                as_utc(r.received_at) or utcnow(),
                r.received_by,
            )
            for r in rows
        ]
