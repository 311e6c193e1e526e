"""Every KPI route refuses missing/invalid credentials and wrong scopes; every request is
audited with its parameters and status."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kpi_service.core.apikeys import KeyStore, Principal, Refused
from kpi_service.core.audit import AuditLog
from kpi_service.main import create_app
from kpi_service.store.db import Database

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
        if "/schemes" in path or "/scores" in path:
            continue  # scoped by the scheme's lines, not a line parameter: see test_scores.py
        if path.endswith("/self-keys"):
            continue  # lists only keys of the caller's lines: see test_selfservice.py
        if path.endswith("/cases/{case_id}"):
            continue  # another line's case is a 404, whatever the line asked: test_cases_access.py
        # A supervisor asking for a line it does not supervise: refused before any data is read.
        response = client.get(path, params={**PARAMS, "line": "L1"}, headers=auth(keys.sup_l2))
        assert response.status_code == 403, path


def test_every_request_is_audited_with_its_status(client: TestClient, keys: Keys) -> None:
    client.get("/api/v1/calendar/shifts", params=PARAMS, headers=auth(keys.hr))
    client.get("/api/v1/kpis", params={**PARAMS, "line": "L1"}, headers=auth(keys.sup_l2))
    client.get("/api/v1/kpis?worker=W1&worker=W2&worker=W3", headers=auth(keys.hr))
    client.get("/api/v1/me")
    client.get("/api/v1/me", headers=auth("takt_nope"))
    client.get("/api/v1/audit", headers=auth(keys.hr))
    entries = client.get("/api/v1/audit", headers=auth(keys.admin)).json()
    assert [(e["principal"], e["path"], e["status"]) for e in entries] == [
        ("hr-alice", "/api/v1/calendar/shifts", 200),
        ("sup-l2", "/api/v1/kpis", 403),  # refused reads are audited too
        ("hr-alice", "/api/v1/kpis", 422),  # start/end missing
        ("anonymous", "/api/v1/me", 401),
        ("invalid-key", "/api/v1/me", 401),
        ("hr-alice", "/api/v1/audit", 403),
    ]
    assert entries[1]["query"] == {"start": ["2026-03-10"], "end": ["2026-03-10"], "line": ["L1"]}
    assert entries[2]["query"] == {"worker": ["W1", "W2", "W3"]}  # every repeat kept
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)("/api/v1/audit", headers=auth(keys.admin))
        assert response.status_code == 405
    again = client.get("/api/v1/audit", headers=auth(keys.admin)).json()
    assert again[: len(entries)] == entries
    assert [(e["method"], e["status"]) for e in again[len(entries) :]] == [("GET", 200)] + [
        (m, 405) for m in ("POST", "PUT", "PATCH", "DELETE")
    ]
    mine = client.get("/api/v1/audit", params={"principal": "sup-l2"}, headers=auth(keys.admin))
    assert [e["path"] for e in mine.json()] == ["/api/v1/kpis"]


def test_a_request_is_refused_when_it_cannot_be_audited(
    client: TestClient, keys: Keys, tmp_path: Path
) -> None:
    """No answer leaves without an audit entry: a broken audit store means a 500, no data."""
    me = client.get("/api/v1/me", headers=auth(keys.hr))
    assert me.status_code == 200
    # An audit store without its table (never migrated): every insert fails in SQLite.
    unmigrated = Database(tmp_path / "empty" / "audit.sqlite", migrate=False)
    client.app.state.audit = AuditLog(unmigrated)  # type: ignore[attr-defined]
    response = client.get("/api/v1/me", headers=auth(keys.hr))
    assert response.status_code == 500
    assert response.json() == {"detail": "the request could not be audited, so it was not answered"}


def test_keys_and_audit_work_the_same_on_postgresql(store_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=store_url)
    keys = Keys(settings)
    with TestClient(create_app(settings)) as api:
        assert api.get("/api/v1/me", headers=auth(keys.sup_l1)).json()["lines"] == ["L1"]
        api.get("/api/v1/kpis?worker=W1&worker=W2", headers=auth(keys.hr + "x"))
        entries = api.get("/api/v1/audit", headers=auth(keys.admin)).json()
    assert [(e["principal"], e["status"], e["query"]) for e in entries] == [
        ("sup-l1", 200, {}),
        ("invalid-key", 401, {"worker": ["W1", "W2"]}),
    ]


def test_a_key_sent_with_a_body_is_looked_up_once_off_the_event_loop(
    client: TestClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The guard looks the key up before the body is read (in a worker thread: the lookup
    # is a database write); the route's dependency reuses that answer.
    calls: list[bool] = []
    original = KeyStore.authenticate

    def counting(self: KeyStore, key: str) -> Principal | Refused | None:
        try:
            asyncio.get_running_loop()
            calls.append(True)  # on the event loop
        except RuntimeError:
            calls.append(False)
        return original(self, key)

    monkeypatch.setattr(KeyStore, "authenticate", counting)
    r = client.post(
        "/api/v1/targets/1/acknowledgement", json={"worker": "W1"}, headers=auth(keys.admin)
    )
    assert r.status_code == 404, r.text
    assert calls == [False]
    assert client.get("/api/v1/kpis", params=PARAMS, headers=auth(keys.hr)).status_code != 401
    assert calls == [False, False]
