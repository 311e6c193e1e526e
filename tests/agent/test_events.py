"""Agent events are takt_wire models from attribution to the wire.

Attribution emits models (compared with models built here by hand); the outbox
stores their canonical encoding, converting a file written by the previous
version; the batch that leaves the agent decodes, through takt_wire, to the very
events that went in, historical flag included, and its signature verifies.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.attribution import StationInfo, StationTracker, WorkerResolver
from edge_agent.batching import compose
from edge_agent.config import BrokerConfig, GatewayConfig, PublishConfig, StationConfig
from edge_agent.mapping import RawReading, map_reading
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import FORMAT, Outbox
from edge_agent.profile import load_profiles
from edge_agent.publisher import Publisher
from takt_cli.localservices import Mosquitto
from takt_wire import (
    EventBase,
    SessionEvent,
    StateEvent,
    UnitEvent,
    WorkEvent,
    decode_batch,
)
from takt_wire.acks import encode_ack, seq_ranges
from takt_wire.signing import SIGNATURE_PROPERTY, verify
from takt_wire.topics import acks_topic, events_topic
from tests.wire.strategies import events

PROFILES = load_profiles(Path(__file__).resolve().parents[2] / "device_profiles")
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
KEY_ID, KEY = "gw-1@k1", b"a-signing-key-for-tests-0123"
WHERE = {"site": "site1", "line": "L1", "station": "S1", "device": "plc"}
ME = {"agent": "gw-1", "boot": "b1"}


def tracker() -> StationTracker:
    info = StationInfo("site1", "L1", "S1", "plc", agent="gw-1", boot="b1")
    return StationTracker(info, PROFILES["takt-sim-counter"], WorkerResolver({"B1": "w1"}), 60.0)


def feed(t: StationTracker, at: float, **values: object) -> list[Any]:
    values["ts"] = int((T0 + timedelta(seconds=at)).timestamp() * 1000)
    events, _notes = t.apply(map_reading(RawReading("S1", values), t.profile), T0)
    return list(events)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_attribution_emits_the_models_of_what_happened() -> None:
    t = tracker()
    got = feed(t, 0, cnt=0, rej={}, op="B1", st=1)
    got += feed(t, 10, cnt=3, rej={"E07": 1}, st=2)  # 3 good, 1 defect, then a fault
    got += feed(t, 30, cnt=3, op="", st=1)  # logout, running again
    common = WHERE | ME | {"seq": 0}
    expected: list[EventBase] = [
        SessionEvent(**common, worker="w1", ts=at(0), action="login"),
        StateEvent(**common, worker="w1", ts=at(0), state="running"),
        UnitEvent(**common, worker="w1", ts=at(10), outcome="good", count=3),
        UnitEvent(**common, worker="w1", ts=at(10), outcome="defect", defect_code="E07"),
        WorkEvent(**common, worker="w1", ts=at(10), start=at(0), work_s=10, effective_s=10),
        StateEvent(**common, worker="w1", ts=at(10), state="down", reason="fault"),
        WorkEvent(
            **common,
            worker="w1",
            ts=at(30),
            start=at(10),
            work_s=20,
            effective_s=0,
            down_s={"fault": 20},
        ),
        SessionEvent(**common, worker="w1", ts=at(30), action="logout"),
        StateEvent(**common, worker="unattributed", ts=at(30), state="running"),
    ]
    assert got == expected
    assert t.rejected == []


def test_an_event_the_contract_refuses_is_kept_for_the_dead_letters_not_emitted() -> None:
    t = tracker()
    before_2000 = int(datetime(1999, 12, 31, tzinfo=UTC).timestamp() * 1000)
    reading = map_reading(RawReading("S1", {"ts": before_2000, "cnt": 0, "op": "B1"}), t.profile)
    produced, _ = t.apply(reading, T0)
    assert produced == [] and t.state.worker == "w1"  # the station's state still moves on
    (reason, fields), *_ = t.rejected
    assert reason.startswith("invalid: ts:") and fields["kind"] == "session"
    assert fields["worker"] == "w1" and fields["ts"].year == 1999


def old_outbox(path: Path, rows: list[tuple[int, float, str]]) -> None:
    """An outbox file as the previous version wrote it: its schema, no user_version, and
    bodies of hand-made JSON text (no "v", no "historical", identity appended)."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE events (seq INTEGER PRIMARY KEY, created REAL NOT NULL, body TEXT NOT NULL);
        CREATE TABLE stations (station TEXT PRIMARY KEY, state TEXT NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE dead_letter (id INTEGER PRIMARY KEY, created REAL NOT NULL,
            reason TEXT NOT NULL, body TEXT NOT NULL);
        """
    )
    db.executemany("INSERT INTO events VALUES (?, ?, ?)", rows)
    db.execute("INSERT INTO meta VALUES ('last_seq', ?)", (str(rows[-1][0]),))
    db.execute("INSERT INTO stations VALUES ('S1', '{\"worker\": \"w1\"}')")
    db.commit()
    db.close()


OLD_BODIES = [
    '{"kind":"session","site":"site1","line":"L1","station":"S1","device":"plc","worker":"w1",'
    '"ts":"2026-11-23T08:00:00Z","action":"login","agent":"gw-1","boot":"b0","seq":40}',
    '{"kind":"unit","site":"site1","line":"L1","station":"S1","device":"plc","worker":"w1",'
    '"ts":"2026-11-23T08:00:10.250000Z","outcome":"good","count":3,"cycle_s":31.5,'
    '"agent":"gw-1","boot":"b0","seq":41}',
    '{"kind":"unit","site":"site1","line":"L1","station":"S1","device":"plc","worker":"w1",'
    '"ts":"2026-11-23T08:00:11Z","outcome":"defect","count":1}',  # truncated by hand: refused
    '{"kind":"work","site":"site1","line":"L1","station":"S1","device":"plc","worker":"w1",'
    '"ts":"2026-11-23T08:01:00Z","start":"2026-11-23T08:00:00Z","work_s":60.0,'
    '"effective_s":45.0,"down_s":{"fault":15.0},"agent":"gw-1","boot":"b0","seq":43}',
]


def test_a_file_of_the_previous_version_is_converted_and_still_publishes(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    created = T0.timestamp()
    old_outbox(path, [(40 + i, created + i, body) for i, body in enumerate(OLD_BODIES)])
    box = Outbox(path, agent="gw-1", boot="b1")
    assert (
        box.pending == 3 and box.last_seq == 43 and box.load_states() == {"S1": '{"worker": "w1"}'}
    )
    ((reason, body),) = box.dead_letters()
    assert reason.startswith(f"outbox format {FORMAT}: invalid") and '"defect"' in body
    rows = box.fetch(-1, 10)
    assert [r[:2] for r in rows] == [(40, created), (41, created + 1), (43, created + 3)]
    payload = compose(
        rows,
        agent="gw-1",
        boot="b1",
        now=created + 3600,
        historical_after_s=30,
        max_bytes=64 * 1024,
        key=(KEY_ID, KEY),
    )
    assert verify(payload.data, payload.signature, {KEY_ID: KEY}) == KEY_ID
    batch = decode_batch(payload.data)
    assert (payload.used, payload.first, payload.last, payload.historical) == (3, 40, 43, 3)
    # what each old body says, read with the standard library (not the agent's decoder)
    for event, old in zip(batch.events, [OLD_BODIES[0], OLD_BODIES[1], OLD_BODIES[3]], strict=True):
        fields = json.loads(old)
        dumped = json.loads(event.model_dump_json(exclude_none=True))
        assert dumped.pop("historical") is True and dumped.pop("v") == 1
        for key in ("ts", "start"):
            if key in fields:
                assert datetime.fromisoformat(dumped.pop(key)) == datetime.fromisoformat(
                    fields.pop(key)
                )
        assert dumped == fields
    box.close()
    box = Outbox(path, agent="gw-1", boot="b2")  # opened again: nothing converted twice
    assert box.fetch(-1, 10) == rows and len(box.dead_letters()) == 1
    box.close()


def with_identity(event: EventBase, boot: str = "b1") -> EventBase:
    return event.model_copy(update={"agent": "gw-1", "boot": boot, "historical": False})


@settings(max_examples=40, deadline=None)
@given(st.lists(events, min_size=1, max_size=12), st.data())
def test_every_event_kind_round_trips_outbox_batch_and_decode(
    items: list[EventBase], data: st.DataObject
) -> None:
    """Any event → outbox → batch payload → takt_wire decode is the same model, with the
    sequence number the outbox gave it and the historical flag the publisher set."""
    now = T0.timestamp()
    ages = data.draw(st.lists(st.sampled_from([0.0, 29.0, 31.0, 86400.0]), min_size=len(items)))
    ages = ages[: len(items)]
    with tempfile.TemporaryDirectory() as tmp:
        box = Outbox(Path(tmp) / "o.db", agent="gw-1", boot="b1", synchronous="NORMAL")
        box.commit([with_identity(e) for e in items], {}, happened=[now - a for a in ages])
        rows = box.fetch(-1, 100)
        box.close()
    payload = compose(
        rows,
        agent="gw-1",
        boot="b1",
        now=now,
        historical_after_s=30,
        max_bytes=512 * 1024,
        key=(KEY_ID, KEY),
    )
    assert verify(payload.data, payload.signature, {KEY_ID: KEY}) == KEY_ID
    batch = decode_batch(payload.data)
    assert payload.used == len(items) and payload.historical == sum(a > 30 for a in ages)
    expected = [
        with_identity(e).model_copy(update={"seq": seq, "historical": age > 30})
        for seq, (e, age) in enumerate(zip(items, ages, strict=True))
    ]
    assert batch.events == expected
    assert [e.kind for e in batch.events] == [e.kind for e in items]  # type: ignore[attr-defined]


def test_a_batch_stops_at_the_byte_limit_and_the_rest_follows() -> None:
    event = with_identity(
        UnitEvent(**WHERE, **ME, worker="w1", ts=T0, seq=0, outcome="good", serial="x" * 100)
    )
    with tempfile.TemporaryDirectory() as tmp:
        box = Outbox(Path(tmp) / "o.db", agent="gw-1", boot="b1", synchronous="NORMAL")
        box.commit([event] * 100, {})
        rows = box.fetch(-1, 100)
        box.close()
    size = len(rows[0][2]) + 1
    first = compose(
        rows, agent="gw-1", boot="b1", now=T0.timestamp(), historical_after_s=30, max_bytes=4096
    )
    assert first.used == 4096 // size and first.signature is None
    assert len(decode_batch(first.data).events) == first.used
    rest = compose(
        rows[first.used :],
        agent="gw-1",
        boot="b1",
        now=T0.timestamp(),
        historical_after_s=30,
        max_bytes=4096,
    )
    assert rest.first == first.last + 1


class Collector:
    """Stands in for the collector on a real broker: keeps each batch with its signature
    and confirms the sequence numbers it read (with the standard library's json)."""

    def __init__(self, port: int) -> None:
        self.received: list[tuple[bytes, str | None]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(events_topic("site1", "gw-1"), qos=1)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        props = dict(getattr(msg.properties, "UserProperty", None) or [])
        self.received.append((bytes(msg.payload), props.get(SIGNATURE_PROPERTY)))
        seqs = [event["seq"] for event in json.loads(msg.payload)["events"]]
        for ack in encode_ack("gw-1", seq_ranges(seqs), "test-collector"):
            client.publish(acks_topic("site1", "gw-1"), ack, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.integration
async def test_an_old_outbox_drains_signed_through_a_real_broker(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    path = tmp_path / "outbox.db"
    created = time.time() - 3600  # waited an hour: historical
    old_outbox(path, [(40 + i, created, body) for i, body in enumerate(OLD_BODIES)])
    box = Outbox(path, agent="gw-1", boot="b1")
    config = GatewayConfig(
        agent_id="gw-1",
        site="site1",
        broker=BrokerConfig(port=mosquitto.port, allow_anonymous=True),
        signing=True,
        signing_key=KEY.decode(),
        publish=PublishConfig(signing_key_id=KEY_ID),
        stations=[
            StationConfig.model_validate(
                {"id": "S1", "line": "L1", "profile": "takt-sim-counter"}
                | {"connection": {"type": "mqtt"}}
            )
        ],
    )
    live = with_identity(UnitEvent(**WHERE, **ME, worker="w1", ts=T0, seq=0, outcome="good"))
    box.commit([live], {})
    collector = Collector(mosquitto.port)
    publisher = Publisher(config, box, AgentMetrics(), "b1")
    task = asyncio.create_task(publisher.run())
    try:
        assert await publisher.flush(within_s=30), "the collector confirmed everything"
    finally:
        task.cancel()
        collector.close()
    assert box.pending == 0
    decoded = []
    for payload, signature in collector.received:
        assert verify(payload, signature, {KEY_ID: KEY}) == KEY_ID
        decoded += decode_batch(payload).events
    assert [(e.seq, e.kind, e.historical) for e in decoded] == [
        (40, "session", True),
        (41, "unit", True),
        (43, "work", True),
        (44, "unit", False),
    ]
    assert decoded[-1] == live.model_copy(update={"seq": 44})
    box.close()
