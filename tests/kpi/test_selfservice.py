"""Worker self-service (#16): a key bound to one worker reads that worker's own figures
and nothing else; issued by a supervisor (confined to its line) or HR, revocable; the
worker page in a real headless Chromium at phone and kiosk sizes, in Chinese and English.

Figures are checked against the simulated month's ledger (an independent sum here), not
against the KPI code.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from kpi_service.core.apikeys import KeyStore
from kpi_service.core.config import Settings
from kpi_service.main import create_app
from takt_cli.localservices import Influxd
from tests.alerts.harness import serve
from tests.browser import ARTIFACTS

from . import month
from .conftest import Keys, auth, load_events, make_settings
from .test_scores import SCHEME_V1, SCHEME_V2, expected_score, external_batch, truth

AT = "2026-03-31T23:59:59+00:00"  # the month's last second: every March row has ended


@pytest.fixture(scope="module")
def ledger() -> dict[str, Any]:
    return month.ledger()


@pytest.fixture(scope="module")
def db(influxd: Influxd, ledger: dict[str, Any]) -> str:
    return load_events(influxd, month.events(ledger))


def _settings(tmp_path: Path, influxd: Influxd, db: str) -> Settings:
    return make_settings(
        tmp_path, influx_url=influxd.url, influx_db=db, timezone="UTC", standards=month.STANDARDS
    )


def _prepare(client: TestClient | httpx.Client, settings: Settings) -> tuple[Keys, str]:
    keys = Keys(settings)
    store = KeyStore(settings.keys_db, settings.secret_key.get_secret_value())
    hr_write = store.create("hr-payroll", frozenset({"hr:read", "hr:write"}), None)
    ingest = store.create("crm-bridge", frozenset({"ingest"}), None)
    for spec in (SCHEME_V1, SCHEME_V2):
        assert client.post("/api/v1/schemes", json=spec, headers=auth(keys.admin)).is_success
    r = client.post(
        "/api/v1/external-metrics", json={"values": external_batch()}, headers=auth(ingest)
    )
    assert r.status_code == 200, r.text
    return keys, hr_write


def own_truth(ledger: dict[str, Any], worker: str, day_prefix: str) -> dict[str, float]:
    rows = [
        r for r in ledger["rows"] if r["worker"] == worker and r["start"].startswith(day_prefix)
    ]
    good = sum(r["good"] for r in rows)
    defects = sum(sum(r["defects"].values()) for r in rows)
    return {
        "good": good,
        "defects": defects,
        "effective_h": sum(r["effective_s"] for r in rows) / 3600,
    }


def worker_on_last_day(ledger: dict[str, Any]) -> str:
    return str(
        sorted(r["worker"] for r in ledger["rows"] if r["start"].startswith("2026-03-31"))[0]
    )


def test_a_self_key_reads_its_own_figures_and_nothing_else(
    tmp_path: Path, influxd: Influxd, db: str, ledger: dict[str, Any]
) -> None:
    worker = worker_on_last_day(ledger)
    line = month.STATIONS[next(r["station"] for r in ledger["rows"] if r["worker"] == worker)][0]
    other_line = "L2" if line == "L1" else "L1"
    settings = _settings(tmp_path, influxd, db)
    with TestClient(create_app(settings)) as client:
        keys, hr_write = _prepare(client, settings)
        supervisor = keys.sup_l1 if line == "L1" else keys.sup_l2
        issue = f"/api/v1/workers/{worker}/self-keys"
        assert (
            client.post(issue, json={"line": other_line}, headers=auth(supervisor)).status_code
            == 403
        )
        assert client.post(issue, json={"line": line}, headers=auth(keys.hr)).status_code == 403
        r = client.post(issue, json={"line": line, "days": 30}, headers=auth(supervisor))
        assert r.status_code == 201, r.text
        issued = r.json()
        key = issued["key"]
        assert issued["link"].endswith(f"/api/v1/board/me.html#key={key}")
        assert issued["qr_svg"].startswith("<svg") and issued["lines"] == [line]

        me = client.get("/api/v1/me", headers=auth(key)).json()
        assert (me["worker"], me["scopes"]) == (worker, ["self"])
        body = client.get("/api/v1/me/summary", params={"at": AT}, headers=auth(key)).json()
        month_t, day_t = (
            own_truth(ledger, worker, "2026-03"),
            own_truth(ledger, worker, "2026-03-31"),
        )
        assert body["month"]["units_good"] == month_t["good"]
        assert body["month"]["units_defect"] == month_t["defects"]
        assert body["month"]["defect_rate"] == pytest.approx(
            month_t["defects"] / (month_t["good"] + month_t["defects"]), rel=1e-9
        )
        assert body["month"]["effective_hours"] == round(month_t["effective_h"], 2)
        assert body["today"]["units_good"] == day_t["good"] and day_t["good"] > 0
        # The supervisor's key is confined to its line; the scheme covers every line.
        assert body["scores"] == [] and line in body["scores_note"]
        by_hr = client.post(issue, json={}, headers=auth(hr_write)).json()
        body = client.get("/api/v1/me/summary", params={"at": AT}, headers=auth(by_hr["key"]))
        [score] = body.json()["scores"]
        from kpi_service.api.routes import selfservice

        cached = dict(selfservice._runs)
        again = client.get("/api/v1/me/summary", params={"at": AT}, headers=auth(by_hr["key"]))
        assert again.json()["scores"] == [score]
        assert selfservice._runs == cached  # the scheme's run is shared, not recomputed
        want = expected_score(truth(ledger)[(worker, "2026-03")], worker, "2026-03")
        assert want is not None and (score["score"], score["band"]) == want
        assert score["band_shares"] is None or sum(
            b["share"] for b in score["band_shares"]
        ) == pytest.approx(1, abs=0.01)

        # Far-future and pre-epoch "as of" times are refused, not sent to InfluxDB.
        for hostile in ("2999-01-01T00:00:00Z", "1900-01-01T00:00:00Z", "0001-01-01T00:00:00Z"):
            r = client.get("/api/v1/me/summary", params={"at": hostile}, headers=auth(key))
            assert r.status_code == 422, (hostile, r.status_code, r.text)

        # Every other route refuses the worker's key, including the worker's own HR views.
        refused = []
        for path, ops in client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
            if not path.startswith("/api/v1") or path in OWN_ROUTES:
                continue
            url = path.replace("{worker_id}", worker).replace("{scheme}", "line-kpi")
            url = url.replace("{period_start}", "2026-03-01").replace("{alert_id}", "a1")
            url = url.replace("{target_id}", "1")
            for method in ops:
                status = client.request(method.upper(), url, headers=auth(key), json={}).status_code
                refused.append((method, path, status))
        assert refused and all(s == 403 for _, _, s in refused), [x for x in refused if x[2] != 403]

        # Revoked by the supervisor: the key stops working at once.
        listed = client.get(issue, headers=auth(supervisor)).json()
        assert [k["status"] for k in listed] == ["active"]  # HR's key is not the supervisor's
        elsewhere = keys.sup_l2 if line == "L1" else keys.sup_l1
        assert client.get(issue, headers=auth(elsewhere)).json() == []
        nothing = client.post(f"{issue}/revoke", headers=auth(elsewhere)).json()
        assert nothing["revoked"] == []  # another line's supervisor cannot revoke it
        gone = client.post(f"{issue}/revoke", headers=auth(supervisor)).json()
        assert gone["revoked"] == [issued["name"]]
        assert client.get("/api/v1/me/summary", headers=auth(key)).status_code == 401
        assert client.get("/api/v1/me", headers=auth(by_hr["key"])).status_code == 200


OWN_ROUTES = ("/api/v1/me", "/api/v1/me/summary", "/api/v1/me/alerts", "/api/v1/cases",
              "/api/v1/cases/{case_id}")  # fmt: skip
"""Routes a worker's key may call: its own figures and warnings, and its own cases (filing
and reading only; what it sees there is tested in test_cases_access.py)."""


async def test_the_worker_page_on_a_phone_and_a_kiosk(
    tmp_path: Path, influxd: Influxd, db: str, ledger: dict[str, Any], browser: webdriver.Chrome
) -> None:
    worker = worker_on_last_day(ledger)
    settings = _settings(tmp_path, influxd, db)
    app = create_app(settings)
    ARTIFACTS.mkdir(exist_ok=True)
    async with serve(app) as base:

        def prepare() -> dict[str, Any]:  # off the loop: the server runs on it
            with httpx.Client(base_url=base) as client:
                _, hr_write = _prepare(client, settings)
                response = client.post(
                    f"/api/v1/workers/{worker}/self-keys", json={}, headers=auth(hr_write)
                )
                assert response.status_code == 201, response.text
                return dict(response.json())

        issued = await asyncio.to_thread(prepare)
        link = issued["link"]
        assert link.startswith(f"{base}/")
        expected = own_truth(ledger, worker, "2026-03")

        def visit() -> dict[str, str]:
            wait = WebDriverWait(browser, 20)
            browser.set_window_size(390, 844)  # a phone
            browser.get(link.replace("me.html#", "me.html?lang=zh&at=2026-03-31T23:59:59Z#"))
            wait.until(ec.visibility_of_element_located((By.ID, "content")))
            shots = {}
            assert "#key=" not in browser.current_url  # the key left the address bar
            stored = browser.execute_script("return localStorage.getItem('takt-self-key')")
            assert stored == issued["key"]
            assert browser.find_element(By.TAG_NAME, "h1").text == "我的绩效"
            browser.save_screenshot(str(ARTIFACTS / "me-phone-zh.png"))
            shots["who"] = browser.find_element(By.ID, "who").text
            good = '#month [data-k="units_good"]'
            shots["month_good"] = browser.find_element(By.CSS_SELECTOR, good).text
            shots["score"] = browser.find_element(By.CSS_SELECTOR, '[data-k="score"]').text
            browser.find_element(By.ID, "lang").click()
            wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "My figures"))
            browser.set_window_size(1280, 800)  # a kiosk
            browser.save_screenshot(str(ARTIFACTS / "me-kiosk-en.png"))
            browser.find_element(By.ID, "logout").click()
            wait.until(ec.visibility_of_element_located((By.ID, "login")))
            shots["after_logout"] = str(
                browser.execute_script("return String(localStorage.getItem('takt-self-key'))")
            )
            return shots

        shots = await asyncio.to_thread(visit)
    assert shots["who"] == worker and shots["after_logout"] == "null"
    assert shots["month_good"] == str(expected["good"])
    want = expected_score(truth(ledger)[(worker, "2026-03")], worker, "2026-03")
    assert want is not None and shots["score"] == f"{want[0]:.1f}"
