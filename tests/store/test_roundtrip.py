"""Every measurement through the collector's writer and read back through the rebuild's
reader (and the schema's inverse), against the live observation of the same event.

The writer is the collector's own: ``collector.lineproto.Formatter`` and its
``InfluxWriter`` (the shared client with the status policy), into a real influxd. The
expected values are computed here from the events with integer arithmetic on the
datetimes, not with the schema's functions.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collector.influx import InfluxWriter
from collector.lineproto import Formatter
from collector.metrics import Metrics
from kpi_service.alerts.rebuild import fetch
from kpi_service.alerts.windows import obs_from_event
from takt_cli.localservices import Influxd
from takt_store.client import InfluxClient
from takt_store.schema import MEASUREMENTS, decode_row, interval_of, rows
from takt_store.settings import InfluxSettings
from takt_wire import Event, GapEvent, SessionEvent, StateEvent, UnitEvent, WorkEvent

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
US = timedelta(microseconds=1)


def seconds_us(ts: datetime) -> float:
    """Epoch seconds to the microsecond, by integer arithmetic (independent of the code)."""
    return ((ts - EPOCH) // US) / 1e6


def seconds_ms(ts: datetime) -> float:
    """Epoch seconds floored to the millisecond: what a point key keeps of an instant."""
    return ((ts - EPOCH) // MS) / 1e3


def make_events(now: datetime) -> list[Event]:
    """One event of every kind (several work shapes), with microseconds in every time."""
    rng = random.Random(14)
    seq = iter(range(1, 1000))

    def base(t: timedelta, **over: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "site": "s1",
            "line": "L1",
            "station": "st.1",
            "device": "plc1",
            "worker": "w1",
            "ts": now - t + timedelta(microseconds=rng.randrange(1, 999_999)),
            "agent": "gw-1",
            "boot": "b1",
            "seq": next(seq),
        }
        fields.update(over)
        return fields

    def work(t: timedelta, span: float, work_s: float, down: dict[str, float]) -> WorkEvent:
        fields = base(t)
        start = fields["ts"] - timedelta(seconds=span)
        effective = work_s - sum(down.values())
        return WorkEvent(**fields, start=start, work_s=work_s, effective_s=effective, down_s=down)

    return [
        UnitEvent(**base(timedelta(minutes=9)), outcome="good", count=3, cycle_s=31.5),
        UnitEvent(
            **base(timedelta(minutes=8)), outcome="defect", defect_code="scratch", serial="SN-1"
        ),
        work(timedelta(minutes=7), 59.25, 59.25, {}),
        # Logged in for part of the interval only: its end is not start + work_s.
        work(timedelta(minutes=6), 60.0, 41.5, {"fault": 10.0, "starved": 2.25}),
        SessionEvent(**base(timedelta(minutes=5)), action="login"),
        StateEvent(**base(timedelta(minutes=4), worker="w1"), state="down", reason="fault"),
        StateEvent(**base(timedelta(minutes=3)), state="running"),
        GapEvent(
            **base(timedelta(minutes=2)),
            start=now - timedelta(minutes=2, seconds=30),
            reason="agent_offline",
        ),
        SessionEvent(**base(timedelta(minutes=1)), action="logout"),
    ]


async def write_as_collector(settings: InfluxSettings, events: list[Event]) -> None:
    writer = InfluxWriter(settings, Metrics())
    try:
        await writer.ensure_database()
        formatter = Formatter()
        lines: list[str] = []
        for event in events:
            formatter.lines(event, lines)
        result = await writer.write(lines)
        assert (result.written, result.rejected) == (len(lines), [])
    finally:
        await writer.aclose()


@pytest.mark.parametrize("retention_policies", [True, False], ids=["rp", "no-rp"])
async def test_every_measurement_round_trips(influxd: Influxd, retention_policies: bool) -> None:
    db = f"store_roundtrip_{int(retention_policies)}"
    settings = InfluxSettings(url=influxd.url, database=db, retention_policies=retention_policies)
    events = make_events(datetime.now(UTC).replace(microsecond=0))
    assert {e.kind for e in events} == {"unit", "work", "session", "state", "gap"}
    await write_as_collector(settings, events)

    # The alert rebuild's reader: each observation is the live one of the same event,
    # instants kept to the millisecond (the point key), intervals to the microsecond.
    found = await fetch(settings, 60)
    by_identity = {identity: obs for obs, identity in found}
    readable = [e for e in events if not isinstance(e, GapEvent)]
    assert set(by_identity) == {e.identity for e in readable}
    for event in readable:
        live = obs_from_event(event)
        assert live is not None
        rebuilt = by_identity[event.identity]
        if isinstance(event, WorkEvent):
            assert rebuilt == live, "a work interval keeps its start and end exactly"
            assert (rebuilt.start, rebuilt.ts) == (seconds_us(event.start), seconds_us(event.ts))
            assert rebuilt.ts - rebuilt.start == pytest.approx(
                (event.ts - event.start).total_seconds(), abs=1e-6
            )
        else:
            assert rebuilt == dataclasses.replace(live, ts=seconds_ms(event.ts))
            assert int(rebuilt.ts) == int(live.ts), "same one-second bucket as live"

    # Every measurement (downtime and gaps too) through the schema's inverse.
    client = InfluxClient(settings)
    try:
        decoded = {}
        for measurement in MEASUREMENTS:
            [series] = await client.query(f"SELECT * FROM {client.source(measurement)}")
            decoded[measurement] = [decode_row(measurement, row) for row in rows(series)]
    finally:
        await client.aclose()
    assert {m: len(points) for m, points in decoded.items()} == {
        "units": 2,
        "work": 2,
        "downtime": 2,
        "sessions": 2,
        "states": 2,
        "gaps": 1,
    }
    gap = next(e for e in events if isinstance(e, GapEvent))
    [gap_point] = decoded["gaps"]
    assert (gap_point.start, gap_point.ts) == (seconds_us(gap.start), seconds_us(gap.ts))
    assert gap_point.tags["reason"] == "agent_offline" and gap_point.identity == gap.identity
    split = next(e for e in events if isinstance(e, WorkEvent) and e.down_s)
    downtime = {p.tags["reason"]: p for p in decoded["downtime"]}
    assert {r: p.fields["seconds"] for r, p in downtime.items()} == split.down_s
    for point in downtime.values():
        assert point.identity == split.identity
        assert point.ts == seconds_ms(split.start), "down time is stamped with its work point"
    units = {p.identity: p for p in decoded["units"]}
    for event in (e for e in events if isinstance(e, UnitEvent)):
        point = units[event.identity]
        assert point.fields["count"] == event.count
        assert point.fields.get("serial") == event.serial
        assert point.fields.get("cycle_s") == event.cycle_s
        assert point.tags["edge"] == event.agent and point.tags["station"] == "st.1"


def test_work_points_written_before_end_ns_fall_back_to_start_plus_work_s() -> None:
    row = {"start_ns": 1_795_420_800_000_001_000, "work_s": 59.5}
    assert interval_of("work", row) == (1_795_420_800.000001, 1_795_420_859.500001)
    with pytest.raises(ValueError, match="instants"):
        interval_of("units", row)
