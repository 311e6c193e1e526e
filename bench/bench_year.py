"""HR's year: per-worker KPIs of 5,000 workers over 365 days, and the monthly list of
5,000 workers, against the bare InfluxQL of the same sums, same influxd, same run
(issue #18 target 3: <= 2 s and <= 1.5x the bare InfluxQL; the month <= 1 s).

Data: 5,000 workers x the 261 weekdays of 2025 in Europe/Berlin, written directly as
the daily and monthly rollup points the collector keeps (units good and defect, work,
down time: 5.2 M daily and 240 k monthly points). Raw events for that (some 10^10
points) or the hourly rollups (44 M points) cannot be loaded on this machine in a
benchmark's time; the planner reads monthly points for whole local months and daily
ones for whole days, so these are what HR's queries touch. The bare baseline is the
planner's three statements sent straight to InfluxDB, once as one request and once
as three parallel requests (what the service does); ``year_from_days`` times the bare
year over the daily points against the same over the monthly ones. The load is
compacted before measuring (a year of history is, a fresh bulk load is not).
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
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
from takt_store.schema import day_bounds, month_bounds

WORKERS = 5000
ZONE = "Europe/Berlin"
TZ = ZoneInfo(ZONE)
YEAR = [date(2025, 1, 1) + timedelta(days=d) for d in range(365)]
WEEKDAYS = [d for d in YEAR if d.weekday() < 5]
TAGS = '"site","line","station","worker"'


def good_of(w: int) -> int:
    return 900 + w % 50


def _daily_lines() -> Iterator[str]:
    for day in WEEKDAYS:
        t = day_bounds(day, TZ)[0]
        for w in range(WORKERS):
            tags = f"site=S1,line=L{w % 20},station=ST{w % 100},worker=W{w:04d},tz={ZONE}"
            yield f"units_1d,{tags},outcome=good,defect_code=none,edge=e1 count={good_of(w)}i {t}"
            yield f"units_1d,{tags},outcome=defect,defect_code=E1,edge=e1 count={w % 7}i {t}"
            yield f"work_1d,{tags},edge=e1 work_s=28800,effective_s=27000,down_s=1800 {t}"
            yield f"downtime_1d,{tags},reason=fault,edge=e1 seconds=1800 {t}"


def _monthly_lines() -> Iterator[str]:
    """The months' sums of the daily points above, as the collector keeps them."""
    for month in range(1, 13):
        n = sum(1 for d in WEEKDAYS if d.month == month)
        t = month_bounds(date(2025, month, 1), TZ)[0]
        for w in range(WORKERS):
            tags = f"site=S1,line=L{w % 20},station=ST{w % 100},worker=W{w:04d},tz={ZONE}"
            good, bad = good_of(w) * n, (w % 7) * n
            yield f"units_1mo,{tags},outcome=good,defect_code=none,edge=e1 count={good}i {t}"
            yield f"units_1mo,{tags},outcome=defect,defect_code=E1,edge=e1 count={bad}i {t}"
            yield (f"work_1mo,{tags},edge=e1 work_s={28800 * n},effective_s={27000 * n},"
                   f"down_s={1800 * n} {t}")  # fmt: skip
            yield f"downtime_1mo,{tags},reason=fault,edge=e1 seconds={1800 * n} {t}"


def _bare(db: str, start: int, end: int, suffix: str) -> list[str]:
    where = f"time >= {start} AND time < {end} AND \"tz\" = '{ZONE}'"
    src = f'"{db}"."rollup"'
    return [
        f'SELECT sum("count") AS "count" FROM {src}."units{suffix}" WHERE {where} '
        f'GROUP BY {TAGS},"outcome","defect_code"',
        f'SELECT sum("work_s") AS "work_s",sum("effective_s") AS "effective_s",'
        f'sum("down_s") AS "down_s" FROM {src}."work{suffix}" WHERE {where} GROUP BY {TAGS}',
        f'SELECT sum("seconds") AS "seconds" FROM {src}."downtime{suffix}" WHERE {where} '
        f'GROUP BY {TAGS},"reason"',
    ]


def main() -> dict[str, object]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        influxd(Path(tmp) / "influx", data_config=COMPACT_AT_ONCE) as server,
    ):
        db = "bench_year"
        for s in setup_statements(db):
            server.query(s)
        points, load_s = load_lines(server.url, db, _daily_lines(), rp="rollup")
        monthly, monthly_s = load_lines(server.url, db, _monthly_lines(), rp="rollup")
        compact_s = wait_compacted(server.workdir)
        settings, head = kpi_settings(Path(tmp) / "state", server.url, db, 100, timezone=ZONE)
        http = httpx.Client(base_url=server.url, timeout=120)

        def bare_one(statements: list[str]) -> None:
            http.post(
                "/query", data={"q": ";".join(statements), "db": db, "epoch": "ns"}
            ).raise_for_status()

        def bare_parallel(statements: list[str]) -> None:
            with ThreadPoolExecutor(max_workers=len(statements)) as pool:
                list(pool.map(lambda s: bare_one([s]), statements))

        out: dict[str, object] = {
            "daily_points_loaded": points, "monthly_points_loaded": monthly,
            "load_s": round(load_s + monthly_s, 1),
            "compaction_wait_s": round(compact_s, 1),
        }  # fmt: skip
        with TestClient(create_app(settings)) as client:

            def api(start: str, end: str) -> None:
                params = {"start": start, "end": end, "limit": 10_000}
                r = client.get("/api/v1/kpis", params=params, headers=head)
                assert r.status_code == 200, r.text[:500]
                page = r.json()
                assert page["total"] == WORKERS and page["source"] == "rollup", page["total"]

            # The figures are right before they are fast: W0007's year, summed here.
            r = client.get(
                "/api/v1/kpis", headers=head,
                params={"start": "2025-01-01", "end": "2025-12-31", "worker": "W0007"},
            )  # fmt: skip
            r.raise_for_status()
            row = r.json()["items"][0]
            days = len(WEEKDAYS)
            assert (row["units_good"], row["units_defect"]) == (good_of(7) * days, 0), row
            assert row["effective_s"] == 27000 * days and row["down_s"] == 1800 * days, row

            y0, y1 = day_bounds(YEAR[0], TZ)[0], day_bounds(YEAR[-1], TZ)[1]
            m0, m1 = day_bounds(date(2025, 3, 1), TZ)[0], day_bounds(date(2025, 3, 31), TZ)[1]
            figures = {}
            for name, call, q in (
                ("year", lambda: api("2025-01-01", "2025-12-31"), _bare(db, y0, y1, "_1mo")),
                ("month", lambda: api("2025-03-01", "2025-03-31"), _bare(db, m0, m1, "_1mo")),
            ):
                load = load_average()
                api_s, bare_s = paired(call, lambda q=q: bare_one(q))  # type: ignore[misc]
                _, par_s = paired(call, lambda q=q: bare_parallel(q))  # type: ignore[misc]
                figures[name] = (api_s, bare_s, par_s)
                out.update({
                    f"{name}_api_median_s": round(statistics.median(api_s), 3),
                    f"{name}_api_min_s": round(min(api_s), 3),
                    f"{name}_bare_one_request_median_s": round(statistics.median(bare_s), 3),
                    f"{name}_bare_parallel_median_s": round(statistics.median(par_s), 3),
                    f"{name}_ratio_vs_bare_one_request": round(median_ratio(api_s, bare_s), 2),
                    f"{name}_ratio_vs_bare_parallel": round(median_ratio(api_s[: len(par_s)],
                                                                         par_s), 2),
                    f"{name}_load_average": load,
                })  # fmt: skip
            # A year from daily points only: what the monthly level saves.
            days_s, months_s = paired(
                lambda: bare_one(_bare(db, y0, y1, "_1d")),
                lambda: bare_one(_bare(db, y0, y1, "_1mo")),
                repeat=3,
            )
            out.update(
                year_bare_over_daily_points_median_s=round(statistics.median(days_s), 3),
                year_bare_over_monthly_points_median_s=round(statistics.median(months_s), 3),
            )
        http.close()
        year_api = statistics.median(figures["year"][0])
        month_api = statistics.median(figures["month"][0])
        ratio = median_ratio(figures["year"][0], figures["year"][1])
        out["targets"] = [
            check("per-worker KPIs, 5,000 workers x 365 days", round(year_api, 3), "s",
                  "<= 2 s", year_api <= 2.0),
            check("the same vs the bare InfluxQL of its sums (one request)", round(ratio, 2), "x",
                  "<= 1.5x", ratio <= 1.5),
            check("monthly list, 5,000 workers", round(month_api, 3), "s", "<= 1 s",
                  month_api <= 1.0),
        ]  # fmt: skip
        return out
