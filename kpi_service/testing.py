"""Test and benchmark helper: canonical events → InfluxDB points exactly as docs/influx-schema.md
says, plus the hourly rollups the collector keeps. Not used by the service itself."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from takt_wire.events import SessionEvent, StateEvent, UnitEvent, WorkEvent

AnyEvent = UnitEvent | WorkEvent | SessionEvent | StateEvent


def _tag(v: str) -> str:
    return v.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _str(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def point_ns(ts: datetime, seq: int) -> int:
    """Point key from event identity: floor(ts to ms) x 10^6 + seq mod 10^6 (ns)."""
    ms = int(ts.timestamp()) * 1000 + ts.microsecond // 1000
    return ms * 1_000_000 + seq % 1_000_000


def _ns(ts: datetime) -> int:
    return int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000


def to_lines(event: AnyEvent) -> list[str]:
    base = f"site={_tag(event.site)},line={_tag(event.line)},station={_tag(event.station)}"
    who = f"{base},worker={_tag(event.worker)}"
    ident = f"agent={_str(event.agent)},boot={_str(event.boot)},seq={event.seq}i"
    hist = f"historical={'true' if event.historical else 'false'}"
    t = point_ns(event.ts, event.seq)
    dev = f"device={_str(event.device)}"
    if isinstance(event, UnitEvent):
        code = event.defect_code or "none"
        fields = f"count={event.count}i,{ident},{dev},{hist}"
        if event.serial is not None:
            fields += f",serial={_str(event.serial)}"
        if event.cycle_s is not None:
            fields += f",cycle_s={float(event.cycle_s)!r}"
        return [f"units,{who},outcome={event.outcome},defect_code={_tag(code)} {fields} {t}"]
    if isinstance(event, WorkEvent):
        down = float(sum(event.down_s.values()))
        lines = [
            f"work,{who} work_s={float(event.work_s)!r},effective_s={float(event.effective_s)!r},"
            f"down_s={down!r},start_ns={_ns(event.start)}i,{ident},{dev},{hist} {t}"
        ]
        lines += [
            f"downtime,{who},reason={_tag(r)} seconds={float(s)!r},{ident} {t}"
            for r, s in sorted(event.down_s.items())
        ]
        return lines
    if isinstance(event, SessionEvent):
        return [f"sessions,{who},action={event.action} {ident},{dev},{hist} {t}"]
    reason = event.reason or "none"
    return [
        f"states,{base},state={event.state},reason={_tag(reason)} "
        f"worker={_str(event.worker)},{ident},{dev},{hist} {t}"
    ]


def setup_statements(db: str) -> list[str]:
    return [
        f'CREATE DATABASE "{db}" WITH NAME "raw"',
        f'CREATE RETENTION POLICY "rollup" ON "{db}" DURATION INF REPLICATION 1',
    ]


ROLLUPS = {
    "units": 'sum("count") AS "count"',
    "work": 'sum("work_s") AS "work_s", sum("effective_s") AS "effective_s", '
    'sum("down_s") AS "down_s"',
    "downtime": 'sum("seconds") AS "seconds"',
}


def rollup_statements(db: str, start_ns: int, end_ns: int) -> list[str]:
    """What the collector runs per touched hour (here over a whole range of hours)."""
    return [
        f'SELECT {fields} INTO "{db}"."rollup"."{m}_1h" FROM "{db}"."raw"."{m}" '
        f"WHERE time >= {start_ns} AND time < {end_ns} GROUP BY time(1h), *"
        for m, fields in ROLLUPS.items()
    ]


def lines_of(events: Iterable[AnyEvent]) -> str:
    return "\n".join(line for e in events for line in to_lines(e)) + "\n"
