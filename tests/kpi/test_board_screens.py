"""The board in headless Chromium, as a supervisor's tablet pairs with it and as a wall screen.

Real data goes through the real path: canonical batches over a real Mosquitto into the
running alert engine of the real app (under uvicorn); the tablet redeems a pairing code
from the QR link; the figures and texts are read off the page and checked against what
the test itself sent (event times in Asia/Shanghai line time, counts, rule levels).
Screenshots at desktop, tablet and wall sizes, in English and Chinese, go to
test-artifacts/board-<size>-<lang>.png.

Scenario (event time ``t`` seconds after ``t0`` = 15 min before the test starts):
S1 running (KPI standard 1 s a unit), W1 logged in at t=100 at 64.7 % of standard
(coloured by the efficiency rule), an alert on W1 now in hysteresis (7.5 %, clears at
<= 5 %); S2 down ("fault") since t=180 (12 min), W2 logged in; S3 running with only
unattributed output (nobody logged in); S4 last heard at t=300 (stale past 300 s);
S5 with W5, whose critical alert sup-l1 acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from kpi_service.core.config import Standard
from takt_cli.localservices import Influxd, Mosquitto
from takt_wire.events import UNATTRIBUTED
from tests.alerts.factory import Line
from tests.alerts.harness import Bus, make_app, now_aligned, serve, service, until
from tests.browser import ARTIFACTS

pytestmark = pytest.mark.integration

RULES = """
rules:
  - id: defects
    metric: defect_rate
    scope: worker
    window: {units: 40}
    min_samples: 20
    warning: 10
    critical: 40
    clear: 5
    for_s: 0
    cooldown_s: 0
  # Its thresholds colour the board's % of standard; it never raises here (the minimum
  # sample is out of reach), so the two defect alerts stay the only ones.
  - id: efficiency
    metric: efficiency
    scope: worker
    window: {minutes: 15}
    min_samples: 100000
    warning: 80
    critical: 60
    clear: 90
"""
STANDARDS = [Standard(station="S1", line="L1", cycle_s=1.0)]
SIZES = {"desktop": (1440, 900), "tablet": (1024, 768), "wall": (1920, 1080)}
TEXT = {
    "en": {"stale": "stale", "down": "down", "min": " min", "fault": "fault",
           "eff": "% of standard", "flag": "running, nobody logged in", "clears": "clears at ≤ 5 %",
           "window": "last 40 units", "acked": "acknowledged by", "since": "in since"},
    "zh": {"stale": "数据过期", "down": "停机", "min": "分钟", "fault": "故障",
           "eff": "标准达成", "flag": "运行中 · 无人登录", "clears": "恢复需 ≤ 5 %",
           "window": "近 40 件", "acked": "sup-l1 已确认", "since": "登录"},
}  # fmt: skip


def shanghai(moment: datetime) -> str:
    """hh:mm:ss at UTC+8 (Asia/Shanghai keeps no daylight saving), by hand."""
    local = moment + timedelta(hours=8)
    return f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}"


def history(line: Line) -> list[list[Any]]:
    """The batches of the scenario, in event-time order."""
    states = [line.state(0, "running", station=s) for s in ("S1", "S3", "S4", "S5")]
    logins = [line.session(t, "login", station=s, worker=w)
              for t, s, w in ((50, "S5", "W5"), (100, "S1", "W1"), (150, "S2", "W2"))]  # fmt: skip
    return [
        [*states, *logins, line.state(180, "down", station="S2", reason="fault")],
        [line.unit(t, station="S4", worker="W4") for t in range(200, 301, 4)],
        # W1: 40 units, every second defective (50 %: critical), then 35 good: the last
        # 40 hold 3 defects = 7.5 %, under both raise levels, above the clear level.
        [line.unit(800 + i, station="S1", worker="W1", defect=i % 2 == 1) for i in range(40)],
        [line.unit(840 + i, station="S1", worker="W1") for i in range(35)]
        + [line.work(790, 875, station="S1", worker="W1")],  # 85 s logged in, all effective
        [line.unit(850 + i, station="S5", worker="W5", defect=i % 2 == 1) for i in range(40)],
        [line.unit(t, station="S3", worker=UNATTRIBUTED) for t in range(880, 899, 2)],
    ]


def heartbeat(line: Line, start: datetime) -> list[Any]:
    """The live stations report their state again (same state: the durations go on)."""
    t = time.time() - start.timestamp()
    beats = [line.state(t, "running", station=s) for s in ("S1", "S3", "S5")]
    return [*beats, line.state(t, "down", station="S2", reason="fault")]


async def test_board_screens_stale_down_unattended_hysteresis_acknowledged(
    tmp_path: Path,
    mosquitto: Mosquitto,
    influxd: Influxd,
    browser: webdriver.Chrome,
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    app, keys = make_app(tmp_path, mosquitto.port, "http://127.0.0.1:9", influxd.url,
                         "board_screens", board_stale_after_s=300)  # fmt: skip
    assert keys is not None
    app.state.settings = app.state.settings.model_copy(
        update={"timezone": "Asia/Shanghai", "standards": STANDARDS}
    )
    t0 = now_aligned() - timedelta(seconds=900)
    line, bus = Line(t0=t0), Bus(mosquitto.port)
    wait = WebDriverWait(browser, 30)

    async with serve(app) as base, httpx.AsyncClient(base_url=base) as http:
        svc = service(app)
        for batch in history(line):
            await asyncio.to_thread(bus.publish, line.batch(batch))
        await until(lambda: len(svc.engine.open_alerts()) == 2, 30, what="two alerts")
        alerts = {a.worker: a for a in svc.engine.open_alerts()}
        w1, w5 = alerts["W1"], alerts["W5"]
        await until(lambda: abs(w1.value - 7.5) < 1e-9, what="W1 down to 7.5 %")
        assert (w1.severity, w5.severity) == ("critical", "critical")
        acked = await http.post(f"/api/v1/alerts/{w5.id}/ack",
                                headers={"Authorization": f"Bearer {keys.sup_l1}"})  # fmt: skip
        assert acked.status_code == 200
        stored = svc.store.get(w5.id)
        assert stored is not None and stored.acknowledged_by == "sup-l1"
        assert stored.acknowledged_at is not None
        ack_clock = shanghai(datetime.fromtimestamp(stored.acknowledged_at, UTC))

        # The supervisor logs in with a key and presses "Pair a tablet": a code and its QR.
        def supervisor_issues_code() -> str:
            browser.get(f"{base}/api/v1/board/?lang=en")
            browser.find_element(By.ID, "key").send_keys(keys.sup_l1)
            browser.find_element(By.CSS_SELECTOR, "#login button").click()
            wait.until(ec.visibility_of_element_located((By.ID, "pair"))).click()
            code = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#pairing .code")))
            qr = browser.find_element(By.CSS_SELECTOR, "#pairing img").get_attribute("src")
            assert qr is not None and qr.startswith("data:image/svg+xml")
            ARTIFACTS.mkdir(exist_ok=True)
            browser.save_screenshot(str(ARTIFACTS / "board-pairing-en.png"))
            text = code.text
            browser.find_element(By.ID, "logout").click()
            return text

        code = await asyncio.to_thread(supervisor_issues_code)
        [pairing] = (await http.get("/api/v1/board/pairings",
                     headers={"Authorization": f"Bearer {keys.sup_l1}"})).json()  # fmt: skip
        assert (pairing["issued_by"], pairing["status"], pairing["lines"]) == (
            "sup-l1",
            "waiting",
            ["L1"],
        )

        # The tablet opens the QR code's link (the code in the fragment; no key typed).
        def pair() -> None:
            browser.get("about:blank")  # a tablet opens the link afresh
            browser.get(f"{base}/api/v1/board/?lang=en#pair={code.replace('-', '')}")
            wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, '[data-station="S4"]')))

        await asyncio.to_thread(pair)
        assert "#pair" not in browser.current_url  # the used code leaves the address bar
        [pairing] = (await http.get("/api/v1/board/pairings",
                     headers={"Authorization": f"Bearer {keys.sup_l1}"})).json()  # fmt: skip
        assert pairing["status"] == "active" and pairing["key_name"].startswith("sup-l1/tablet-")

        for lang in ("en", "zh"):
            await asyncio.to_thread(bus.publish, line.batch(heartbeat(line, t0)))
            for size, (width, height) in SIZES.items():
                mode = "&mode=wall" if size == "wall" else ""
                await asyncio.to_thread(browser.set_window_size, width, height)
                await asyncio.to_thread(browser.get, f"{base}/api/v1/board/?lang={lang}{mode}")
                await asyncio.to_thread(wait.until, ec.presence_of_element_located(
                    (By.CSS_SELECTOR, f'li.alert.acknowledged[data-id="{w5.id}"]')))  # fmt: skip
                check_page(browser, lang, size, t0, w1.id, w5.id, ack_clock)
                ARTIFACTS.mkdir(exist_ok=True)
                shot = str(ARTIFACTS / f"board-{size}-{lang}.png")
                assert await asyncio.to_thread(browser.save_screenshot, shot)

        # The supervisor lists the paired tablets on the page and revokes this one.
        def supervisor_revokes_tablet() -> str:
            tablet_key = str(
                browser.execute_script("return localStorage.getItem('takt-board-key')")
            )
            browser.get(f"{base}/api/v1/board/?lang=en")
            wait.until(ec.visibility_of_element_located((By.ID, "logout"))).click()
            browser.find_element(By.ID, "key").send_keys(keys.sup_l1)
            browser.find_element(By.CSS_SELECTOR, "#login button").click()
            wait.until(ec.visibility_of_element_located((By.ID, "pair"))).click()
            row = f'#pairing li.tablet[data-pairing="{pairing["id"]}"]'
            wait.until(
                ec.visibility_of_element_located((By.CSS_SELECTOR, f"{row} .revoke"))
            ).click()
            wait.until(
                ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"{row} .state"), "revoked")
            )
            browser.save_screenshot(str(ARTIFACTS / "board-tablets-en.png"))
            return tablet_key

        tablet_key = await asyncio.to_thread(supervisor_revokes_tablet)
        gone = await http.get(
            "/api/v1/alerts/live", headers={"Authorization": f"Bearer {tablet_key}"}
        )
        assert gone.status_code == 401  # the tablet's key stopped working at once
    bus.close()


def check_page(
    browser: webdriver.Chrome,
    lang: str,
    size: str,
    t0: datetime,
    hysteresis_id: str,
    acked_id: str,
    ack_clock: str,
) -> None:
    text = TEXT[lang]

    def card(station: str) -> Any:
        return browser.find_element(By.CSS_SELECTOR, f'[data-station="{station}"]')

    # S4: last heard at t=300, ten minutes ago: grey, labelled stale, "as of" its time.
    s4 = card("S4")
    assert "stale" in (s4.get_attribute("class") or "").split()
    assert s4.find_element(By.CSS_SELECTOR, ".stale-label").text == text["stale"]
    assert shanghai(t0 + timedelta(seconds=300)) in s4.find_element(By.CSS_SELECTOR, ".asof").text
    assert "stale" not in (card("S1").get_attribute("class") or "").split()

    # S2: down, with its reason and how long (whole minutes since t=180, read around now).
    s2 = card("S2")
    before = int((time.time() - t0.timestamp() - 180) // 60)
    during = s2.find_element(By.CSS_SELECTOR, ".during").text
    after = int((time.time() - t0.timestamp() - 180) // 60)
    assert s2.find_element(By.CSS_SELECTOR, ".state").text == text["down"]
    assert during in {f"{text['fault']} · {m}{text['min']}" for m in (before, after)}
    assert before >= 12

    # S3: running, output, nobody logged in.
    assert card("S3").find_element(By.CSS_SELECTOR, ".flag").text == text["flag"]
    assert not card("S1").find_elements(By.CSS_SELECTOR, ".flag")

    # Only logged-in workers, with their login time (line time).
    w1 = card("S1").find_element(By.CSS_SELECTOR, '[data-worker="W1"] .login')
    assert w1.text.endswith(f"{text['since']} {shanghai(t0 + timedelta(seconds=100))}")

    # W1's % of standard from the KPI standards (S1: 1 s a unit): 55 good units (20 of the
    # first 40, then 35) earn 55 s in 85 s effective; 64.7 % is under the efficiency
    # rule's warning level (80) but above its critical one (60): coloured as a warning.
    eff = card("S1").find_element(By.CSS_SELECTOR, '[data-worker="W1"] .eff')
    assert eff.text == f"{100 * 55 / 85:.1f} %"
    assert "lvl-warning" in (eff.get_attribute("class") or "").split()
    assert text["eff"] in card("S1").find_element(By.CSS_SELECTOR, '[data-worker="W1"]').text

    # W1's alert: 7.5 % over the last 40 units, still open, "clears at <= 5 %".
    hyst = browser.find_element(By.CSS_SELECTOR, f'li.alert[data-id="{hysteresis_id}"]')
    assert "hysteresis" in (hyst.get_attribute("class") or "").split()
    assert hyst.find_element(By.CSS_SELECTOR, ".value").text == "7.5 %"
    assert text["window"] in hyst.text and text["clears"] in hyst.text

    # W5's alert: who acknowledged it and when (line time).
    acked = browser.find_element(By.CSS_SELECTOR, f'li.alert[data-id="{acked_id}"]')
    by = acked.find_element(By.CSS_SELECTOR, ".acked-by").text
    assert text["acked"] in by and "sup-l1" in by and ack_clock in by

    buttons = browser.find_elements(By.CSS_SELECTOR, "button.ack")
    if size == "wall":  # no controls, large type
        assert buttons == [] and not browser.find_element(By.ID, "lang").is_displayed()
        script = "return getComputedStyle(document.querySelector('.figures b')).fontSize"
        size_px = float(str(browser.execute_script(script)).removesuffix("px"))
        assert size_px >= 30
    else:
        assert buttons
        # The tablet's board key cannot issue pairing codes: no "Pair a tablet" button.
        assert not browser.find_element(By.ID, "pair").is_displayed()
