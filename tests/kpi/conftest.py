"""KPI service fixtures: settings on a temp state dir, an app, and keys per scope."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from itertools import count
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kpi_service.core.apikeys import KeyStore
from kpi_service.core.config import Settings
from kpi_service.main import create_app
from kpi_service.testing import (
    AnyEvent,
    lines_of,
    point_time,
    roll_up,
    setup_statements,
)
from takt_cli.localservices import Influxd
from takt_wire.events import GapEvent, UnitEvent, WorkEvent


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings on a temp state dir; ``influx_url``/``influx_db`` go into the ``influx:``
    section (the service's current names), so tests read like the old flat keys."""
    influx = {"url": "http://127.0.0.1:9", "database": "kpi_unused"}
    if "influx_url" in overrides:
        influx["url"] = str(overrides.pop("influx_url"))
    if "influx_db" in overrides:
        influx["database"] = str(overrides.pop("influx_db"))
    values: dict[str, object] = {
        "environment": "development",
        "state_dir": tmp_path / "state",
        "influx": influx,
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


# --- data in a real influxd -------------------------------------------------------------

_dbs = count()


def load_events(influxd: Influxd, events: list[AnyEvent], *, rollups: bool = True) -> str:
    """A fresh database holding ``events`` as the collector would write them; returns its name."""
    db = f"kpi_test_{next(_dbs)}"
    for statement in setup_statements(db):
        influxd.query(statement)
    influxd.write(db, lines_of(events))
    if rollups:
        times = [point_time(e) for e in events]
        hour = 3600 * 10**9
        start = min(times) // hour * hour
        end = (max(times) // hour + 1) * hour
        roll_up(influxd.url, db, start, end)
    return db


class Maker:
    """Builds events with a per-agent sequence, like an edge agent."""

    def __init__(self, site: str = "S1", agent: str = "A1") -> None:
        self.site, self.agent = site, agent
        self.seq = count(1)

    def _base(self, line: str, station: str, worker: str, ts: str) -> dict[str, object]:
        return {
            "site": self.site,
            "line": line,
            "station": station,
            "device": f"dev-{station}",
            "worker": worker,
            "ts": datetime.fromisoformat(ts),
            "agent": self.agent,
            "boot": "b1",
            "seq": next(self.seq),
        }

    def unit(
        self, line: str, station: str, worker: str, ts: str, outcome: str = "good",
        code: str | None = None, n: int = 1, serial: str | None = None,
    ) -> UnitEvent:  # fmt: skip
        return UnitEvent(
            **self._base(line, station, worker, ts),
            outcome=outcome, defect_code=code, count=n, serial=serial,
        )  # fmt: skip

    def gap(self, line: str, station: str, worker: str, start: str, end: str) -> GapEvent:
        return GapEvent(
            **self._base(line, station, worker, end),
            start=datetime.fromisoformat(start),
            reason="no_history",
        )

    def work(
        self, line: str, station: str, worker: str, start: str, end: str,
        down: dict[str, float] | None = None,
    ) -> WorkEvent:  # fmt: skip
        span = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
        down = down or {}
        return WorkEvent(
            **self._base(line, station, worker, end),
            start=datetime.fromisoformat(start),
            work_s=span,
            effective_s=span - sum(down.values()),
            down_s=down,
        )
