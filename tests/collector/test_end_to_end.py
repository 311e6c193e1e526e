"""Real Mosquitto and influxd: events in = points in InfluxDB, with two collectors sharing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx

from collector.testing import Scenario, publish
from takt_cli.localservices import Influxd, Mosquitto
from takt_wire import MAX_PAYLOAD_BYTES, Batch, encode_batch
from takt_wire.signing import SIGNATURE_PROPERTY, sign
from takt_wire.topics import events_topic
from tests.collector.conftest import SettingsFactory, eventually, running
from tests.collector.helpers import raw_batch, rows, unit, unit_dict


def influx_totals(influxd: Influxd, db: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for measurement, field in (
        ("units", "seq"),
        ("work", "seq"),
        ("downtime", "seq"),
        ("sessions", "seq"),
        ("states", "seq"),
    ):
        series = influxd.query(f'SELECT count("{field}") FROM "{measurement}"', db=db)
        out[measurement] = int(rows(series)[0][1]) if series else 0
    series = influxd.query('SELECT sum("count") FROM "units"', db=db)
    out["count"] = int(rows(series)[0][1]) if series else 0
    return out


async def test_two_collectors_share_the_load_and_write_every_event_once(
    mosquitto: Mosquitto, influxd: Influxd, make_settings: SettingsFactory
) -> None:
    scenario = Scenario(agents=3, events_per_agent=2_000, batch_size=100)
    expected = scenario.totals()
    lines = sum(v for k, v in expected.items() if k != "count")
    one = make_settings(mosquitto.port, influxd.url)
    two = make_settings(
        mosquitto.port,
        influxd.url,
        mqtt={"client_id": one.mqtt.client_id[:-1] + "2"},
        dlq_path=str(one.dlq_path) + "2",
        validation={"report_gaps": False},
    )
    db = one.influx.database
    async with running(one) as c1, running(two) as c2:
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, scenario.all_batches())
        await eventually(lambda: c1.written + c2.written >= lines, what="all points written")
        assert c1.written > 0 and c2.written > 0, "the shared subscription split the messages"
        assert c1.written + c2.written == lines
        # Each sees part of every agent's stream: gaps everywhere, none of them real.
        assert c1.metrics.gaps._value.get() > 0, "sharing makes every collector see gaps"
        assert c2.metrics.gaps._value.get() == 0, "report_gaps: false keeps them out"
        await c1.rollups.flush()
        await c2.rollups.flush()
    assert influx_totals(influxd, db) == expected
    rollup = influxd.query('SELECT sum("count") FROM "rollup"."units_1h"', db=db)
    assert rows(rollup)[0][1] == expected["count"]
    work = influxd.query('SELECT sum("work_s"), sum("down_s") FROM "rollup"."work_1h"', db=db)
    assert rows(work)[0][1:] == [60.0 * expected["work"], 14.5 * expected["work"]]


async def test_bad_input_is_dead_lettered_and_the_collector_keeps_going(
    mosquitto: Mosquitto, influxd: Influxd, make_settings: SettingsFactory, monkeypatch
) -> None:
    key = b"a1-signing-secret"
    monkeypatch.setenv(
        "TAKT_COLLECTOR_VALIDATION__SIGNING_KEYS", json.dumps({"a1@k1": key.decode()})
    )
    settings = make_settings(
        mosquitto.port,
        influxd.url,
        validation={"require_signature": True, "stations": ["s1/L1/st1"], "max_future_skew_s": 60},
    )
    now = datetime.now(UTC)
    topic = events_topic("s1", "a1")
    ts = (now - timedelta(minutes=1)).isoformat()

    def signed(payload: bytes) -> tuple[str, bytes, dict[str, str]]:
        return topic, payload, {SIGNATURE_PROPERTY: sign(payload, "a1@k1", key)}

    def good(*seqs: int, **over: object) -> bytes:
        return encode_batch(
            Batch(
                agent="a1",
                boot="b1",
                sent_at=now,
                events=[unit(s, ts=now - timedelta(seconds=30), **over) for s in seqs],
            )
        )

    messages = [
        signed(b'{"v":1,"agent":'),
        signed(raw_batch([unit_dict(0, ts=ts)], v=2)),
        (topic, good(0), {SIGNATURE_PROPERTY: sign(good(0), "a1@k1", b"forged")}),
        signed(raw_batch([unit_dict(0, ts=ts, cycle_s=float("nan"))])),
        signed(raw_batch([unit_dict(0, ts=ts, count=-3)])),
        signed(b" " * (MAX_PAYLOAD_BYTES + 10)),
        signed(good(1, station="st9")),
        signed(good(2)),
        signed(good(2)),  # duplicate
        signed(
            encode_batch(
                Batch(
                    agent="a1",
                    boot="b1",
                    sent_at=now,
                    events=[unit(3, ts=now + timedelta(hours=1))],
                )
            )
        ),
        signed(good(4)),
    ]
    async with running(settings) as collector:
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, messages)
        await eventually(
            lambda: collector.written >= 2 and collector._unacked == 0, what="good events written"
        )
        letters = collector.dlq.list()
        async with httpx.AsyncClient() as http:
            health = await http.get(f"http://127.0.0.1:{collector.http_port}/healthz")
            metrics = (await http.get(f"http://127.0.0.1:{collector.http_port}/metrics")).text
    assert health.status_code == 200
    assert [(d.kind, d.reason) for d in letters] == [
        ("message", "malformed_json"),
        ("message", "schema_version"),
        ("message", "bad_signature"),
        ("message", "invalid"),
        ("message", "invalid"),
        ("message", "oversized"),
        ("event", "unknown_station"),
        ("event", "future_timestamp"),
    ]
    assert all(d.detail and d.topic == topic for d in letters)
    assert SIGNATURE_PROPERTY in letters[0].properties
    assert collector.written == 2
    assert "takt_collector_duplicates_total 1.0" in metrics
    assert 'takt_collector_rejected_total{kind="message",reason="invalid"} 2.0' in metrics
    seqs = influxd.query('SELECT "seq" FROM "units"', db=settings.influx.database)
    assert [row[1] for row in rows(seqs)] == [2, 4]


async def test_rollups_follow_late_and_redelivered_events(
    mosquitto: Mosquitto, influxd: Influxd, make_settings: SettingsFactory
) -> None:
    settings = make_settings(mosquitto.port, influxd.url, rollup={"debounce_s": 60})
    db = settings.influx.database
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)

    def batch_of(agent: str, counts: list[int]) -> tuple[str, bytes]:
        events = [
            unit(seq, agent=agent, count=n, ts=hour + timedelta(minutes=seq))
            for seq, n in enumerate(counts)
        ]
        payload = encode_batch(Batch(agent=agent, boot="b1", sent_at=hour, events=events))
        return events_topic("s1", agent), payload

    def rollup_sum() -> int:
        found = rows(influxd.query('SELECT sum("count") FROM "rollup"."units_1h"', db=db))
        return int(found[0][1]) if found else 0

    async with running(settings) as collector:
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, [batch_of("a1", [1, 2, 3])])
        await eventually(lambda: collector.written == 3 and collector._unacked == 0)
        await collector.rollups.flush()
        assert rollup_sum() == 6
        late = batch_of("a2", [10, 20])
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, [late, late])
        await eventually(lambda: collector.metrics.messages._value.get() == 3)
        await eventually(lambda: collector._unacked == 0)
        await collector.rollups.flush()
        assert rollup_sum() == 36
        assert collector.metrics.duplicates._value.get() == 2
