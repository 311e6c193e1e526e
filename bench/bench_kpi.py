"""All-workers KPI call vs the bare InfluxQL aggregation of the same data, same influxd, same run.

Big run: 500 workers x 30 days of 30-second cycles (8 h/day each = 28.8M units), loaded as
the hourly rollup points the collector keeps (loading 43M raw points takes many minutes
here). Small run: 20 workers x 1 day of raw events through the raw path.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from bench.common import kpi_settings
from kpi_service.main import create_app
from kpi_service.testing import setup_statements
from takt_cli.localservices import influxd

DAY0 = date(2026, 3, 2)
H = 3600 * 10**9
T0 = 1772409600 * 10**9  # 2026-03-02T00:00:00Z


def _rollup_lines(workers: int, days: int) -> list[str]:
    lines = []
    for w in range(workers):
        station, line = f"ST{w % 50}", f"L{w % 10}"
        tags = f"site=S1,line={line},station={station},worker=W{w:04d}"
        for d in range(days):
            for h in range(6, 14):
                t = T0 + (d * 24 + h) * H
                lines.append(f"units_1h,{tags},outcome=good,defect_code=none count=118i {t}")
                lines.append(f"units_1h,{tags},outcome=defect,defect_code=scratch count=2i {t}")
                lines.append(f"work_1h,{tags} work_s=3600,effective_s=3300,down_s=300 {t}")
                lines.append(f"downtime_1h,{tags},reason=fault seconds=300 {t}")
    return lines


def _raw_lines(workers: int) -> list[str]:
    lines = []
    seq = 0
    for w in range(workers):
        tags = f"site=S1,line=L{w % 2},station=ST{w},worker=R{w:03d}"
        for k in range(8 * 120):
            seq += 1
            t = T0 + 6 * H + k * 30 * 10**9 + seq % 10**6
            lines.append(
                f'units,{tags},outcome=good,defect_code=none count=1i,agent="a",boot="b",'
                f'device="d",seq={seq}i,historical=false {t}'
            )
        for m in range(8 * 60):
            seq += 1
            t = T0 + 6 * H + (m + 1) * 60 * 10**9 + seq % 10**6
            lines.append(
                f'work,{tags} work_s=60,effective_s=60,down_s=0,start_ns=0i,agent="a",boot="b",'
                f'device="d",seq={seq}i,historical=false {t}'
            )
    return lines


def _timed(fn, repeat: int = 7) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp, influxd(Path(tmp) / "influx") as server:
        db = "bench_kpi"
        for s in setup_statements(db):
            server.query(s)
        lines = _rollup_lines(500, 30)
        t = time.perf_counter()
        for i in range(0, len(lines), 50_000):
            httpx.post(
                f"{server.url}/write",
                params={"db": db, "rp": "rollup"},
                content="\n".join(lines[i : i + 50_000]),
                timeout=120,
            ).raise_for_status()
        load_s = time.perf_counter() - t
        server.write(db, "\n".join(_raw_lines(20)))

        settings, head = kpi_settings(Path(tmp) / "state", server.url, db, 50)
        end = T0 + 30 * 24 * H
        where = f"time >= {T0} AND time < {end}"
        bare = (
            f'SELECT sum("count") FROM "{db}"."rollup"."units_1h" WHERE {where} '
            'GROUP BY "site","line","station","worker","outcome","defect_code"; '
            f'SELECT sum("work_s"),sum("effective_s"),sum("down_s") FROM "{db}"."rollup"."work_1h"'
            f' WHERE {where} GROUP BY "site","line","station","worker"; '
            f'SELECT sum("seconds") FROM "{db}"."rollup"."downtime_1h" WHERE {where} '
            'GROUP BY "site","line","station","worker","reason"'
        )
        bare_units = bare.split(";")[0]

        def run_bare(q: str = bare) -> None:
            httpx.post(f"{server.url}/query", data={"q": q, "db": db, "epoch": "ns"},
                       timeout=60).raise_for_status()  # fmt: skip

        out: dict[str, object] = {"rollup_points_loaded": len(lines), "load_s": round(load_s, 2)}
        with TestClient(create_app(settings)) as client:
            params = {"start": "2026-03-02", "end": "2026-03-31", "limit": 10_000}

            def run_api() -> None:
                r = client.get("/api/v1/kpis", params=params, headers=head)
                r.raise_for_status()
                assert r.json()["total"] == 500 and r.json()["source"] == "rollup"

            def run_bare_parallel() -> None:
                # The same statements as concurrent requests (what the service does).
                with ThreadPoolExecutor(max_workers=4) as pool:
                    list(pool.map(run_bare, bare.split(";")))

            api_s = _timed(run_api)
            bare_s = _timed(run_bare)
            bare_parallel_s = _timed(run_bare_parallel)
            bare_units_s = _timed(lambda: run_bare(bare_units))
            small = {"start": "2026-03-02", "end": "2026-03-02", "limit": 10_000}

            def run_small() -> None:
                r = client.get("/api/v1/kpis", params={**small, "group": "shift"}, headers=head)
                r.raise_for_status()

            raw_q = (
                f'SELECT sum("count") FROM "{db}"."raw"."units" WHERE time >= {T0} AND '
                f'time < {T0 + 24 * H} GROUP BY "site","line","station","worker","outcome",'
                '"defect_code"; SELECT sum("work_s"),sum("effective_s"),sum("down_s") FROM '
                f'"{db}"."raw"."work" WHERE time >= {T0} AND time < {T0 + 24 * H} GROUP BY '
                '"site","line","station","worker"'
            )
            client.app.state.settings.use_rollups = False  # type: ignore[attr-defined]
            small_api_s = _timed(run_small)
            small_bare_s = _timed(lambda: run_bare(raw_q))
        out.update(
            api_500x30d_s=round(api_s, 4),
            bare_influxql_same_aggregation_s=round(bare_s, 4),
            bare_influxql_units_only_s=round(bare_units_s, 4),
            ratio_api_vs_bare=round(api_s / bare_s, 2),
            bare_influxql_statements_in_parallel_s=round(bare_parallel_s, 4),
            ratio_api_vs_bare_parallel=round(api_s / bare_parallel_s, 2),
            target="<= 1 s and <= 1.5x bare",
            raw_20_workers_1_day_points=20 * (960 + 480),
            raw_api_by_shift_s=round(small_api_s, 4),
            raw_bare_influxql_s=round(small_bare_s, 4),
            raw_ratio=round(small_api_s / small_bare_s, 2),
        )
        return out
