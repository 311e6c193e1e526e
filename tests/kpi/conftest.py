"""KPI service fixtures: settings on a temp state dir, an app, and keys per scope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kpi_service.core.apikeys import KeyStore
from kpi_service.core.config import Settings
from kpi_service.main import create_app


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "development",
        "state_dir": tmp_path / "state",
        "influx_url": "http://127.0.0.1:9",
        "influx_db": "kpi_unused",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Keys:
    def __init__(self, settings: Settings) -> None:
        store = KeyStore(settings.keys_db, settings.secret_key.get_secret_value())
        self.hr = store.create("hr-alice", frozenset({"hr:read"}), None)
        self.admin = store.create("admin-bob", frozenset({"admin"}), None)
        self.sup_l1 = store.create("sup-l1", frozenset({"supervisor"}), frozenset({"L1"}))
        self.sup_l2 = store.create("sup-l2", frozenset({"supervisor"}), frozenset({"L2"}))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def keys(settings: Settings) -> Keys:
    return Keys(settings)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c
