"""Rollups as a query plus a write store exactly what 1.x's ``SELECT ... INTO`` stored, with
retention policies on (the default) and off (the portable setting for 2.x/3.x).

The reference is InfluxDB's own ``SELECT ... INTO ... GROUP BY time(1h), *`` over the same
raw points (run here because 1.x has it), and the unit totals are also checked against a
sum over the events in Python.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collector.lineproto import Formatter
from takt_cli.localservices import Influxd
from takt_store.capabilities import ensure_schema
from takt_store.client import InfluxClient
from takt_store.rollups import recompute
from takt_store.schema import HOUR_NS, ROLLUPS, rollup_aggregate
from takt_store.settings import InfluxSettings
from takt_wire import Event, UnitEvent, WorkEvent

HOUR0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def events() -> list[Event]:
    """Two hours of units and work on two stations, floats that do not add up evenly."""
    rng = random.Random(7)
    out: list[Event] = []
    seq = 0
    for minute in range(120):
        start = HOUR0 + timedelta(minutes=minute)
        for station, worker in (("st1", "w1"), ("st2", "w2")):
            seq += 1
            base: dict[str, Any] = {
                "site": "s1",
                "line": "L1",
                "station": station,
                "device": "plc1",
                "worker": worker,
                "agent": "gw-1",
                "boot": "b1",
                "seq": seq,
            }
            work_s = 60.0 if minute % 3 else rng.uniform(0.1, 59.9)
            down = {"fault": 0.1 * (minute % 4)} if minute % 4 else {}
            out.append(
                WorkEvent(
                    **base,
                    ts=start + timedelta(seconds=60),
                    start=start,
                    work_s=work_s,
                    effective_s=work_s - sum(down.values()),
                    down_s=down,
                )
            )
            for i in range(1 + minute % 3):
                seq += 1
                defect = (minute + i) % 5 == 0
                out.append(
                    UnitEvent(
                        **(base | {"seq": seq}),
                        ts=start + timedelta(seconds=7 + 13 * i),
                        outcome="defect" if defect else "good",
                        defect_code="scratch" if defect else None,
                        count=1 + i,
                    )
                )
    return out


def all_points(server: Influxd, db: str, source: str) -> list[tuple[Any, ...]]:
    """Every point of a measurement as (tags, time, field values), sorted."""
    out = []
    answer: list[dict[str, Any]] = server.query(f"SELECT * FROM {source} GROUP BY *", db=db)
    for series in answer:
        tags = tuple(sorted(series.get("tags", {}).items()))
        for row in series["values"]:
            out.append((tags, *row))
    return sorted(out)


def field_types(server: Influxd, db: str, source: str) -> dict[str, str]:
    series: list[dict[str, Any]] = server.query(f"SHOW FIELD KEYS FROM {source}", db=db)
    return {str(k): str(t) for k, t in series[0]["values"]} if series else {}


@pytest.mark.parametrize("retention_policies", [True, False], ids=["rp", "no-rp"])
async def test_query_plus_write_equals_select_into(
    influxd: Influxd, retention_policies: bool
) -> None:
    db = f"store_rollups_{int(retention_policies)}"
    settings = InfluxSettings(url=influxd.url, database=db, retention_policies=retention_policies)
    client = InfluxClient(settings)
    the_events = events()
    try:
        await ensure_schema(client)
        formatter, lines = Formatter(), list[str]()
        for event in the_events:
            formatter.lines(event, lines)
        assert (await client.write(lines)).rejected == []
        start = int(HOUR0.timestamp()) * 10**9
        written = await recompute(client, start, start + 2 * HOUR_NS)
    finally:
        await client.aclose()
    rollup_rp = '"rollup".' if retention_policies else ""
    raw_rp = '"raw".' if retention_policies else ""
    for m in ROLLUPS:
        influxd.query(
            f'SELECT {rollup_aggregate(m)} INTO "{db}".{rollup_rp or "."}"ref_{m}_1h" '
            f'FROM "{db}".{raw_rp or "."}"{m}" WHERE time >= {start} '
            f"AND time < {start + 2 * HOUR_NS} GROUP BY time(1h), *",
            db=db,
        )
    total = 0
    for m in ROLLUPS:
        ours = all_points(influxd, db, f'{rollup_rp}"{m}_1h"')
        reference = all_points(influxd, db, f'{rollup_rp}"ref_{m}_1h"')
        assert ours and ours == reference, m
        assert field_types(influxd, db, f'{rollup_rp}"{m}_1h"') == field_types(
            influxd, db, f'{rollup_rp}"ref_{m}_1h"'
        )
        total += len(ours)
    assert written == total
    assert field_types(influxd, db, f'{rollup_rp}"units_1h"') == {"count": "integer"}

    # Independently: unit counts per (hour, worker, outcome) summed here.
    expected: Counter[tuple[int, str, str]] = Counter()
    for e in the_events:
        if isinstance(e, UnitEvent):
            hour = int(e.ts.replace(minute=0, second=0, microsecond=0).timestamp()) * 10**9
            expected[(hour, e.worker, e.outcome)] += e.count
    got: Counter[tuple[int, str, str]] = Counter()
    for tags, time_ns, count in all_points(influxd, db, f'{rollup_rp}"units_1h"'):
        tag = dict(tags)
        got[(time_ns, tag["worker"], tag["outcome"])] += count
    assert got == expected
    if not retention_policies:
        policies: list[dict[str, Any]] = influxd.query(f'SHOW RETENTION POLICIES ON "{db}"')
        assert [row[0] for row in policies[0]["values"]] == ["autogen"]
