"""Device tests end at the HR API: the agent's events, stored as the collector writes them
(its line format and rollups), read back per worker and per station through
``GET /api/v1/kpis``, must equal the device's own ledger."""

from __future__ import annotations

import asyncio
from datetime import UTC
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from kpi_service.main import create_app
from kpi_service.testing import AnyEvent
from takt_cli.localservices import Influxd
from takt_wire.events import UNATTRIBUTED, Event
from tests.agent.helpers import EventSubscriber, Ledger, assert_matches
from tests.kpi.conftest import Keys, auth, load_events, make_settings

EVENT: TypeAdapter[AnyEvent] = TypeAdapter(Event)  # type: ignore[arg-type, unused-ignore]


def without(ledger: Ledger, worker: str) -> Ledger:
    out = Ledger()
    out.good.update({w: n for w, n in ledger.good.items() if w != worker})
    out.defects.update({k: n for k, n in ledger.defects.items() if k[0] != worker})
    return out


class HrApi:
    def __init__(self, influxd: Influxd, tmp_path: Path) -> None:
        self.influxd, self.tmp_path = influxd, tmp_path

    def figures(self, events: list[AnyEvent]) -> tuple[Ledger, Ledger]:
        """Per worker and per station, as ``GET /api/v1/kpis`` reports them."""
        db = load_events(self.influxd, events)
        days = sorted({e.ts.astimezone(UTC).date() for e in events})
        settings = make_settings(
            self.tmp_path / "hr", influx_url=self.influxd.url, influx_db=db, timezone="UTC"
        )
        found = (Ledger(), Ledger())
        hr_key = Keys(settings).hr
        with TestClient(create_app(settings)) as client:
            for entity, out in zip(("worker", "station"), found, strict=True):
                r = client.get(
                    "/api/v1/kpis",
                    params={"start": days[0].isoformat(), "end": days[-1].isoformat(),
                            "entity": entity, "limit": 10_000},
                    headers=auth(hr_key),
                )  # fmt: skip
                assert r.status_code == 200, r.text
                for row in r.json()["items"]:
                    out.good[row[entity]] += row["units_good"]
                    for code, n in row["defects_by_code"].items():
                        out.defects[(row[entity], code)] += int(n)
        return found

    async def check(self, sub: EventSubscriber, want: Ledger) -> None:
        """Units and defects by code per worker (units made with nobody logged in are no
        worker's) and in all (per station) equal ``want``."""
        with sub.lock:
            events = [EVENT.validate_python(e) for e in sub.events.values()]
        workers, stations = await asyncio.to_thread(self.figures, events)
        want = Ledger(good=want.good, defects=want.defects)
        assert_matches(workers, without(want, UNATTRIBUTED))
        assert sum(stations.good.values()) == sum(want.good.values())
        assert sum(stations.defects.values()) == sum(want.defects.values())


@pytest.fixture
def hr(influxd: Influxd, tmp_path: Path) -> HrApi:
    return HrApi(influxd, tmp_path)
