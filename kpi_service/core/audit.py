"""Append-only audit log (who, what, when, with which parameters, and the outcome).

Kept in the relational store's ``audit`` table. The service only ever INSERTs; triggers
make UPDATE and DELETE (and TRUNCATE on PostgreSQL) fail inside the database too, so a
bug elsewhere in the service cannot rewrite history. Query parameters are kept as the
ordered list of (name, value) pairs the caller sent, so ``worker=W1&worker=W2`` is
recorded as both, not as the last one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert, select

from kpi_service.store.db import Database, as_utc, utcnow
from kpi_service.store.tables import audit

MAX_PAIRS = 200
MAX_VALUE = 512
"""Bounds on what one entry keeps, so a hostile query string cannot bloat the log."""


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    principal: str
    method: str
    path: str
    query: dict[str, list[str]]
    status: int | None


def bounded(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """At most MAX_PAIRS pairs, values cut at MAX_VALUE characters (marked with '…')."""
    out: list[tuple[str, str]] = []
    for i, (name, value) in enumerate(pairs):
        if i == MAX_PAIRS:
            out.append(("…", "more parameters not recorded"))
            break
        out.append(
            (name[:MAX_VALUE], value if len(value) <= MAX_VALUE else value[:MAX_VALUE] + "…")
        )
    return out


def grouped(pairs: list[list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


class AuditLog:
    def __init__(self, where: Database | str | Path) -> None:
        self.db = where if isinstance(where, Database) else Database(where)

    def record(
        self,
        principal: str,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]] | dict[str, str] = (),
        status: int | None = None,
    ) -> int:
        pairs = bounded(query.items() if isinstance(query, dict) else query)
        with self.db.engine.begin() as conn:
            result = conn.execute(
                insert(audit).values(
                    at=utcnow(),
                    principal=principal[:128],
                    method=method[:16],
                    path=path[:2048],
                    query=json.dumps(pairs),
                    status=status,
                )
            )
            key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def entries(
        self, *, after_id: int = 0, limit: int = 100, principal: str | None = None
    ) -> list[AuditEntry]:
        stmt = select(audit).where(audit.c.id > after_id)
        if principal is not None:
            stmt = stmt.where(audit.c.principal == principal)
        with self.db.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(audit.c.id).limit(limit)).all()
        return [
            AuditEntry(
                id=int(r.id),
                at=as_utc(r.at) or utcnow(),
                principal=r.principal,
                method=r.method,
                path=r.path,
                query=grouped(json.loads(r.query)),
                status=r.status,
            )
            for r in rows
        ]
