"""End to end on a real Mosquitto: batches in, alert out on MQTT and a webhook, ack, clear."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kpi_service.alerts.channels.web import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_webhook
from takt_cli.localservices import Influxd, Mosquitto
from tests.alerts.factory import Line
from tests.alerts.harness import Bus, make_app, now_aligned, serve, service, until
from tests.alerts.receivers import HttpReceiver, Received, receiver_fixture

SECRET = "e2e-hook-secret"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from receiver_fixture()


@pytest.fixture(autouse=True)
def hook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKT_TEST_HOOK_SECRET", SECRET)


async def next_hook(receiver: HttpReceiver, kind: str) -> Received:
    """The next webhook call of ``kind`` (others, e.g. from earlier steps, are skipped)."""
    while True:
        got = await asyncio.to_thread(receiver.get, 15)
        if got.json()["type"] == f"alert.{kind}":
            return got


def produce(bus: Bus, line: Line, t0: float, seconds: int, w2_defect_every: int) -> None:
    """One batch per second: W1 at S1 always good, W2 at S2 with the given defect rate."""
    for i in range(seconds):
        t = t0 + i
        events = [
            line.unit(t, station="S1", worker="W1"),
            line.unit(t + 0.5, station="S2", worker="W2",
                      defect=bool(w2_defect_every) and i % w2_defect_every == 0),
        ]  # fmt: skip
        bus.publish(line.batch(events))


async def test_alert_raised_delivered_acknowledged_cleared(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, receiver: HttpReceiver
) -> None:
    # The line runs faster than the wall clock (ten minutes of units published at once),
    # so this engine admits event times up to an hour ahead.
    app, keys = make_app(
        tmp_path, mosquitto.port, receiver.url, influxd.url, "alerts_e2e", max_future_s=3600
    )
    assert keys is not None
    alerts_bus = Bus(mosquitto.port, subscribe="takt/v1/s1/alerts/#")
    bus = Bus(mosquitto.port)
    line = Line(t0=now_aligned())
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        svc = service(app)
        # Healthy production first, then W2 turns out every second unit defective.
        await asyncio.to_thread(produce, bus, line, 0, 30, 0)
        await asyncio.to_thread(produce, bus, line, 30, 30, 2)

        hook = await next_hook(receiver, "raised")
        assert verify_webhook(SECRET.encode(), hook.headers[TIMESTAMP_HEADER], hook.body,
                              hook.headers[SIGNATURE_HEADER])  # fmt: skip
        alert = hook.json()["alert"]
        assert (alert["worker"], alert["station"], alert["line"]) == ("W2", "S2", "L1")
        assert alert["metric"] == "defect_rate" and alert["value"] >= 10
        topic, payload = await asyncio.to_thread(alerts_bus.received.get, True, 15)
        assert topic == "takt/v1/s1/alerts/L1/S2"
        assert json.loads(payload)["alert"]["id"] == alert["id"]

        # Listed for the supervisor of L1, invisible to the one of L2.
        sup1 = {"Authorization": f"Bearer {keys.sup_l1}"}
        sup2 = {"Authorization": f"Bearer {keys.sup_l2}"}
        listed = (await http.get("/api/v1/alerts", params={"status": "open"}, headers=sup1)).json()
        assert [a["id"] for a in listed] == [alert["id"]]
        assert (await http.get("/api/v1/alerts", headers=sup2)).json() == []
        assert (await http.get("/api/v1/alerts")).status_code == 401
        board1 = (await http.get("/api/v1/alerts/live", headers=sup1)).json()
        board2 = (await http.get("/api/v1/alerts/live", headers=sup2)).json()
        assert [ln["line"] for ln in board1["lines"]] == ["L1"] and board1["alerts"]
        assert board2 == {**board2, "lines": [], "alerts": []}, "another line's data is invisible"
        assert (
            await http.post(f"/api/v1/alerts/{alert['id']}/ack", headers=sup2)
        ).status_code == 404

        acked = await http.post(f"/api/v1/alerts/{alert['id']}/ack", headers=sup1)
        assert acked.status_code == 200, acked.text
        assert acked.json()["status"] == "acknowledged"
        assert acked.json()["acknowledged_by"] == "sup-l1"
        again = await http.post(f"/api/v1/alerts/{alert['id']}/ack", headers=sup1)
        assert again.status_code == 409
        await next_hook(receiver, "acknowledged")

        # W2 recovers: ten minutes of good units bring the rate under the clear level.
        await asyncio.to_thread(produce, bus, line, 60, 600, 0)
        cleared = await next_hook(receiver, "cleared")
        assert cleared.json()["alert"]["id"] == alert["id"]

        detail = (await http.get(f"/api/v1/alerts/{alert['id']}", headers=sup1)).json()
        assert [t["kind"] for t in detail["transitions"]] == ["raised", "acknowledged", "cleared"]
        assert all(t["at"] > 0 for t in detail["transitions"])
        assert detail["alert"]["cleared_event_ts"] is not None
        await until(
            lambda: all(d["status"] != "pending" for d in svc.store.deliveries(alert["id"]))
        )
        statuses = {
            (d["kind"], d["channel"]): d["status"] for d in svc.store.deliveries(alert["id"])
        }
        assert statuses[("raised", "hook")] == "delivered"
        assert statuses[("raised", "bus")] == "delivered"
        assert statuses[("cleared", "hook")] == "delivered"

        # Replayed backlog (historical) with terrible figures, and garbage: neither raises.
        replay = Line(agent="a2", t0=line.t0, historical=True)
        bus.publish(replay.batch(replay.units(700, 100, station="S3", worker="W3", defect_every=1)))
        bus.raw("takt/v1/s1/events/a3", b"{not json")
        await until(lambda: svc.engine.counters.historical >= 100 and svc.invalid_batches == 1)
        await asyncio.sleep(0.5)  # a few ticks
        assert svc.store.find(status="open") == []
    bus.close()
    alerts_bus.close()


async def test_rules_are_edited_and_reloaded_by_admins_only(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, receiver: HttpReceiver
) -> None:
    app, keys = make_app(tmp_path, mosquitto.port, receiver.url, influxd.url, "alerts_rules")
    assert keys is not None
    admin = {"Authorization": f"Bearer {keys.admin}"}
    sup = {"Authorization": f"Bearer {keys.sup_l1}"}
    rules_file = tmp_path / "rules.yaml"
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        url = "/api/v1/alerts/rules"
        assert (await http.get(url, headers=sup)).status_code == 403
        current = (await http.get(url, headers=admin)).json()
        assert [r["id"] for r in current["rules"]] == ["defects"]

        stalled = {"id": "stalled", "metric": "no_output", "scope": "station",
                   "window": {"minutes": 5}, "warning": 3, "clear": 0.5}  # fmt: skip
        current["rules"].append(stalled)
        assert (await http.put(url, json=current, headers=sup)).status_code == 403
        saved = await http.put(url, json=current, headers=admin)
        assert saved.status_code == 200, saved.text
        assert "stalled" in rules_file.read_text()
        assert service(app).engine.rules.rule("stalled") is not None

        current["rules"][1]["clear"] = 5  # clear above warning: no hysteresis
        refused = await http.put(url, json=current, headers=admin)
        assert refused.status_code == 422 and "clear must be below warning" in refused.text
        assert "stalled" in rules_file.read_text(), "a refused edit leaves the file alone"

        rules_file.write_text("rules: [")
        broken = await http.post(f"{url}/reload", headers=admin)
        assert broken.status_code == 422 and "rules.yaml" in broken.text
        assert service(app).rules.rule("stalled") is not None, "the rules in force stay"
