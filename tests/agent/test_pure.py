"""Pure parts of the agent: counters, mapping, framing, attribution (fixtures, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

from edge_agent.attribution import StationInfo, StationState, StationTracker, WorkerResolver
from edge_agent.counters import counter_delta
from edge_agent.mapping import RawReading, map_reading
from edge_agent.profile import DeviceProfile, OperatorSignal, load_profiles
from edge_agent.sources.serial.framing import Corrupt, FrameDecoder
from edge_agent.sources.serial.models import SerialBinding
from takt_wire import UNATTRIBUTED, EventBase, decode_event

PROFILES = load_profiles(Path(__file__).resolve().parents[2] / "device_profiles")
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


# -- counters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "value", "units", "kind"),
    [
        (None, 500, 0, "first"),
        (10, 15, 5, "normal"),
        (65530, 4, 10, "rollover"),  # small wrap near the top
        (30000, 3, 3, "reset"),  # PLC restart: counts from 0
        (65530, 40000, 40000 - 65530 + 65536, "reset"),  # wrapped delta too big: restart
        (7, 7, 0, "normal"),
    ],
)
def test_counter_delta(last: int | None, value: int, units: int, kind: str) -> None:
    delta = counter_delta(last, value, 16)
    assert delta.kind == kind
    if kind == "reset":
        assert delta.units == value
    else:
        assert delta.units == units


# -- framing -----------------------------------------------------------------

SERIAL = PROFILES["takt-sim-serialbox"]

FRAMING = SERIAL.section(SerialBinding).framing


def frame(**fields: str) -> bytes:
    """The serial box's frame, built from docs/devices.md and not from the agent's code:
    STX, KEY=VALUE fields joined by |, ETX, the XOR of the bytes between STX and ETX
    as two upper-case hex digits, CR LF."""
    body = "|".join(f"{key}={value}" for key, value in fields.items()).encode()
    xor = 0
    for byte in body:
        xor ^= byte
    return b"\x02" + body + b"\x03" + f"{xor:02X}".encode() + b"\r\n"


def test_the_test_frame_builder_follows_the_device_spec() -> None:
    # 'T' 54 ^ '=' 3D ^ '1' 31 ^ '|' 7C ^ 'G' 47 ^ '=' 3D ^ '2' 32 = 6C (worked by hand)
    assert frame(T="1", G="2") == b"\x02T=1|G=2\x036C\r\n"


def test_frames_decode_across_chunk_boundaries() -> None:
    data = frame(T="1", G="2") + frame(T="3", G="4")
    decoder = FrameDecoder(FRAMING)
    out = []
    for i in range(0, len(data), 3):
        out += decoder.feed(data[i : i + 3])
    assert out == [{"T": "1", "G": "2"}, {"T": "3", "G": "4"}]


def test_flipped_byte_and_truncated_frames_are_skipped_and_resync() -> None:
    good = frame(T="1", G="2")
    flipped = bytearray(frame(T="5", G="6"))
    flipped[3] ^= 0x01
    truncated = frame(T="7", G="8")[:6]
    decoder = FrameDecoder(FRAMING)
    out = decoder.feed(bytes(flipped) + truncated + good)
    reasons = [o.reason for o in out if isinstance(o, Corrupt)]
    assert reasons == ["checksum", "truncated"]
    assert out[-1] == {"T": "1", "G": "2"}


def test_garbage_without_start_byte_is_bounded() -> None:
    decoder = FrameDecoder(FRAMING)
    out = decoder.feed(b"x" * (FRAMING.max_frame_bytes + 1))
    assert [o.reason for o in out if isinstance(o, Corrupt)] == ["noise"]
    assert decoder.buffer == bytearray()


# -- mapping -----------------------------------------------------------------


def test_mqtt_json_maps_to_reading() -> None:
    raw = RawReading(
        "S1",
        {
            "ts": 1763884800123,
            "cnt": 12,
            "rej": {"E07": 5},
            "code": "E07",
            "op": "04A3F2",
            "st": 2,
            "ct": 31.5,
        },
    )
    reading = map_reading(raw, PROFILES["takt-sim-counter"])
    assert reading.problems == []
    assert reading.ts == datetime.fromtimestamp(1763884800.123, UTC)
    assert (reading.good, reading.defects, reading.operator) == (12, {"E07": 5}, "04A3F2")
    assert reading.state == "down:fault" and reading.cycle_s == 31.5
    assert reading.defects_complete


@pytest.mark.parametrize(
    ("field", "value"),
    [("cnt", -3), ("cnt", float("nan")), ("cnt", "abc"), ("ct", float("inf")), ("cnt", 1.5)],
)
def test_bad_values_are_problems_not_crashes(field: str, value: object) -> None:
    values: dict[str, object] = {"ts": 1763884800123, "cnt": 1, "ct": 1.0}
    values[field] = value
    reading = map_reading(RawReading("S1", values), PROFILES["takt-sim-counter"])
    assert reading.problems and reading.problems[0].startswith(
        "good" if field == "cnt" else "cycle_time"
    )


def test_unmapped_state_is_reported_and_mapped_to_unknown() -> None:
    raw = RawReading("S1", {"ts": 1763884800123, "st": 9})
    reading = map_reading(raw, PROFILES["takt-sim-counter"])
    assert reading.state == "down:unknown" and "unmapped" in reading.problems[0]


def test_serial_pairs_and_opcua_patterns() -> None:
    reading = map_reading(RawReading("S1", {"T": "1000", "R": "E07:5,E12:1", "B": ""}), SERIAL)
    assert reading.defects == {"E07": 5, "E12": 1} and reading.has_operator
    assert reading.operator is None
    plc = PROFILES["takt-sim-plc"]
    raw = RawReading("S1", {"Rejects.E07": 3}, source_ts=T0)
    reading = map_reading(raw, plc)
    assert reading.defects == {"E07": 3} and not reading.defects_complete and reading.ts == T0


def test_topic_segments_are_addressable() -> None:
    profile = DeviceProfile.model_validate(
        {
            "model": "x",
            "protocol": "mqtt",
            "time_source": "gateway",
            "signals": {"good": {"at": "n"}, "operator": {"at": "$topic.3"}},
            "mqtt": {"topics": ["p/{line}/{station}/+"]},
        }
    )
    reading = map_reading(RawReading("S1", {"n": 1}, topic="p/L1/S1/BADGE9"), profile)
    assert reading.operator == "BADGE9"


# -- attribution -------------------------------------------------------------


def tracker(model: str = "takt-sim-counter", interval: float = 60.0) -> StationTracker:
    info = StationInfo("site1", "L1", "S1", model, agent="a", boot="b")
    resolver = WorkerResolver({"B1": "w1", "B2": "w2"})
    return StationTracker(info, PROFILES[model], resolver, interval)


def dumps(events: list[EventBase]) -> list[dict[str, object]]:
    """The tracker's models as the dicts the wire carries (after checking they are models)."""
    out = []
    for event in events:
        assert isinstance(event, EventBase), "attribution emits takt_wire models"
        out.append(event.model_dump(mode="json", exclude_none=True))
        assert decode_event(out[-1]) == event  # every event meets the contract
    return out


def feed(t: StationTracker, at: float, **values: object) -> list[dict[str, object]]:
    values["ts"] = int((T0 + timedelta(seconds=at)).timestamp() * 1000)
    events, _notes = t.apply(map_reading(RawReading("S1", values), t.profile), T0)
    assert t.rejected == []
    return dumps(list(events))


def totals(events: list[dict[str, object]]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for e in events:
        w = str(e["worker"])
        if e["kind"] == "unit":
            key = (w, "good" if e["outcome"] == "good" else f"defect:{e['defect_code']}")
            out[key] = out.get(key, 0) + int(e["count"])  # type: ignore[call-overload]
        elif e["kind"] == "work":
            for k in ("work_s", "effective_s"):
                out[(w, k)] = out.get((w, k), 0) + float(e[k])  # type: ignore[arg-type]
    return out


def test_units_before_badge_change_go_to_previous_operator() -> None:
    t = tracker()
    events = feed(t, 0, cnt=0, rej={}, op="B1", st=1)
    events += feed(t, 10, cnt=3, op="B1", st=1)
    events += feed(t, 20, cnt=5, rej={"E07": 1}, op="B2", st=1)  # counted before the badge change
    events += feed(t, 30, cnt=6, rej={"E07": 1}, op="", st=1)
    events += feed(t, 40, cnt=8, op="", st=1)
    sums = totals(events)
    assert sums[("w1", "good")] == 5 and sums[("w1", "defect:E07")] == 1
    assert sums[("w2", "good")] == 1
    assert sums[(UNATTRIBUTED, "good")] == 2
    assert sums[("w1", "work_s")] == 20 and sums[("w2", "work_s")] == 10
    kinds = [(e["kind"], e.get("action")) for e in events if e["kind"] == "session"]
    assert kinds == [
        ("session", "login"),
        ("session", "logout"),
        ("session", "login"),
        ("session", "logout"),
    ]


def test_down_time_is_excused_and_idle_is_not() -> None:
    t = tracker()
    events = feed(t, 0, cnt=0, rej={}, op="B1", st=1)
    events += feed(t, 100, cnt=10, st=2)  # fault from 100 s
    events += feed(t, 130, cnt=10, st=0)  # idle from 130 s
    events += feed(t, 150, cnt=10, op="")
    sums = totals(events)
    assert sums[("w1", "work_s")] == 150
    assert sums[("w1", "effective_s")] == 120
    down: dict[str, float] = {}
    for e in events:
        if e["kind"] == "work":
            reasons = cast(dict[str, float], e["down_s"])
            for reason, seconds in reasons.items():
                down[reason] = down.get(reason, 0.0) + seconds
    assert down == {"fault": 30.0}


def test_periodic_intervals_on_device_clock() -> None:
    t = tracker(interval=10)
    events = feed(t, 0, cnt=0, op="B1", st=1)
    for s in range(1, 36):
        events += feed(t, s, cnt=0)
    work = [e for e in events if e["kind"] == "work"]
    assert [e["work_s"] for e in work] == [10.0, 10.0, 10.0]


def test_rollover_reset_and_new_codes() -> None:
    t = tracker()
    feed(t, 0, cnt=65530, rej={"E07": 2}, op="B1", st=1)
    ev = feed(t, 1, cnt=4, rej={"E07": 2, "E12": 1})  # rollover (+10), a new code counts from 0
    assert totals(ev) == {("w1", "good"): 10, ("w1", "defect:E12"): 1}
    ev = feed(t, 2, cnt=2, rej={"E07": 0, "E12": 1})  # PLC restart: counts from 0
    assert totals(ev) == {("w1", "good"): 2}


def test_work_intervals_close_on_whole_minutes_of_the_device_clock() -> None:
    """A shift or hour that starts on a whole minute gets exactly its own work seconds."""
    t = tracker()
    events = feed(t, 0, cnt=0, op="B1", st=1)
    events += feed(t, 45, cnt=1)
    events += feed(t, 200, cnt=2)  # silent device: the gap closes minute by minute
    events += feed(t, 250, cnt=3, op="")
    work = [e for e in events if e["kind"] == "work"]
    bounds = [(e["start"], e["ts"]) for e in work]
    assert len(work) == 5  # 0-60, 60-120, 120-180, 180-240, 240-250 (T0 is on a minute)
    for start_iso, end_iso in bounds:
        start = datetime.fromisoformat(str(start_iso)).timestamp()
        end = datetime.fromisoformat(str(end_iso)).timestamp()
        assert start // 60 == (end - 0.001) // 60, bounds  # never crosses a minute
    assert sum(cast(float, e["work_s"]) for e in work) == 250


def test_stale_and_duplicate_readings_change_nothing() -> None:
    t = tracker()
    feed(t, 0, cnt=0, op="B1", st=1)
    feed(t, 10, cnt=5, op="B1", st=1)
    assert feed(t, 10, cnt=5, op="B1", st=1) == []  # QoS 1 duplicate
    assert feed(t, 5, cnt=2, op="B2", st=0) == []  # older than what was applied: ignored
    assert t.state.worker == "w1" and t.state.counters["good"] == 5


def test_state_survives_a_round_trip_through_json() -> None:
    t = tracker()
    feed(t, 0, cnt=0, op="B1", st=1)
    feed(t, 10, cnt=5)
    restored = StationTracker(
        t.info,
        t.profile,
        t.resolve,
        60.0,
        StationState.model_validate_json(t.state.model_dump_json()),
    )
    ev = feed(restored, 20, cnt=7, op="")
    assert totals(ev) == {("w1", "good"): 2, ("w1", "work_s"): 20, ("w1", "effective_s"): 20}


def test_unknown_badge_and_pseudonyms() -> None:
    resolver = WorkerResolver({"B1": "w1"})
    assert resolver("ZZ 9") == "badge-ZZ_9" and resolver.unknown == {"ZZ 9"}
    hashed = WorkerResolver({"B1": "w1"}, b"key")
    assert hashed("B1").startswith("p-") and hashed("B1") != WorkerResolver({}, b"k2")("B1")
    assert hashed("B1") == WorkerResolver({"B1": "w1"}, b"key")("B1")


def test_login_and_logout_events_instead_of_a_badge_value() -> None:
    """Devices that report 'login'/'logout' events (e.g. an HMI) rather than a badge in force."""
    base = PROFILES["takt-sim-counter"]
    events_spec = OperatorSignal(at="badge", action_at="evt")
    profile = base.model_copy(
        update={"signals": base.signals.model_copy(update={"operator": events_spec})}
    )
    info = StationInfo("site1", "L1", "S1", "hmi", agent="a", boot="b")
    t = StationTracker(info, profile, WorkerResolver({"B1": "w1"}), 60.0)

    def hmi(at: float, **values: object) -> tuple[list[dict[str, object]], list[str]]:
        values["ts"] = int((T0 + timedelta(seconds=at)).timestamp() * 1000)
        reading = map_reading(RawReading("S1", values), profile)
        events, _notes = t.apply(reading, T0)
        return dumps(list(events)), reading.problems

    events, _ = hmi(0, cnt=0, evt="login", badge="B1")
    more, problems = hmi(10, cnt=3)  # no event: the operator stays logged in
    assert problems == []
    events += more
    events += hmi(20, cnt=5, evt="logout")[0]  # counted before the logout
    events += hmi(30, cnt=6)[0]
    _, problems = hmi(40, evt="shutdown")
    assert problems == ["operator.action: unknown action 'shutdown'"]
    _, problems = hmi(50, evt="login")
    assert problems == ["operator: a login event carries no badge"]
    sums = totals(events)
    assert sums[("w1", "good")] == 5 and sums[(UNATTRIBUTED, "good")] == 1
    assert sums[("w1", "work_s")] == 20


def test_an_unobserved_span_is_one_gap_event_charged_to_whoever_was_logged_in() -> None:
    t = tracker()
    feed(t, 0, op="B1", st=1, cnt=0)
    start = datetime(2026, 11, 23, 8, 0, 10, tzinfo=UTC)
    (event,) = t.unobserved(start, start + timedelta(seconds=75.5), "no_history")
    assert decode_event(event.model_dump(mode="json")) == event
    assert event.kind == "gap" and event.worker == "w1" and event.reason == "no_history"
    assert (event.ts - event.start).total_seconds() == 75.5
    assert t.unobserved(start, start, "no_history") == []  # nothing unobserved
    before = t.state.model_dump()
    t.unobserved(start, start + timedelta(seconds=5), "no_history")
    assert t.state.model_dump() == before, "a gap changes nobody's state"
