"""Line protocol: documented points, escaping that round-trips through a real influxd."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, TypeAdapter

from collector.lineproto import (
    Formatter,
    UnrepresentableError,
    epoch_us,
    escape_measurement,
    escape_tag,
    hour_of,
    point_time_ns,
    quote_field,
)
from takt_cli.localservices import Influxd
from takt_wire import SessionEvent, StateEvent, WorkEvent
from tests.collector.helpers import rows, unit

BASE = {
    "site": "s1",
    "line": "L1",
    "station": "st1",
    "device": "plc1",
    "worker": "w1",
    "agent": "a1",
    "boot": "b1",
}
TS = datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)


def test_point_time_is_millisecond_floor_plus_seq() -> None:
    assert point_time_ns(TS, 7) == 1_795_420_800_123 * 1_000_000 + 7
    assert point_time_ns(TS, 2_000_042) == 1_795_420_800_123 * 1_000_000 + 42
    assert hour_of(point_time_ns(TS, 999_999)) == 1_795_420_800 * 10**9


zones = st.one_of(
    st.just(UTC),
    st.builds(
        timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
    ),
    st.timezones(),
)


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=zones)
)
def test_epoch_us_is_exact_in_any_zone(ts: datetime) -> None:
    exact = (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert epoch_us(ts) == exact
    if ts.utcoffset() % timedelta(minutes=1):  # type: ignore[operator]
        return  # ISO 8601 (and so the wire) carries whole-minute offsets only
    parsed = TypeAdapter(AwareDatetime).validate_json(f'"{ts.isoformat()}"')
    assert (
        epoch_us(parsed)
        == epoch_us(parsed)
        == (parsed - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    )


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(0, 2**53),
)
def test_point_time_stays_in_its_millisecond_and_hour(ts: datetime, seq: int) -> None:
    ns = point_time_ns(ts, seq)
    exact_ms = (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert ns // 1_000_000 == exact_ms
    assert hour_of(ns) == (exact_ms // 3_600_000) * 3_600_000 * 1_000_000


def test_unit_work_session_state_points() -> None:
    f = Formatter()
    lines: list[str] = []
    f.lines(unit(3, outcome="defect", defect_code="scratch", serial='S "1"', cycle_s=2.0), lines)
    work = WorkEvent(
        **BASE,
        ts=TS,
        seq=4,
        start=TS - timedelta(seconds=60),
        work_s=60,
        effective_s=50,
        down_s={"fault": 10},
    )
    f.lines(work, lines)
    f.lines(SessionEvent(**BASE, ts=TS, seq=5, action="login"), lines)
    f.lines(StateEvent(**BASE, ts=TS, seq=6, state="down", reason="fault", historical=True), lines)
    ns = point_time_ns(TS, 0)
    work_ns = point_time_ns(TS - timedelta(seconds=60), 0)
    assert lines[0].startswith(
        "units,site=s1,line=L1,station=st1,worker=w1,outcome=defect,defect_code=scratch,edge=a1 "
        'agent="a1",boot="b1",device="plc1",count=1i,seq=3i,historical=false,'
    )
    assert 'serial="S \\"1\\""' in lines[0] and "cycle_s=2.0" in lines[0]
    assert lines[1] == (
        "work,site=s1,line=L1,station=st1,worker=w1,edge=a1 "
        "work_s=60.0,effective_s=50.0,down_s=10.0,"
        f"start_ns={ns + 456_000 - 60 * 10**9}i,end_ns={ns + 456_000}i,"
        f'seq=4i,historical=false,agent="a1",boot="b1",device="plc1" {work_ns + 4}'
    )  # work and down time are stamped at the interval's start; end_ns keeps its end
    assert lines[2] == (
        "downtime,site=s1,line=L1,station=st1,worker=w1,reason=fault,edge=a1 seconds=10.0,"
        f'agent="a1",boot="b1",seq=4i {work_ns + 4}'
    )
    assert lines[3].startswith(
        "sessions,site=s1,line=L1,station=st1,worker=w1,action=login,edge=a1 "
    )
    assert lines[4].startswith(
        'states,site=s1,line=L1,station=st1,state=down,reason=fault,edge=a1 worker="w1",'
    )
    assert "historical=true" in lines[4]


def test_escaping_rules() -> None:
    assert escape_tag("a b,c=d") == "a\\ b\\,c\\=d"
    assert escape_measurement("a b,c=d") == "a\\ b\\,c=d"
    assert quote_field('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
    for bad in ("", "back\\slash", "line\nbreak"):
        with pytest.raises(UnrepresentableError):
            escape_tag(bad)


tag_text = st.text(
    st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="\\"),
    min_size=1,
    max_size=20,
)
field_text = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40)
_counter = itertools.count()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tag=tag_text, text=field_text)
def test_escaped_values_round_trip_through_influxd(influxd: Influxd, tag: str, text: str) -> None:
    """Whatever we escape, InfluxDB stores exactly the original value."""
    influxd.query('CREATE DATABASE "lp_escape"')
    n = next(_counter)
    line = f"{escape_measurement('m ,' + tag)},t={escape_tag(tag)} s={quote_field(text)},n={n}i {n}"
    influxd.write("lp_escape", line)
    measurement = ("m ," + tag).replace("\\", "\\\\").replace('"', '\\"')
    [series] = influxd.query(f'SELECT * FROM "{measurement}" WHERE n = {n}', db="lp_escape")
    columns = series["columns"]
    [row] = rows([series])
    got = dict(zip(columns, row, strict=True))  # type: ignore[call-overload]
    assert got["t"] == tag
    expected = text.replace("\r", "\\r").replace("\n", "\\n")
    assert got["s"] == expected


def test_gap_point_is_stamped_at_its_start_with_its_length() -> None:
    from takt_wire import GapEvent

    start = datetime(2026, 11, 23, 8, 0, 0, 250000, tzinfo=UTC)
    gap = GapEvent(
        **BASE, ts=start + timedelta(seconds=90), seq=7, start=start, reason="no_history"
    )
    lines: list[str] = []
    Formatter().lines(gap, lines)
    start_ns = 1_795_420_800_250_000_000  # 2026-11-23T08:00:00.25Z: 20,780 days after 1970
    assert lines == [
        f"gaps,site=s1,line=L1,station=st1,worker=w1,reason=no_history,edge=a1 "
        f'seconds=90.0,start_ns={start_ns}i,seq=7i,historical=false,agent="a1",boot="b1",'
        f'device="plc1" {start_ns + 7}'
    ]
