"""Test and benchmark helper: canonical events → InfluxDB points, written exactly as the
collector writes them (its own formatter and rollup code). Not used by the service."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

from collector.lineproto import Formatter
from takt_store.client import InfluxClient
from takt_store.rollups import rebuild
from takt_store.settings import InfluxSettings
from takt_wire.events import GapEvent, SessionEvent, StateEvent, UnitEvent, WorkEvent

AnyEvent = UnitEvent | WorkEvent | SessionEvent | StateEvent | GapEvent


def point_time(event: AnyEvent) -> int:
    """Nanosecond time of the event's (first) point, as the collector stamps it."""
    out: list[str] = []
    return Formatter().lines(event, out)


def lines_of(events: Iterable[AnyEvent]) -> str:
    formatter = Formatter()
    out: list[str] = []
    for event in events:
        formatter.lines(event, out)
    return "\n".join(out) + "\n"


def setup_statements(db: str) -> list[str]:
    return [
        f'CREATE DATABASE "{db}" WITH NAME "raw"',
        f'CREATE RETENTION POLICY "rollup" ON "{db}" DURATION INF REPLICATION 1 '
        "SHARD DURATION 52w",  # as takt_store.capabilities.ensure_schema makes it
    ]


TEST_ZONES = ("UTC", "Europe/Berlin")
"""Zones the tests' KPI services run in: each gets its daily rollups (tagged by zone)."""


def roll_up(
    url: str, db: str, start_ns: int, end_ns: int, zones: Iterable[str] = TEST_ZONES
) -> int:
    """What the collector does for the hours it wrote into, over [start_ns, end_ns): the
    hourly rollups, then the daily ones of each zone (the collector keeps one zone; the
    tests keep two, for services in either). Callable from sync and async tests."""

    async def run() -> int:
        client = InfluxClient(InfluxSettings(url=url, database=db))
        try:
            return await rebuild(client, start_ns, end_ns, [ZoneInfo(z) for z in zones])
        finally:
            await client.aclose()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()
