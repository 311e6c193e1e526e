"""Review-loop cases: a worker or a supervisor reports what the data got wrong, another
supervisor decides.

A case names a worker, a line and station, a time span and a kind. An *approved* case
changes every KPI and score computed afterwards (``kpi.adjusted``): the span's effective
time becomes excused down time, or the span's units go to the right worker. A rejected
case keeps its reason. Cases are never edited or deleted: filing and deciding are the
only writes, each an insert or a one-time update of an open case, and every request is
in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Row, and_, select, update
from sqlalchemy import insert as sa_insert

from kpi_service.api.queries import FIRST_DAY, LAST_DAY
from kpi_service.kpi.cases import CaseEffect, Effect
from kpi_service.scores.model import Name
from kpi_service.store.db import Database, as_utc, utcnow
from kpi_service.store.tables import cases as t
from takt_common.errors import TaktError

Kind = Literal[
    "equipment_not_signalled", "material_shortage", "training", "wrong_attribution", "other"
]
EFFECTS: dict[str, Effect] = {
    "equipment_not_signalled": "excuse",
    "material_shortage": "excuse",
    "training": "excuse",
    "other": "excuse",
    "wrong_attribution": "reattribute",
}
MAX_SPAN = timedelta(days=31)
"""A case covers at most a month: a longer problem is several cases (and stays readable)."""
EARLIEST = datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, tzinfo=UTC)
LATEST = datetime(LAST_DAY.year, LAST_DAY.month, LAST_DAY.day, tzinfo=UTC)


class CaseIn(BaseModel):
    """What the filer says happened. Times carry their offset (``...Z`` or ``+01:00``)."""

    model_config = ConfigDict(extra="forbid")
    kind: Kind = Field(description="What went wrong; decides the effect when approved.")
    worker: Name | None = Field(
        None, description="Whose figures (a worker's own key: omit, it is the key's worker)."
    )
    to_worker: Name | None = Field(
        None, description="wrong_attribution only: the worker who really made the units."
    )
    line: Name
    station: Name
    start: AwareDatetime = Field(description="Span start (inclusive).")
    end: AwareDatetime = Field(description="Span end (exclusive).")
    text: str = Field(min_length=1, max_length=4000, description="What happened.")
    evidence: str = Field(
        "", max_length=2000, description="Optional: a ticket, a link, what a colleague saw."
    )

    @model_validator(mode="after")
    def _check(self) -> CaseIn:
        if not EARLIEST <= self.start < LATEST or not EARLIEST < self.end <= LATEST:
            raise ValueError(f"the span lies within {EARLIEST.date()}..{LATEST.date()}")
        if self.end <= self.start:
            raise ValueError("the span's end is not after its start")
        if self.end - self.start > MAX_SPAN:
            raise ValueError(f"a case spans at most {MAX_SPAN.days} days")
        if (self.kind == "wrong_attribution") != (self.to_worker is not None):
            raise ValueError("to_worker is given for wrong_attribution, and only for it")
        if self.to_worker is not None and self.to_worker == self.worker:
            raise ValueError("to_worker is the worker the case is about")
        return self


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    reason: str = Field(min_length=3, max_length=2000, description="Why (kept with the case).")


@dataclass(frozen=True)
class Case(CaseEffect):
    """A stored case: what the KPI computation needs (``CaseEffect``) and its record."""

    text: str
    evidence: str
    status: str
    filed_at: datetime
    filed_by: str
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None


class CaseConflict(TaktError, ValueError):
    """Deciding a decided case, or approving one that overlaps an approved one."""


def _case(r: Row[Any]) -> Case:
    m = r._mapping
    return Case(
        id=int(m["id"]), kind=m["kind"], effect=m["effect"], worker=m["worker"],
        to_worker=m["to_worker"], line=m["line"], station=m["station"],
        start=as_utc(m["span_start"]) or EARLIEST, end=as_utc(m["span_end"]) or EARLIEST,
        text=m["text"], evidence=m["evidence"], status=m["status"],
        filed_at=as_utc(m["filed_at"]) or EARLIEST, filed_by=m["filed_by"],
        decided_at=as_utc(m["decided_at"]), decided_by=m["decided_by"],
        decision_reason=m["decision_reason"],
    )  # fmt: skip


class CaseBook:
    """Cases in the relational store; also the ``CaseSource`` of ``kpi.adjusted``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def file(self, body: CaseIn, worker: str, by: str) -> Case:
        values = dict(
            kind=body.kind, effect=EFFECTS[body.kind], worker=worker, to_worker=body.to_worker,
            line=body.line, station=body.station,
            span_start=body.start.astimezone(UTC), span_end=body.end.astimezone(UTC),
            text=body.text, evidence=body.evidence, status="open", filed_at=utcnow(),
            filed_by=by,
        )  # fmt: skip
        with self.db.engine.begin() as conn:
            key = conn.execute(sa_insert(t).values(**values)).inserted_primary_key
        assert key is not None
        found = self.get(int(key[0]))
        assert found is not None
        return found

    def get(self, case_id: int) -> Case | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == case_id)).first()
        return _case(row) if row is not None else None

    def query(
        self,
        *,
        lines: frozenset[str] | None = None,
        worker: str | None = None,
        status: str | None = None,
    ) -> list[Case]:
        stmt = select(t).order_by(t.c.id)
        if lines is not None:
            stmt = stmt.where(t.c.line.in_(sorted(lines)))
        if worker is not None:
            stmt = stmt.where(t.c.worker == worker)
        if status is not None:
            stmt = stmt.where(t.c.status == status)
        with self.db.engine.connect() as conn:
            return [_case(r) for r in conn.execute(stmt).all()]

    def decide(self, case_id: int, approve: bool, reason: str, by: str) -> Case:
        """Approve or reject an open case, once. An approval overlapping an approved case
        of the same effect, worker, line and station is refused (it would count twice)."""
        with self.db.engine.begin() as conn:
            row = conn.execute(select(t).where(t.c.id == case_id).with_for_update()).first()
            if row is None:
                raise LookupError(f"no case {case_id}")
            case = _case(row)
            if case.status != "open":
                raise CaseConflict(f"case {case_id} was {case.status} already")
            if approve:
                clash = conn.execute(
                    select(t.c.id).where(
                        and_(
                            t.c.status == "approved", t.c.effect == case.effect,
                            t.c.worker == case.worker, t.c.line == case.line,
                            t.c.station == case.station, t.c.span_start < case.end,
                            t.c.span_end > case.start,
                        )
                    )
                ).first()  # fmt: skip
                if clash is not None:
                    raise CaseConflict(
                        f"case {case_id} overlaps approved case {clash.id} (same worker, "
                        "station and effect): its span would count twice"
                    )
            conn.execute(
                update(t)
                .where(and_(t.c.id == case_id, t.c.status == "open"))
                .values(
                    status="approved" if approve else "rejected",
                    decided_at=utcnow(),
                    decided_by=by,
                    decision_reason=reason,
                )
            )
        found = self.get(case_id)
        assert found is not None
        return found

    def approved(self, start: datetime, end: datetime) -> list[CaseEffect]:
        """Approved cases whose span overlaps [start, end) (``kpi.adjusted.CaseSource``)."""
        stmt = select(t).where(
            and_(t.c.status == "approved", t.c.span_start < end, t.c.span_end > start)
        )
        with self.db.engine.connect() as conn:
            return [_case(r) for r in conn.execute(stmt).all()]
