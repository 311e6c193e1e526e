"""App skeleton: health, key auth, settings refusing default secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kpi_service.cli import app as cli_app
from kpi_service.core.apikeys import KeyStore, hash_key
from kpi_service.core.config import ConfigError, load_settings

from .conftest import Keys, auth


def test_healthz_needs_no_credentials(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_me_refuses_missing_and_wrong_keys(client: TestClient, keys: Keys) -> None:
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me", headers=auth("takt_nope")).status_code == 401
    assert client.get("/api/v1/me", headers={"X-API-Key": "x"}).status_code == 401
    me = client.get("/api/v1/me", headers={"X-API-Key": keys.sup_l1}).json()
    assert me == {"name": "sup-l1", "scopes": ["supervisor"], "lines": ["L1"], "worker": None}


def test_keys_are_stored_only_hashed(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "k.sqlite", "pepper")
    key = store.create("x", frozenset({"hr:read"}), None)
    store.db.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("k.sqlite*"))  # with the WAL files
    assert key.encode() not in raw
    assert hash_key(key, "pepper").encode() in raw
    assert KeyStore(tmp_path / "k.sqlite", "other-pepper").lookup(key) is None


def test_production_refuses_default_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKT_KPI_ENVIRONMENT", "production")
    monkeypatch.delenv("TAKT_KPI_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="secret_key"):
        load_settings()
    monkeypatch.setenv("TAKT_KPI_SECRET_KEY", "x")
    with pytest.raises(ConfigError, match="at least 16"):
        load_settings()  # a guessable secret is no secret
    monkeypatch.setenv("TAKT_KPI_SECRET_KEY", "s3cr3t-from-env-0")
    monkeypatch.setenv("TAKT_KPI_PSEUDONYMISE", "true")
    with pytest.raises(ConfigError, match="pseudonym_key"):
        load_settings()
    monkeypatch.setenv("TAKT_KPI_PSEUDONYM_KEY", "k")
    with pytest.raises(ConfigError, match="at least 16"):
        load_settings()
    monkeypatch.setenv("TAKT_KPI_PSEUDONYM_KEY", "pseudonym-key-0123")
    assert load_settings().environment == "production"


def test_yaml_config_names_file_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "kpi.yaml"
    config.write_text("timezone: Europe/Berlin\nstandards:\n  - {station: S1, cycle_s: -3}\n")
    monkeypatch.setenv("TAKT_KPI_CONFIG_FILE", str(config))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(config) in str(err.value) and "standards.0.cycle_s" in str(err.value)
    config.write_text("secret_key: in-a-file\n")
    with pytest.raises(ConfigError, match="secret_key"):
        load_settings()
    config.write_text("timezone: Europe/Berlin\nstandards:\n  - {station: S1, cycle_s: 30}\n")
    with pytest.raises(ConfigError, match="secret_key"):
        load_settings()  # production is the default: no secret, no start
    monkeypatch.setenv("TAKT_KPI_SECRET_KEY", "a-real-random-secret")
    loaded = load_settings()
    assert loaded.timezone == "Europe/Berlin" and loaded.standards[0].cycle_s == 30


def test_cli_creates_key_printed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKT_KPI_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("TAKT_KPI_ENVIRONMENT", "development")
    result = CliRunner().invoke(
        cli_app, ["apikey", "create", "--name", "sup", "--scopes", "supervisor", "--lines", "L1"]
    )
    assert result.exit_code == 0, result.output
    key = result.output.strip()
    settings = load_settings()
    principal = KeyStore(settings.keys_db, settings.secret_key.get_secret_value()).lookup(key)
    assert principal is not None and principal.lines == frozenset({"L1"})
    bad = CliRunner().invoke(cli_app, ["apikey", "create", "--name", "x", "--scopes", "god"])
    assert bad.exit_code == 2
