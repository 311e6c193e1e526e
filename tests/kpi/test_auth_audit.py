"""Every KPI route refuses missing/invalid credentials and wrong scopes; reads are audited."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kpi_service.core.audit import AuditLog
from kpi_service.main import create_app

from .conftest import Keys, auth, make_settings

PARAMS = {"start": "2026-03-10", "end": "2026-03-10"}


def my_routes(client: TestClient) -> list[str]:
    """Every GET route of the HR API (alerts/board routes belong to their own tests)."""
    spec = client.get("/openapi.json").json()
    paths = [
        path.replace("{worker_id}", "W1")
        for path, ops in spec["paths"].items()
        if path.startswith("/api/v1") and "get" in ops
        and not any(p in path for p in ("/alerts", "/board"))
    ]  # fmt: skip
    assert len(paths) >= 8
    return paths


def test_every_route_refuses_missing_or_invalid_credentials(client: TestClient, keys: Keys) -> None:
    for path in my_routes(client):
        assert client.get(path, params=PARAMS).status_code == 401, path
        bad = client.get(path, params=PARAMS, headers=auth(keys.hr + "x"))
        assert bad.status_code == 401, path
        assert client.get(path, params=PARAMS, headers={"X-API-Key": ""}).status_code == 401
    assert client.get("/healthz").status_code == 200


def test_production_serves_no_anonymous_api_docs(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, environment="production", secret_key="s" * 32)
    with TestClient(create_app(settings)) as prod:
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert prod.get(path).status_code == 404
        assert prod.get("/healthz").status_code == 200


def test_wrong_scope_is_forbidden(client: TestClient, keys: Keys) -> None:
    for key in (keys.hr, keys.sup_l1):
        assert client.get("/api/v1/audit", headers=auth(key)).status_code == 403
    for path in my_routes(client):
        if path.endswith(("/me", "/audit", "/calendar/shifts")):  # no per-line data
            continue
        # A supervisor asking for a line it does not supervise: refused before any data is read.
        response = client.get(path, params={**PARAMS, "line": "L1"}, headers=auth(keys.sup_l2))
        assert response.status_code == 403, path


def test_reads_are_audited_and_the_log_is_append_only(client: TestClient, keys: Keys) -> None:
    client.get("/api/v1/calendar/shifts", params=PARAMS, headers=auth(keys.hr))
    client.get("/api/v1/kpis", params={**PARAMS, "line": "L1"}, headers=auth(keys.sup_l2))
    entries = client.get("/api/v1/audit", headers=auth(keys.admin)).json()
    assert [(e["principal"], e["path"]) for e in entries] == [
        ("hr-alice", "/api/v1/calendar/shifts"),
        ("sup-l2", "/api/v1/kpis"),  # refused reads are audited too
        ("admin-bob", "/api/v1/audit"),
    ]
    assert entries[1]["query"]["line"] == "L1"
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)("/api/v1/audit", headers=auth(keys.admin))
        assert response.status_code == 405
    again = client.get("/api/v1/audit", headers=auth(keys.admin)).json()
    assert again[: len(entries)] == entries and len(again) == len(entries) + 1


def test_audit_database_refuses_updates_and_deletes(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.sqlite")
    log.record("x", "GET", "/api/v1/kpis", {})
    with (
        sqlite3.connect(log.path) as db,
        pytest.raises(sqlite3.IntegrityError, match="append-only"),
    ):
        db.execute("UPDATE audit SET principal = 'y'")
    with (
        sqlite3.connect(log.path) as db,
        pytest.raises(sqlite3.IntegrityError, match="append-only"),
    ):
        db.execute("DELETE FROM audit")
    assert [e.principal for e in log.entries()] == ["x"]
