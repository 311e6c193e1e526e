"""HR charts (#17) in a real headless Chromium: a worker's trend, the distribution with the
worker marked, and down time by reason as a Pareto per line and station.

The simulated month's ledger is the truth (plus a few down-time intervals of our own, so
the Pareto has more than one reason); every figure read off the page's SVG is computed
here from those inputs alone, never with the KPI code.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from kpi_service.main import create_app
from kpi_service.testing import AnyEvent
from takt_cli.localservices import Influxd
from takt_wire.events import WorkEvent
from tests.alerts.harness import serve
from tests.browser import ARTIFACTS

from . import month
from .conftest import Keys, load_events, make_settings

pytestmark = pytest.mark.integration

START, END = "2026-03-16", "2026-03-31"
WORKER = "W01"
EXTRA_DOWN = {"starved": 900.0, "maintenance": 1500.0}
"""Per extra interval: a worker W09 at A2 (line L1) on three days, an hour logged in each."""
EXTRA_DAYS = (datetime(2026, 3, 19, 20, tzinfo=UTC), datetime(2026, 3, 20, 20, tzinfo=UTC),
              datetime(2026, 3, 23, 20, tzinfo=UTC))  # fmt: skip


def extra_events() -> list[AnyEvent]:
    out: list[AnyEvent] = []
    for k, begin in enumerate(EXTRA_DAYS):
        down = sum(EXTRA_DOWN.values())
        out.append(
            WorkEvent(
                site="S1", line="L1", station="A2", device="A2", worker="W09", agent="A9",
                boot="b9", seq=k, ts=begin + timedelta(hours=1), start=begin,
                work_s=3600.0, effective_s=3600.0 - down, down_s=dict(EXTRA_DOWN),
            )
        )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def ledger() -> dict[str, Any]:
    return month.ledger()


@pytest.fixture(scope="module")
def db(influxd: Influxd, ledger: dict[str, Any]) -> str:
    return load_events(influxd, [*month.events(ledger), *extra_events()])


def in_period(row: dict[str, Any]) -> bool:
    return START <= str(row["start"])[:10] <= END


def truth(ledger: dict[str, Any]) -> dict[str, Any]:
    """Everything the page shows, from the ledger and our extra events."""
    cycle = {s: c for s, (_line, c) in month.STATIONS.items()}
    line_of = {s: line for s, (line, _c) in month.STATIONS.items()}
    rows = [r for r in ledger["rows"] if in_period(r)]
    days: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    per_worker: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    down: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        defects = sum(r["defects"].values())
        if r["worker"] == WORKER:
            day = days[r["start"][:10]]
            day["good"] += r["good"]
            day["total"] += r["good"] + defects
            day["effective_s"] += r["effective_s"]
            day["standard_s"] += r["good"] * cycle[r["station"]]
        w = per_worker[r["worker"]]
        w["standard_s"] += r["good"] * cycle[r["station"]]
        w["effective_s"] += r["effective_s"]
        for reason, seconds in r["down_s"].items():
            down[f"line:{r['line']}"][reason] += seconds
            down[f"station:{r['station']}"][reason] += seconds
    for _ in EXTRA_DAYS:  # W09: no units, an hour logged in, down time by reason
        per_worker["W09"]["effective_s"] += 3600.0 - sum(EXTRA_DOWN.values())
        for reason, seconds in EXTRA_DOWN.items():
            down[f"line:{line_of['A2']}"][reason] += seconds
            down["station:A2"][reason] += seconds
    pct = {w: 100 * v["standard_s"] / v["effective_s"] for w, v in per_worker.items()}
    return {"days": days, "pct": pct, "down": down}


def marks(browser: webdriver.Chrome, chart: str, tag: str) -> dict[str, str]:
    found = browser.find_elements(By.CSS_SELECTOR, f'[data-chart="{chart}"] {tag}[data-value]')
    return {e.get_attribute("data-label") or "": e.get_attribute("data-value") or "" for e in found}


async def test_hr_charts_in_a_browser(
    tmp_path: Path, influxd: Influxd, db: str, ledger: dict[str, Any], browser: webdriver.Chrome
) -> None:
    settings = make_settings(
        tmp_path, influx_url=influxd.url, influx_db=db, timezone="UTC", standards=month.STANDARDS
    )
    keys = Keys(settings)
    want = truth(ledger)
    ARTIFACTS.mkdir(exist_ok=True)
    async with serve(create_app(settings)) as base:
        page = f"{base}/api/v1/board/hr.html?worker={WORKER}&start={START}&end={END}"

        def visit() -> dict[str, Any]:
            wait = WebDriverWait(browser, 30)
            browser.set_window_size(1280, 1600)  # a desktop
            browser.get(f"{page}&lang=en&pareto=line:L1#key={keys.hr}")
            wait.until(lambda b: b.execute_script("return document.body.dataset.ready === '1'"))
            assert "#key=" not in browser.current_url, "the key left the address bar"
            seen: dict[str, Any] = {
                "hours": marks(browser, "effective_hours", "rect"),
                "pct": marks(browser, "pct_of_standard", "circle"),
                "defects": marks(browser, "defect_rate", "circle"),
                "dist": marks(browser, "distribution", "rect"),
                "marked": browser.find_element(By.CSS_SELECTOR, "[data-worker]").get_attribute(
                    "data-value"
                ),
                "pareto_l1": marks(browser, "pareto", "rect"),
                "cumulative": [
                    e.get_attribute("data-cumulative")
                    for e in browser.find_elements(By.CSS_SELECTOR, "[data-cumulative]")
                ],
            }
            browser.save_screenshot(str(ARTIFACTS / "hr-charts-desktop-en.png"))
            Select(browser.find_element(By.ID, "pareto-of")).select_by_visible_text("station A2")
            seen["pareto_a2"] = marks(browser, "pareto", "rect")
            browser.find_element(By.ID, "lang").click()
            wait.until(lambda b: b.find_element(By.TAG_NAME, "h1").text == "人事图表")
            browser.set_window_size(1024, 1400)  # a tablet
            wait.until(lambda b: b.execute_script("return document.body.dataset.ready === '1'"))
            browser.save_screenshot(str(ARTIFACTS / "hr-charts-tablet-zh.png"))
            return seen

        seen = await asyncio.to_thread(visit)

    days = want["days"]
    assert seen["hours"] == {d: f"{v['effective_s'] / 3600:.2f}" for d, v in days.items()}
    assert seen["pct"] == {
        d: f"{100 * v['standard_s'] / v['effective_s']:.1f}" for d, v in days.items()
    }
    assert seen["defects"] == {
        d: f"{100 * (v['total'] - v['good']) / v['total']:.2f}" for d, v in days.items()
    }
    pct = want["pct"]
    assert seen["marked"] == f"{pct[WORKER]:.1f}"
    counts: dict[int, int] = defaultdict(int)
    for value in pct.values():
        counts[int(value // 10) * 10] += 1
    lo, hi = min(counts), max(counts)
    assert seen["dist"] == {f"{b}-{b + 10}%": str(counts.get(b, 0)) for b in range(lo, hi + 10, 10)}
    for key, shown in (("line:L1", seen["pareto_l1"]), ("station:A2", seen["pareto_a2"])):
        assert shown == {r: f"{s / 60:.1f}" for r, s in want["down"][key].items()}, key
    expected_order = sorted(want["down"]["line:L1"].items(), key=lambda kv: -kv[1])
    assert len(expected_order) == 3, "fault (simulated) and our two reasons"
    total = sum(want["down"]["line:L1"].values())
    running, cumulative = 0.0, []
    for _reason, seconds in expected_order:
        running += seconds
        cumulative.append(f"{100 * running / total:.1f}")
    assert seen["cumulative"] == cumulative
