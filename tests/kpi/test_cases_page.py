"""The worker files a case from their own page and sees the supervisor's decision there
(real Chromium against the app under uvicorn, the simulated month in a real influxd)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from kpi_service.core.apikeys import KeyStore
from kpi_service.main import create_app
from takt_cli.localservices import Influxd
from tests.alerts.harness import serve
from tests.browser import ARTIFACTS

from . import month
from .conftest import Keys, auth, make_settings
from .test_cases import db, ledger

__all__ = ["db", "ledger"]  # module fixtures of test_cases, loaded once here too

pytestmark = pytest.mark.integration


async def test_a_worker_files_a_case_on_their_page_and_sees_the_decision(
    tmp_path: Path, influxd: Influxd, db: str, browser: webdriver.Chrome
) -> None:
    settings = make_settings(
        tmp_path, influx_url=influxd.url, influx_db=db, timezone="UTC", standards=month.STANDARDS
    )
    app = create_app(settings)
    keys = Keys(settings)
    store = KeyStore(settings.keys_db, settings.secret_key.get_secret_value())
    w01 = store.create("self-w01", frozenset({"self"}), frozenset({"L1"}), worker="W01")
    ARTIFACTS.mkdir(exist_ok=True)
    async with serve(app) as base:
        page = f"{base}/api/v1/board/me.html?at=2026-03-31T23:00:00Z"

        def file_it() -> dict[str, Any]:
            wait = WebDriverWait(browser, 20)
            browser.set_window_size(390, 1400)  # a phone, scrolled
            browser.get(f"{page}&lang=en#key={w01}")
            wait.until(ec.visibility_of_element_located((By.ID, "content")))
            assert browser.find_element(By.ID, "case-line").get_attribute("value") == "L1"
            browser.find_element(By.CSS_SELECTOR, "#case-new summary").click()
            Select(browser.find_element(By.ID, "case-kind")).select_by_value("material_shortage")
            browser.find_element(By.ID, "case-station").send_keys("A1")
            # datetime-local typing depends on the locale: set the values, as a picker does.
            browser.execute_script(
                "document.getElementById('case-start').value = '2026-03-20T10:00';"
                "document.getElementById('case-end').value = '2026-03-20T11:30';"
            )
            browser.find_element(By.ID, "case-text").send_keys("no blanks at A1 for 90 minutes")
            browser.find_element(By.ID, "case-evidence").send_keys("stores ticket S-88")
            browser.find_element(By.CSS_SELECTOR, "#case-form button[type=submit]").click()
            item = wait.until(
                ec.visibility_of_element_located((By.CSS_SELECTOR, "#case-list [data-case]"))
            )
            browser.save_screenshot(str(ARTIFACTS / "me-case-filed-en.png"))
            span = browser.execute_script(
                "return [new Date('2026-03-20T10:00').toISOString(),"
                " new Date('2026-03-20T11:30').toISOString()]"
            )
            return {"text": item.text, "span": span}

        filed = await asyncio.to_thread(file_it)
        assert "Material shortage" in filed["text"] and "open" in filed["text"]

        def decide() -> dict[str, Any]:
            with httpx.Client(base_url=base) as client:
                (case,) = client.get("/api/v1/cases", headers=auth(keys.sup_l1)).json()
                r = client.post(f"/api/v1/cases/{case['id']}/decision", headers=auth(keys.sup_l1),
                                json={"decision": "reject", "reason": "stores log shows "
                                      "blanks delivered at 10:05"})  # fmt: skip
                assert r.status_code == 200, r.text
                seen = client.get(f"/api/v1/cases/{case['id']}", headers=auth(w01)).json()
                assert seen["status"] == "rejected"
                return dict(case)

        case = await asyncio.to_thread(decide)
        assert (case["worker"], case["filed_by"], case["kind"]) == (
            "W01",
            "self-w01",
            "material_shortage",
        )
        assert (case["line"], case["station"], case["evidence"]) == (
            "L1",
            "A1",
            "stores ticket S-88",
        )
        assert [case["start"], case["end"]] == [s.replace(".000Z", "Z") for s in filed["span"]]

        def reread() -> str:
            browser.set_window_size(1280, 1000)  # a kiosk, in Chinese
            browser.get(f"{page}&lang=zh")
            item = WebDriverWait(browser, 20).until(
                ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#case-list"), "已驳回")
            )
            assert item
            browser.save_screenshot(str(ARTIFACTS / "me-case-rejected-zh.png"))
            return str(browser.find_element(By.CSS_SELECTOR, "#case-list [data-case]").text)

        text = await asyncio.to_thread(reread)
        assert "缺料" in text and "blanks delivered at 10:05" in text
