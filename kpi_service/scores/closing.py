"""Period close: a scheme's scores for one period frozen as a snapshot with a content hash.

HR pays bonuses on a closed month, so a closed month must not move. Reads of a closed
period return the snapshot; data that arrives later (a gateway back from a week offline)
is shown as a pending delta per worker, never applied silently. Re-opening needs an
admin and a reason; every close stays in the table (``reopened_*`` set), so the history
of what was paid on is kept.

The snapshot holds the scores before pseudonymisation (the read path pseudonymises it
like live scores), the scheme version and the measured inputs, encoded canonically
(sorted keys, no spaces): the hash is the SHA-256 of exactly the stored text.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from kpi_service.scores.scoring import MetricResult, ScoreResult
from kpi_service.scores.service import WorkerScore
from kpi_service.store.db import Database, as_utc, utcnow
from kpi_service.store.tables import period_closes as t
from takt_common.errors import TaktError


class CloseConflict(TaktError, ValueError):
    """Closing a closed period, or re-opening an open one."""


@dataclass(frozen=True)
class Closure:
    id: int
    scheme: str
    period: str
    first_day: date
    last_day: date
    version: int
    workers: int
    content_hash: str
    closed_at: datetime
    closed_by: str
    reopened_at: datetime | None
    reopened_by: str | None
    reopen_reason: str | None
    snapshot: str

    @property
    def open(self) -> bool:
        return self.reopened_at is None

    def scores(self) -> list[WorkerScore]:
        frozen = [_score_from(d) for d in json.loads(self.snapshot)["scores"]]
        for s in frozen:
            s.closed = self.content_hash
        return frozen


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def encode_snapshot(scheme: str, period: str, version: int, scores: list[WorkerScore]) -> str:
    """The canonical text of a snapshot (what is stored and hashed)."""
    body = {
        "scheme": scheme,
        "period": period,
        "version": version,
        "scores": [dataclasses.asdict(s) for s in sorted(scores, key=lambda s: s.worker)],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=_plain)


def content_hash(snapshot: str) -> str:
    return hashlib.sha256(snapshot.encode()).hexdigest()


def _score_from(d: dict[str, Any]) -> WorkerScore:
    r = d["result"]
    result = ScoreResult(
        status=r["status"],
        score=r["score"],
        band=r["band"],
        metrics=[MetricResult(**m) for m in r["metrics"]],
        reasons=list(r["reasons"]),
    )
    return WorkerScore(
        worker=d["worker"],
        period=d["period"],
        start=datetime.fromisoformat(d["start"]),
        end=datetime.fromisoformat(d["end"]),
        first_day=date.fromisoformat(d["first_day"]),
        last_day=date.fromisoformat(d["last_day"]),
        scheme=d["scheme"],
        version=d["version"],
        result=result,
        effective_hours=d["effective_hours"],
        units=d["units"],
        measured=d["measured"],
    )


def deltas(closed: list[WorkerScore], live: list[WorkerScore]) -> list[dict[str, Any]]:
    """Per worker, what the live computation says now that differs from the snapshot."""
    before = {s.worker: s for s in closed}
    now = {s.worker: s for s in live}
    out: list[dict[str, Any]] = []
    for worker in sorted(before.keys() | now.keys()):
        a, b = before.get(worker), now.get(worker)
        fields = {
            "status": (a.result.status if a else None, b.result.status if b else None),
            "score": (a.result.score if a else None, b.result.score if b else None),
            "band": (a.result.band if a else None, b.result.band if b else None),
            "units": (a.units if a else None, b.units if b else None),
            "effective_hours": (
                round(a.effective_hours, 4) if a else None,
                round(b.effective_hours, 4) if b else None,
            ),
        }
        changed = {k: {"closed": x, "live": y} for k, (x, y) in fields.items() if x != y}
        cases = sorted(_case_ids(b) - _case_ids(a))
        if changed or cases:
            entry: dict[str, Any] = {"worker": worker, "changes": changed}
            if cases:
                entry["cases"] = cases  # approved after the close: why the figures moved
            out.append(entry)
    return out


def _case_ids(s: WorkerScore | None) -> set[int]:
    """Ids of the approved cases that changed a score's measured inputs."""
    return {int(c["case"]) for c in (s.measured.get("cases") or [])} if s else set()


class PeriodBook:
    """Closes in the store: at most one open (not re-opened) close per scheme and period."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def close(
        self,
        scheme: str,
        period: str,
        first_day: date,
        last_day: date,
        version: int,
        scores: list[WorkerScore],
        by: str,
    ) -> Closure:
        snapshot = encode_snapshot(scheme, period, version, scores)
        values = {
            "scheme": scheme,
            "period": period,
            "first_day": first_day,
            "last_day": last_day,
            "version": version,
            "workers": len(scores),
            "content_hash": content_hash(snapshot),
            "snapshot": snapshot,
            "closed_at": utcnow(),
            "closed_by": by,
            # NULL is distinct in a unique index; "" marks the one open close.
            "open_key": "",
        }
        try:
            with self.db.engine.begin() as conn:
                row_id: int = conn.execute(
                    insert(t).values(**values).returning(t.c.id)
                ).scalar_one()
        except IntegrityError as err:
            raise CloseConflict(f"{scheme} {period} is already closed") from err
        found = self.get(scheme, period)
        assert found is not None and found.id == row_id
        return found

    def reopen(self, scheme: str, period: str, by: str, reason: str) -> Closure:
        current = self.get(scheme, period)
        if current is None:
            raise CloseConflict(f"{scheme} {period} is not closed")
        with self.db.engine.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.id == current.id, t.c.open_key == "")
                .values(
                    open_key=str(current.id),
                    reopened_at=utcnow(),
                    reopened_by=by,
                    reopen_reason=reason,
                )
            ).rowcount
        if done != 1:
            raise CloseConflict(f"{scheme} {period} was re-opened meanwhile")
        return self.history(scheme, period)[-1]

    def get(self, scheme: str, period: str) -> Closure | None:
        """The close in force (not re-opened) for a scheme's period, if any."""
        found = self.in_force(scheme, [period])
        return found.get(period)

    def in_force(self, scheme: str, periods: list[str]) -> dict[str, Closure]:
        if not periods:
            return {}
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(t).where(t.c.scheme == scheme, t.c.period.in_(periods), t.c.open_key == "")
            ).all()
        return {r.period: _closure(r) for r in rows}

    def history(self, scheme: str, period: str | None = None) -> list[Closure]:
        query = select(t).where(t.c.scheme == scheme)
        if period is not None:
            query = query.where(t.c.period == period)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.id)).all()
        return [_closure(r) for r in rows]


def _closure(r: Any) -> Closure:
    return Closure(
        id=r.id,
        scheme=r.scheme,
        period=r.period,
        first_day=r.first_day,
        last_day=r.last_day,
        version=r.version,
        workers=r.workers,
        content_hash=r.content_hash,
        closed_at=as_utc(r.closed_at) or utcnow(),
        closed_by=r.closed_by,
        reopened_at=as_utc(r.reopened_at),
        reopened_by=r.reopened_by,
        reopen_reason=r.reopen_reason,
        snapshot=r.snapshot,
    )
