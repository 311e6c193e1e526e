"""Upgrading from the per-file SQLite keys and audit log loses neither a key nor an entry."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient

from kpi_service.core.apikeys import hash_key
from kpi_service.main import create_app

from .conftest import auth, make_settings

# The files as the previous version created them (its CREATE statements, verbatim).
OLD_KEYS = (
    "CREATE TABLE IF NOT EXISTS apikeys ("
    " hash TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL,"
    " lines TEXT, created TEXT NOT NULL)"
)
OLD_AUDIT = (
    "CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,"
    " principal TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, query TEXT NOT NULL)"
)


def test_legacy_keys_and_audit_are_imported_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    state = settings.state_dir
    state.mkdir(parents=True)
    pepper = settings.secret_key.get_secret_value()
    old_key = "takt_legacy-key-issued-by-the-previous-version"
    with sqlite3.connect(state / "apikeys.sqlite") as db:
        db.execute(OLD_KEYS)
        db.execute(
            "INSERT INTO apikeys VALUES (?, ?, ?, ?, ?)",
            (hash_key(old_key, pepper), "sup-old", json.dumps(["supervisor"]), json.dumps(["L1"]),
             "2026-01-05T08:00:00+00:00"),
        )  # fmt: skip
    with sqlite3.connect(state / "audit.sqlite") as db:
        db.execute(OLD_AUDIT)
        for i in range(3):
            db.execute(
                "INSERT INTO audit (at, principal, method, path, query) VALUES (?, ?, ?, ?, ?)",
                (f"2026-01-0{i + 5}T09:00:00+00:00", "sup-old", "GET", "/api/v1/kpis",
                 json.dumps({"line": "L1", "start": f"2026-01-0{i + 1}"})),
            )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        me = client.get("/api/v1/me", headers=auth(old_key)).json()
        assert me == {"name": "sup-old", "scopes": ["supervisor"], "lines": ["L1"], "worker": None}
    assert not (state / "apikeys.sqlite").exists() and (state / "apikeys.sqlite.imported").exists()
    assert (state / "audit.sqlite.imported").exists()
    with TestClient(create_app(settings)) as client:  # a second start imports nothing again
        admin = client.app.state.keys.create("admin", frozenset({"admin"}), None)  # type: ignore[attr-defined]
        entries = client.get("/api/v1/audit", headers=auth(admin)).json()
    old = [e for e in entries if e["status"] is None]
    assert [e["query"]["start"] for e in old] == [["2026-01-01"], ["2026-01-02"], ["2026-01-03"]]
    assert [e["at"][:10] for e in old] == ["2026-01-05", "2026-01-06", "2026-01-07"]
    assert [e["principal"] for e in entries if e["status"] is not None] == ["sup-old"]
