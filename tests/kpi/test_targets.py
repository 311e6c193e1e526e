"""Targets (who may set them, history, acknowledgement) and progress on the simulated month,
checked against the simulators' ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kpi_service.core.apikeys import KeyStore
from kpi_service.main import create_app
from takt_cli.localservices import Influxd

from . import month
from .conftest import Keys, auth, load_events, make_settings

APRIL_W01 = {"kind": "worker", "subject": "W01", "line": "L1", "metric": "units_good",
             "period": "month", "period_start": "2026-04-01", "value": 8000}  # fmt: skip
AT = "2026-04-10T12:00:00Z"


@pytest.fixture(scope="module")
def ledger() -> dict[str, Any]:
    return month.ledger()


@pytest.fixture(scope="module")
def db(influxd: Influxd, ledger: dict[str, Any]) -> str:
    return load_events(influxd, month.events(ledger))


@pytest.fixture
def api(tmp_path: Path, influxd: Influxd, db: str) -> Iterator[tuple[TestClient, Keys, str]]:
    settings = make_settings(
        tmp_path, influx_url=influxd.url, influx_db=db, timezone="UTC", standards=month.STANDARDS
    )
    with TestClient(create_app(settings)) as client:
        keys = Keys(settings)
        hr_write = KeyStore(settings.keys_db, settings.secret_key.get_secret_value()).create(
            "hr-writer", frozenset({"hr:read", "hr:write"}), None
        )
        yield client, keys, hr_write


def test_who_may_set_targets_and_the_history_kept(api: tuple[TestClient, Keys, str]) -> None:
    client, keys, hr_write = api

    def post(body: dict[str, Any], key: str) -> Any:
        return client.post("/api/v1/targets", json=body, headers=auth(key))

    first = post(APRIL_W01, keys.sup_l1)
    assert first.status_code == 201, first.text
    r = post(APRIL_W01, keys.sup_l2)
    assert r.status_code == 403 and "line 'L1' is not supervised by this key" in r.text
    assert post(APRIL_W01, keys.hr).status_code == 403  # reading HR cannot set targets
    assert post({**APRIL_W01, "value": 8200}, hr_write).status_code == 201
    r = post({**APRIL_W01, "metric": "speed"}, keys.sup_l1)
    assert r.status_code == 422 and "unknown metric 'speed'" in r.text
    r = post({**APRIL_W01, "period_start": "2026-04-02"}, keys.sup_l1)
    assert r.status_code == 422 and "first day of a month" in r.text

    current = client.get("/api/v1/targets", headers=auth(keys.sup_l1)).json()
    assert [(t["value"], t["set_by"]) for t in current] == [(8200, "hr-writer")]
    history = client.get("/api/v1/targets", params={"history": True}, headers=auth(keys.hr))
    assert [(t["value"], t["set_by"]) for t in history.json()] == [
        (8000, "sup-l1"), (8200, "hr-writer")
    ]  # fmt: skip
    assert client.get("/api/v1/targets", headers=auth(keys.sup_l2)).json() == []
    r = client.get("/api/v1/targets", params={"line": "L1"}, headers=auth(keys.sup_l2))
    assert r.status_code == 403

    target_id = current[0]["id"]
    ack = f"/api/v1/targets/{target_id}/acknowledgement"
    assert client.post(ack, json={"worker": "W01"}, headers=auth(keys.sup_l2)).status_code == 403
    assert client.post(ack, json={"worker": "W02"}, headers=auth(keys.sup_l1)).status_code == 409
    assert client.post(ack, json={"worker": "W01"}, headers=auth(keys.sup_l1)).status_code == 201
    again = client.post(ack, json={"worker": "W01"}, headers=auth(keys.sup_l1))
    assert again.status_code == 409 and "already acknowledged" in again.text
    missing = client.post("/api/v1/targets/999/acknowledgement", json={"worker": "W01"},
                          headers=auth(keys.sup_l1))  # fmt: skip
    assert missing.status_code == 404
    acked = client.get("/api/v1/targets", headers=auth(keys.hr)).json()
    assert acked[0]["acknowledged_at"] is not None

    audit = client.get("/api/v1/audit", params={"limit": 1000}, headers=auth(keys.admin)).json()
    changes = [(e["principal"], e["status"]) for e in audit if e["path"] == "/api/v1/targets"
               and e["method"] == "POST"]  # fmt: skip
    assert changes == [("sup-l1", 201), ("sup-l2", 403), ("hr-alice", 403), ("hr-writer", 201),
                       ("sup-l1", 422), ("sup-l1", 422)]  # fmt: skip


def test_progress_of_a_worker_and_a_line(
    api: tuple[TestClient, Keys, str], ledger: dict[str, Any]
) -> None:
    client, keys, _ = api
    line_target = {"kind": "line", "subject": "L1", "line": "L1", "metric": "quality_rate",
                   "period": "month", "period_start": "2026-04-01", "value": 0.95}  # fmt: skip
    for body in (APRIL_W01, line_target):
        assert (
            client.post("/api/v1/targets", json=body, headers=auth(keys.sup_l1)).status_code == 201
        )
    r = client.get("/api/v1/progress", params={"line": "L1", "at": AT}, headers=auth(keys.sup_l1))
    assert r.status_code == 200, r.text
    by_kind = {p["target"]["kind"]: p for p in r.json()}

    so_far = [row for row in ledger["rows"] if "2026-04-01" <= row["start"][:10] <= "2026-04-10"]
    elapsed = (9 * 24 + 12) / (30 * 24)
    worker = by_kind["worker"]
    good = sum(row["good"] for row in so_far if row["worker"] == "W01")
    assert worker["value"] == good and worker["elapsed"] == pytest.approx(elapsed, rel=1e-12)
    assert worker["projected"] == pytest.approx(good / elapsed, rel=1e-12)
    assert worker["on_track"] == (good / elapsed >= 8000)

    line = by_kind["line"]
    l1 = [row for row in so_far if row["line"] == "L1"]
    units = sum(row["good"] + sum(row["defects"].values()) for row in l1)
    defects = sum(sum(row["defects"].values()) for row in l1)
    assert line["value"] == pytest.approx(1 - defects / units, rel=1e-12)
    assert line["projected"] == line["value"]  # a rate is projected as it stands
    assert line["on_track"] == (1 - defects / units >= 0.95)

    only_w01 = client.get("/api/v1/progress", params={"line": "L1", "worker": "W01", "at": AT},
                          headers=auth(keys.sup_l1)).json()  # fmt: skip
    assert [p["target"]["subject"] for p in only_w01] == ["W01"]
    r = client.get("/api/v1/progress", params={"line": "L1", "at": AT}, headers=auth(keys.sup_l2))
    assert r.status_code == 403
