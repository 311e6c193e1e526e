"""The board in a real headless Chromium: stations shown, an alert appears live, ack works."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from takt_cli.localservices import Influxd, Mosquitto
from tests.alerts.factory import Line
from tests.alerts.harness import Bus, make_app, now_aligned, serve, service, until
from tests.alerts.receivers import HttpReceiver, receiver_fixture
from tests.browser import ARTIFACTS


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from receiver_fixture()


def produce(bus: Bus, line: Line, t0: float, seconds: int, w2_defect_every: int) -> None:
    """A unit a second at S1 (W1) and S2 (W2); work intervals every 10 s; both running."""
    if t0 == 0:
        bus.publish(line.batch([line.state(0, "running", station=s) for s in ("S1", "S2")]))
    for i in range(seconds):
        t = t0 + i
        events: list[Any] = [
            line.unit(t + 0.2, station="S1", worker="W1"),
            line.unit(t + 0.5, station="S2", worker="W2",
                      defect=bool(w2_defect_every) and i % w2_defect_every == 0),
        ]  # fmt: skip
        if (t + 1) % 10 == 0:
            events += [
                line.work(t - 9, t + 1, station="S1", worker="W1"),
                line.work(t - 9, t + 1, station="S2", worker="W2", down=2),
            ]
        bus.publish(line.batch(events))


async def test_board_shows_stations_live_alert_and_acknowledges(
    tmp_path: Path,
    mosquitto: Mosquitto,
    influxd: Influxd,
    receiver: HttpReceiver,
    browser: webdriver.Chrome,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TAKT_TEST_HOOK_SECRET", "board-secret")
    app, keys = make_app(tmp_path, mosquitto.port, receiver.url, influxd.url, "alerts_board")
    assert keys is not None
    bus = Bus(mosquitto.port)
    line = Line(t0=now_aligned())
    wait = WebDriverWait(browser, 20)

    async with serve(app) as base:
        svc = service(app)
        await asyncio.to_thread(produce, bus, line, 0, 30, 0)

        def log_in() -> None:
            browser.get(f"{base}/api/v1/board/?lang=zh")
            browser.find_element(By.ID, "key").send_keys(keys.sup_l1)
            browser.find_element(By.CSS_SELECTOR, "#login button").click()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '[data-station="S2"]')))

        await asyncio.to_thread(log_in)
        stations = browser.find_elements(By.CSS_SELECTOR, ".station")
        assert {s.get_attribute("data-station") for s in stations} == {"S1", "S2"}
        assert browser.find_element(By.CSS_SELECTOR, '[data-worker="W2"] svg')
        assert browser.find_element(By.ID, "status").text == "在线"

        # W2 goes bad: the alert must appear without reloading the page.
        await asyncio.to_thread(produce, bus, line, 30, 30, 2)
        await until(lambda: len(svc.engine.open_alerts()) == 1, what="raised")
        [alert] = svc.engine.open_alerts()
        selector = f'li.alert[data-id="{alert.id}"]'
        item = await asyncio.to_thread(
            wait.until, ec.presence_of_element_located((By.CSS_SELECTOR, selector))
        )
        assert "W2" in item.text and "S2" in item.text and "不良率" in item.text

        def switch_language_and_acknowledge() -> None:
            browser.find_element(By.ID, "lang").click()
            wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "h1"), "Supervisor"))
            browser.find_element(By.CSS_SELECTOR, f"{selector} button.ack").click()
            wait.until(ec.text_to_be_present_in_element(
                (By.CSS_SELECTOR, f"{selector} button.ack"), "Acknowledged"))  # fmt: skip

        await asyncio.to_thread(switch_language_and_acknowledge)
        # The next live snapshot shows W2's defect rate above the line (marked bad).
        await asyncio.to_thread(
            wait.until,
            ec.presence_of_element_located((By.CSS_SELECTOR, '[data-worker="W2"] .bad')),
        )
        assert browser.find_element(By.CSS_SELECTOR, '[data-station="S2"] .state').text == "running"
        stored = svc.store.get(alert.id)
        assert stored is not None and stored.status == "acknowledged"
        assert stored.acknowledged_by == "sup-l1"
        ARTIFACTS.mkdir(exist_ok=True)
        assert await asyncio.to_thread(browser.save_screenshot, str(ARTIFACTS / "alerts-board.png"))
    bus.close()
