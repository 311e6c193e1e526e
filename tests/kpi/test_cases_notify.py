"""Part 4 of the review loop: a rule may route its warnings to the worker concerned too.

End to end on a real Mosquitto and the real app under uvicorn (``tests.alerts.harness``):
W2's defect rate breaches a ``notify_worker`` rule; the supervisors' webhook and the
worker's channel (a second webhook path) both get it, W2's own key lists it on
``/api/v1/me/alerts``, W1's key does not, and a rule without the option stays with the
supervisors. Rule validation of the new fields is checked on the parser alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from kpi_service.alerts.dispatch import route
from kpi_service.alerts.model import Alert, Transition
from kpi_service.alerts.rules import RulesError, parse_rules
from kpi_service.core.apikeys import KeyStore
from kpi_service.testing import setup_statements
from takt_cli.localservices import Influxd, Mosquitto
from tests.alerts.factory import Line
from tests.alerts.harness import Bus, make_app, now_aligned, serve, service, until
from tests.alerts.receivers import HttpReceiver, receiver_fixture
from tests.browser import ARTIFACTS

RULES = """
channels:
  hook: {{type: webhook, url: "{hook}/supervisors"}}
  station: {{type: webhook, url: "{hook}/station-display"}}
rules:
  - id: defects-to-worker
    metric: defect_rate
    scope: worker
    window: {{minutes: 10}}
    min_samples: 20
    warning: 10
    clear: 5
    channels: [hook]
    notify_worker: true
    worker_channels: [station]
  - id: defects-supervisors-only
    metric: defect_rate
    scope: worker
    window: {{minutes: 10}}
    min_samples: 20
    warning: 12
    clear: 5
    channels: [hook]
"""


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from receiver_fixture()


@pytest.mark.integration
async def test_a_rule_routes_the_warning_to_the_worker_concerned_too(
    tmp_path: Path,
    mosquitto: Mosquitto,
    influxd: Influxd,
    receiver: HttpReceiver,
    browser: webdriver.Chrome,
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES.format(hook=receiver.url))
    db = "notify_worker"  # an empty database: the worker page reads it too
    for statement in setup_statements(db):
        influxd.query(statement)
    app, keys = make_app(tmp_path, mosquitto.port, receiver.url, influxd.url, db, max_future_s=3600)
    assert keys is not None
    settings = app.state.settings
    store = KeyStore(settings.keys_db, settings.secret_key.get_secret_value())
    w2_key = store.create("self-w2", frozenset({"self"}), None, worker="W2")
    w2 = {"Authorization": f"Bearer {w2_key}"}
    w1 = {"Authorization": "Bearer " + store.create("self-w1", frozenset({"self"}), None,
                                                    worker="W1")}  # fmt: skip
    bus = Bus(mosquitto.port)
    line = Line(t0=now_aligned())
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        svc = service(app)
        assert (await http.get("/api/v1/me/alerts", headers=w2)).json()["alerts"] == []
        for i in range(60):  # W1 always good, W2 every second unit defective
            events = [line.unit(i, station="S1", worker="W1"),
                      line.unit(i + 0.5, station="S2", worker="W2", defect=i % 2 == 0)]  # fmt: skip
            await asyncio.to_thread(bus.publish, line.batch(events))
        await until(lambda: len(svc.store.find(status="open")) == 2, what="both rules raise")

        raised: dict[tuple[str, str], str] = {}
        while len(raised) < 3:
            got = await asyncio.to_thread(receiver.get, 15)
            body = got.json()
            if body["type"] == "alert.raised":
                raised[(got.path, body["alert"]["rule_id"])] = body["alert"]["worker"]
        assert raised == {
            ("/supervisors", "defects-to-worker"): "W2",
            ("/supervisors", "defects-supervisors-only"): "W2",
            ("/station-display", "defects-to-worker"): "W2",
        }

        mine = (await http.get("/api/v1/me/alerts", headers=w2)).json()
        assert mine["enabled"] is True
        assert [(a["rule_id"], a["station"], a["status"]) for a in mine["alerts"]] == [
            ("defects-to-worker", "S2", "active")
        ]
        assert mine["alerts"][0]["value"] >= 10
        assert (await http.get("/api/v1/me/alerts", headers=w1)).json()["alerts"] == []
        # A worker's key reads no supervisor route; a supervisor's no worker page.
        assert (await http.get("/api/v1/alerts", headers=w2)).status_code == 403
        sup = {"Authorization": f"Bearer {keys.sup_l1}"}
        assert (await http.get("/api/v1/me/alerts", headers=sup)).status_code == 403

        def visit(language: str, width: int, height: int) -> str:
            """The worker page shows the warning in its box (screenshot for the docs)."""
            browser.set_window_size(width, height)
            browser.get(f"{base}/api/v1/board/me.html?lang={language}#key={w2_key}")
            box = WebDriverWait(browser, 20).until(
                ec.visibility_of_element_located((By.CSS_SELECTOR, "#alerts [data-alert]"))
            )
            ARTIFACTS.mkdir(exist_ok=True)
            browser.save_screenshot(str(ARTIFACTS / f"me-alerts-{language}-{width}.png"))
            return str(box.text)

        text = await asyncio.to_thread(visit, "en", 390, 844)
        assert text.startswith("warning · Defect rate") and "S2" in text
        assert "警告 · 不良率" in await asyncio.to_thread(visit, "zh", 1280, 800)
    bus.close()


def _transition(kind: str, worker: str | None) -> Transition:
    alert = Alert(id="a1", rule_id="r", metric="defect_rate", scope="worker", site="s1",
                  line="L1", station="S1", worker=worker, severity="warning", status="active",
                  value=20.0, threshold=10.0, unit="%", raised_event_ts=1.0,
                  raised_at=1.0)  # fmt: skip
    return Transition.model_validate({"kind": kind, "at": 1.0, "alert": alert})


def test_routing_and_validation_of_the_worker_option() -> None:
    rules = parse_rules(
        "channels: {sup: {type: mqtt}, me: {type: mqtt}, pager: {type: mqtt}}\n"
        "rules: [{id: r, metric: defect_rate, scope: worker, warning: 10, clear: 5,"
        " channels: [sup], escalation_channels: [pager], notify_worker: true,"
        " worker_channels: [me]}]"
    )
    assert route(rules, _transition("raised", "W2")) == ("sup", "me")
    assert route(rules, _transition("cleared", "W2")) == ("sup", "me")
    assert route(rules, _transition("escalated", "W2")) == ("pager",)  # escalations: supervisors
    plain = parse_rules(
        "channels: {sup: {type: mqtt}}\n"
        "rules: [{id: r, metric: defect_rate, scope: worker, warning: 10, clear: 5,"
        " channels: [sup]}]"
    )
    assert route(plain, _transition("raised", "W2")) == ("sup",)

    bad = {
        "scope: station, notify_worker: true": "notify_worker needs scope worker",
        "scope: worker, worker_channels: [sup]": "worker_channels need notify_worker",
        "scope: worker, notify_worker: true, worker_channels: [nope]": "unknown channel 'nope'",
    }
    for fields, message in bad.items():
        text = (
            "channels: {sup: {type: mqtt}}\n"
            f"rules: [{{id: r, metric: defect_rate, {fields}, warning: 10, clear: 5}}]"
        )
        with pytest.raises(RulesError, match=message):
            parse_rules(text, "rules.yaml")
