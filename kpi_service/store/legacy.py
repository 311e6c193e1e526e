"""One-time import of the SQLite files kept before the relational store existed.

Earlier versions kept API keys in ``state_dir/apikeys.sqlite`` and the audit log in
``state_dir/audit.sqlite``. On the first start with the store, their rows are copied in
(keys by name, audit entries in their order, with their original times) and each file is
renamed ``*.imported``, so an upgrade loses neither a key nor a line of history.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

from kpi_service.store.db import Database
from kpi_service.store.tables import apikeys, audit

log = logging.getLogger(__name__)


def _when(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def import_legacy(db: Database, state_dir: Path) -> dict[str, int]:
    """Copy legacy keys and audit entries (if the files exist); returns what was copied."""
    copied = {"apikeys": 0, "audit": 0}
    keys_file = state_dir / "apikeys.sqlite"
    if keys_file.is_file():
        with sqlite3.connect(keys_file) as old:
            rows = old.execute("SELECT hash, name, scopes, lines, created FROM apikeys").fetchall()
        with db.engine.begin() as conn:
            known: set[str] = set(conn.scalars(select(apikeys.c.name)))
            fresh = [
                {"hash": h, "name": n, "scopes": s, "lines": ln, "created_at": _when(c)}
                for h, n, s, ln, c in rows
                if n not in known
            ]
            if fresh:
                conn.execute(insert(apikeys), fresh)
        copied["apikeys"] = len(fresh)
        keys_file.rename(keys_file.with_name(keys_file.name + ".imported"))
    audit_file = state_dir / "audit.sqlite"
    if audit_file.is_file():
        with sqlite3.connect(audit_file) as old:
            rows = old.execute(
                "SELECT at, principal, method, path, query FROM audit ORDER BY id"
            ).fetchall()
        entries = [
            {"at": _when(at), "principal": who, "method": method, "path": path,
             "query": json.dumps(sorted(json.loads(query).items())), "status": None}
            for at, who, method, path, query in rows
        ]  # fmt: skip
        if entries:
            with db.engine.begin() as conn:
                conn.execute(insert(audit), entries)
        copied["audit"] = len(entries)
        audit_file.rename(audit_file.with_name(audit_file.name + ".imported"))
    if any(copied.values()):
        log.warning("store: imported %s from the legacy SQLite files in %s", copied, state_dir)
    return copied
