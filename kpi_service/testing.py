"""Test and benchmark helper: canonical events → InfluxDB points, written exactly as the
collector writes them (its own formatter and rollup statements). Not used by the service."""

from __future__ import annotations

from collections.abc import Iterable

from collector.lineproto import Formatter
from takt_store.schema import rollup_aggregate
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
        f'CREATE RETENTION POLICY "rollup" ON "{db}" DURATION INF REPLICATION 1',
    ]


def rollup_statements(db: str, start_ns: int, end_ns: int) -> list[str]:
    """What the collector runs per touched hour (here over a whole range of hours)."""
    return [
        f'SELECT {rollup_aggregate(m)} INTO "{db}"."rollup"."{m}_1h" FROM "{db}"."raw"."{m}" '
        f"WHERE time >= {start_ns} AND time < {end_ns} GROUP BY time(1h), *"
        for m in ("units", "work", "downtime")
    ]
