"""Append-only audit log of KPI reads (who, what, when) in SQLite.

The service only ever INSERTs; triggers make UPDATE and DELETE fail inside the
database too, so a bug elsewhere in the service cannot rewrite history.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  principal TEXT NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  query TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
"""


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    principal: str
    method: str
    path: str
    query: dict[str, str]


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def record(self, principal: str, method: str, path: str, query: dict[str, str]) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO audit (at, principal, method, path, query) VALUES (?, ?, ?, ?, ?)",
                (
                    datetime.now(UTC).isoformat(),
                    principal,
                    method,
                    path,
                    json.dumps(query, sort_keys=True),
                ),
            )

    def entries(self, *, after_id: int = 0, limit: int = 100) -> list[AuditEntry]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, at, principal, method, path, query FROM audit"
                " WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]
