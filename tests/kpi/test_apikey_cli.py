"""`takt kpi apikey create|list|revoke|rotate` and `takt kpi db upgrade` on a real store,
seen from the API: a revoked, expired or rotated-away key is refused and the refusal is
audited under the key's name; every CLI action is in the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kpi_service.cli import app as cli_app
from kpi_service.core.audit import AuditLog
from kpi_service.core.config import load_settings
from kpi_service.main import create_app
from kpi_service.store.db import Database

from .conftest import auth

MIGRATIONS = Path(__file__).parents[2] / "kpi_service" / "store" / "migrations" / "versions"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TAKT_KPI_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("TAKT_KPI_ENVIRONMENT", "development")
    monkeypatch.delenv("TAKT_KPI_DATABASE_URL", raising=False)
    return tmp_path


def takt(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, list(args))
    return result.exit_code, result.output


def test_key_lifecycle_through_the_cli(env: Path) -> None:
    code, out = takt("db", "upgrade")
    newest = sorted(p.stem.split("_")[0] for p in MIGRATIONS.glob("0*.py"))[-1]
    assert (code, out.strip()) == (0, f"store at revision {newest}")
    code, hr = takt("apikey", "create", "--name", "hr", "--scopes", "hr:read")
    assert code == 0
    code, sup = takt(
        "apikey", "create", "--name", "sup", "--scopes", "supervisor", "--lines", "L1",
        "--expires-in-days", "30",
    )  # fmt: skip
    assert code == 0
    hr, sup = hr.strip(), sup.strip()
    settings = load_settings()
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/me", headers=auth(hr)).status_code == 200

        code, listing = takt("apikey", "list")
        assert code == 0
        rows = {line.split("│")[1].strip(): line for line in listing.splitlines() if "│" in line}
        assert "active" in rows["hr"] and "active" in rows["sup"]
        expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")
        assert expires in rows["sup"]
        assert hr not in listing and sup not in listing  # never the secret

        assert takt("apikey", "revoke", "sup")[0] == 0
        assert client.get("/api/v1/me", headers=auth(sup)).status_code == 401
        assert "revoked" in takt("apikey", "list")[1]
        code, out = takt("apikey", "revoke", "nobody")
        assert code == 2 and "no key named 'nobody'" in out

        code, new_hr = takt("apikey", "rotate", "hr")
        assert code == 0
        assert client.get("/api/v1/me", headers=auth(hr)).status_code == 401
        assert client.get("/api/v1/me", headers=auth(new_hr.strip())).json()["name"] == "hr"

        code, out = takt("apikey", "create", "--name", "x", "--scopes", "hr:read",
                         "--expires-in-days", "3", "--expires-on", "2030-01-01")  # fmt: skip
        assert code == 2 and "not both" in out
        code, out = takt("apikey", "create", "--name", "x", "--scopes", "hr:read",
                         "--expires-on", "2001-01-01")  # fmt: skip
        assert code == 2 and "past" in out

    entries = AuditLog(Database(settings.store_url)).entries(limit=1000)
    api = [(e.principal, e.status) for e in entries if e.method == "GET"]
    assert api == [("hr", 200), ("revoked:sup", 401), ("invalid-key", 401), ("hr", 200)]
    cli = [(e.path, e.query.get("name"), e.status) for e in entries if e.method == "CLI"]
    assert cli == [
        ("kpi apikey create", ["hr"], 0),
        ("kpi apikey create", ["sup"], 0),
        ("kpi apikey revoke", ["sup"], 0),
        ("kpi apikey revoke", ["nobody"], 2),
        ("kpi apikey rotate", ["hr"], 0),
        ("kpi apikey create", ["x"], 2),
    ]
    assert all(e.principal == "cli" for e in entries if e.method == "CLI")


def test_an_expired_key_is_refused_by_the_api_and_listed_as_expired(env: Path) -> None:
    code, key = takt("apikey", "create", "--name", "temp", "--scopes", "hr:read",
                     "--expires-in-days", "1")  # fmt: skip
    assert code == 0
    settings = load_settings()
    db = Database(settings.store_url)
    with db.engine.begin() as conn:  # a day passes
        conn.execute(
            sa.text("UPDATE apikeys SET expires_at = :t"),
            {"t": datetime.now(UTC) - timedelta(minutes=1)},
        )
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/me", headers=auth(key.strip())).status_code == 401
    assert "expired" in takt("apikey", "list")[1]
    assert AuditLog(db).entries()[-1].principal == "expired:temp"
