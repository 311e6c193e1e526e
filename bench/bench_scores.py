"""Scores for 2,000 workers over a month vs the KPI list call of the same month, same
influxd, same run (issue target: <= 1.5 s and <= 1.5x the KPI list).

Data: 2,000 workers x the weekdays of March 2026 x 8 hourly rollup points per series
(units good/defect, work, down time), as the collector's rollups hold them, and the
daily and monthly rollups (UTC, the service's zone here) computed from them by the
collector's own code (timed: what keeping them costs for a month of 2,000 workers); a
monthly scheme with two measured metrics and one external metric (2,000 external values).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from bench.common import (
    COMPACT_AT_ONCE,
    check,
    kpi_settings,
    load_average,
    load_lines,
    median_ratio,
    paired,
    wait_compacted,
)
from kpi_service.main import create_app
from kpi_service.testing import setup_statements
from takt_cli.localservices import influxd
from takt_store.client import InfluxClient
from takt_store.rollups import recompute_days, recompute_months
from takt_store.settings import InfluxSettings

WORKERS = 2000
H = 3600 * 10**9
T0 = 1772323200 * 10**9  # 2026-03-01T00:00:00Z
SCHEME = {
    "scheme": "bench",
    "effective_from": "2026-03-01",
    "period": "month",
    "metrics": [
        {"name": "efficiency", "source": "measured", "measure": "pct_of_standard",
         "floor": 70, "target": 110, "weight": 50},
        {"name": "quality", "source": "measured", "measure": "quality_rate",
         "floor": 0.9, "target": 0.99, "weight": 30},
        {"name": "satisfaction", "source": "external", "external": "csat",
         "floor": 2, "target": 5, "weight": 20},
    ],
    "min_evidence": {"effective_hours": 40},
}  # fmt: skip


def _lines() -> list[str]:
    lines = []
    days = [d for d in range(31) if (date(2026, 3, 1) + timedelta(days=d)).weekday() < 5]
    for w in range(WORKERS):
        tags = f"site=S1,line=L{w % 20},station=ST{w % 100},worker=W{w:04d}"
        good = 100 + w % 40
        for d in days:
            for h in range(6, 14):
                t = T0 + (d * 24 + h) * H
                lines.append(f"units_1h,{tags},outcome=good,defect_code=none count={good}i {t}")
                lines.append(f"units_1h,{tags},outcome=defect,defect_code=E1 count={w % 5}i {t}")
                lines.append(f"work_1h,{tags} work_s=3600,effective_s=3300,down_s=300 {t}")
                lines.append(f"downtime_1h,{tags},reason=fault seconds=300 {t}")
    return lines


async def _calendar_rollups(url: str, db: str) -> float:
    """The collector's daily and monthly rollups of March (UTC) from the hourly points."""
    client = InfluxClient(InfluxSettings(url=url, database=db))
    days = [date(2026, 3, 1) + timedelta(days=d) for d in range(31)]
    t = time.perf_counter()
    try:
        await recompute_days(client, days, ZoneInfo("UTC"))
        await recompute_months(client, days, ZoneInfo("UTC"))
    finally:
        await client.aclose()
    return time.perf_counter() - t


def main() -> dict[str, object]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        influxd(Path(tmp) / "influx", data_config=COMPACT_AT_ONCE) as server,
    ):
        db = "bench_scores"
        for s in setup_statements(db):
            server.query(s)
        lines = _lines()
        _, load_s = load_lines(server.url, db, lines, rp="rollup")
        # One raw point per worker, so the worker tag is known to the external-metric check.
        raw = [f"work,worker=W{w:04d},site=S1,line=L0,station=ST0 work_s=0 {T0}"
               for w in range(WORKERS)]  # fmt: skip
        server.write(db, "\n".join(raw))
        calendar_s = asyncio.run(_calendar_rollups(server.url, db))
        compact_s = wait_compacted(server.workdir)
        settings, head = kpi_settings(
            Path(tmp) / "state", server.url, db, 100, scopes=frozenset({"admin"})
        )
        with TestClient(create_app(settings)) as client:
            client.post("/api/v1/schemes", json=SCHEME, headers=head).raise_for_status()
            values = [
                {"worker": f"W{w:04d}", "metric": "csat", "period_start": "2026-03-01",
                 "period_end": "2026-03-31", "value": 2 + (w % 30) / 10, "source": "crm",
                 "reference": f"S-{w}"}
                for w in range(WORKERS)
            ]  # fmt: skip
            client.post(
                "/api/v1/external-metrics", json={"values": values}, headers=head
            ).raise_for_status()
            month = {"start": "2026-03-01", "end": "2026-03-31", "limit": 10_000}

            def run_scores() -> None:
                r = client.get("/api/v1/scores", params={**month, "scheme": "bench"}, headers=head)
                r.raise_for_status()
                assert r.json()["total"] == WORKERS

            def run_kpis() -> None:
                r = client.get("/api/v1/kpis", params=month, headers=head)
                r.raise_for_status()
                assert r.json()["total"] == WORKERS and r.json()["source"] == "rollup"

            load = load_average()
            kpis, scores = paired(run_kpis, run_scores)
            page = client.get("/api/v1/scores", params={**month, "scheme": "bench"}, headers=head)
            scored = sum(1 for s in page.json()["items"] if s["status"] == "scored")
        ratio = median_ratio(scores, kpis)
        score_s = statistics.median(scores)
        return {
            "rollup_points_loaded": len(lines),
            "load_s": round(load_s, 2),
            "daily_and_monthly_rollups_of_the_month_s": round(calendar_s, 2),
            "compaction_wait_s": round(compact_s, 1),
            "workers_scored": scored,
            "scores_2000_workers_month_median_s": round(score_s, 4),
            "scores_min_s": round(min(scores), 4),
            "kpi_list_same_month_median_s": round(statistics.median(kpis), 4),
            "kpi_list_min_s": round(min(kpis), 4),
            "ratio_scores_vs_kpi_list_median_of_pairs": round(ratio, 2),
            "load_average": load,
            "targets": [
                check("scores, 2,000 workers x a month", round(score_s, 3), "s", "<= 1.5 s",
                      score_s <= 1.5),
                check("scores vs the KPI list of the same month", round(ratio, 2), "x",
                      "<= 1.5x", ratio <= 1.5),
            ],
        }  # fmt: skip
