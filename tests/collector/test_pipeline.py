"""Every kind of bad input has a defined outcome; good events become the documented points."""

from __future__ import annotations

from datetime import timedelta

import pytest

from collector.dedupe import SeqTracker
from collector.pipeline import Pipeline, Rules
from takt_wire import MAX_PAYLOAD_BYTES
from takt_wire.signing import SIGNATURE_PROPERTY, sign
from tests.collector.helpers import NOW, TOPIC, batch, raw_batch, unit, unit_dict

KEYS = {"a1@k1": b"secret-one", "a2": b"secret-two"}


def pipeline(**rules: object) -> Pipeline:
    return Pipeline(Rules(**rules), clock=lambda: NOW)  # type: ignore[arg-type]


def test_good_batch_becomes_one_point_per_unit_event() -> None:
    out = pipeline().process(TOPIC, batch(unit(0), unit(1, count=3)))
    assert out.rejected == [] and out.duplicates == 0 and out.events == 2
    assert len(out.lines) == 2
    assert out.lines[1].startswith(
        "units,site=s1,line=L1,station=st1,worker=w1,outcome=good,defect_code=none,edge=a1 "
        'agent="a1",boot="b1",device="plc1",count=3i,seq=1i,historical=false '
    )
    assert out.lag_s == 0.0
    assert len(out.hours) == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed_json"),
        (raw_batch([unit_dict(0)], v=2), "schema_version"),
        (raw_batch([unit_dict(0, v=7)]), "schema_version"),
        (raw_batch([unit_dict(0, count=-1)]), "invalid"),
        (raw_batch([unit_dict(0, count=0)]), "invalid"),
        (raw_batch([unit_dict(0, cycle_s=float("nan"))]), "invalid"),
        (raw_batch([unit_dict(0, count=1.5)]), "invalid"),
        (raw_batch([]), "invalid"),
        (b"x" * (MAX_PAYLOAD_BYTES + 1), "oversized"),
    ],
    ids=[
        "malformed",
        "envelope-version",
        "event-version",
        "negative-count",
        "zero-count",
        "nan",
        "float-count",
        "empty",
        "oversized",
    ],
)
def test_bad_messages_are_dead_lettered_whole_with_their_reason(
    payload: bytes, reason: str
) -> None:
    out = pipeline().process(TOPIC, payload, {"x": "y"})
    assert out.lines == []
    [letter] = out.rejected
    assert (letter.kind, letter.reason) == ("message", reason)
    assert letter.payload == payload and letter.topic == TOPIC and letter.properties == {"x": "y"}
    assert letter.detail


def test_signature_is_checked_when_keys_are_configured() -> None:
    payload = batch(unit(0))
    p = pipeline(signing_keys=KEYS)
    good = p.process(TOPIC, payload, {SIGNATURE_PROPERTY: sign(payload, "a1@k1", KEYS["a1@k1"])})
    assert good.rejected == [] and len(good.lines) == 1
    forged = sign(payload, "a1@k1", b"wrong key")
    # a2's genuine key cannot sign for a1: keys are bound to agents by their id
    other_agent = sign(payload, "a2", KEYS["a2"])
    for props in (
        {},
        {SIGNATURE_PROPERTY: forged},
        {SIGNATURE_PROPERTY: "k9:00"},
        {SIGNATURE_PROPERTY: other_agent},
    ):
        out = p.process(TOPIC, payload, props)
        assert [r.reason for r in out.rejected] == ["bad_signature"]


def test_future_events_and_unknown_stations_are_dead_lettered_alone() -> None:
    p = pipeline(max_future_skew_s=60, stations=frozenset({"s1/L1/st1"}))
    future = unit(1, ts=NOW + timedelta(minutes=5))
    elsewhere = unit(2, station="st9")
    out = p.process(TOPIC, batch(unit(0), future, elsewhere, unit(3)))
    assert len(out.lines) == 2
    assert [(r.kind, r.reason) for r in out.rejected] == [
        ("event", "future_timestamp"),
        ("event", "unknown_station"),
    ]
    assert b'"seq":1' in out.rejected[0].payload and "s1/L1/st9" in out.rejected[1].detail


def test_skew_inside_tolerance_is_accepted() -> None:
    out = pipeline(max_future_skew_s=60).process(
        TOPIC, batch(unit(0, ts=NOW + timedelta(seconds=59)))
    )
    assert out.rejected == [] and len(out.lines) == 1


def test_batch_on_another_agents_topic_is_refused() -> None:
    out = pipeline().process(TOPIC, batch(unit(0, agent="a2"), agent="a2"))
    assert [r.reason for r in out.rejected] == ["topic_mismatch"]


def test_duplicates_are_counted_and_dropped() -> None:
    p = pipeline()
    first = p.process(TOPIC, batch(unit(0), unit(1)))
    again = p.process(TOPIC, batch(unit(1), unit(2)))
    assert len(first.lines) == 2 and len(again.lines) == 1 and again.duplicates == 1
    assert again.rejected == []


def test_gaps_are_reported_once_and_late_events_still_written() -> None:
    p = pipeline()
    p.process(TOPIC, batch(unit(0), unit(1)))
    jump = p.process(TOPIC, batch(unit(5)))
    assert [(g.after, g.missing) for g in jump.gaps] == [(1, 3)]
    late = p.process(TOPIC, batch(unit(3), unit(2), unit(4)))
    assert late.gaps == [] and len(late.lines) == 3 and late.duplicates == 0
    assert p.process(TOPIC, batch(unit(4), unit(5))).duplicates == 2


def test_new_boot_is_a_new_stream() -> None:
    p = pipeline()
    p.process(TOPIC, batch(unit(0)))
    out = p.process(TOPIC, batch(unit(0, boot="b2")))
    assert out.duplicates == 0 and len(out.lines) == 1


def test_tracker_memory_is_bounded_and_never_drops_an_unseen_event() -> None:
    tracker = SeqTracker(max_streams=2, max_holes=10)
    s = tracker.stream("a", "b", 0)
    for seq in range(0, 200, 2):  # every other seq: holes pile up
        assert not tracker.check(s, seq).duplicate
    assert len(s.above) <= 10 and tracker.resets > 0
    for seq in range(1, 200, 2):  # the late ones are never mistaken for duplicates
        assert not tracker.check(s, seq).duplicate
    for i in range(5):
        tracker.stream(f"agent{i}", "b", 0)
    assert len(tracker) == 2


def test_events_before_the_first_seen_are_written_not_dropped() -> None:
    tracker = SeqTracker()
    s = tracker.stream("a", "b", 100)
    assert not tracker.check(s, 100).duplicate
    assert not tracker.check(s, 50).duplicate
    assert tracker.check(s, 100).duplicate
