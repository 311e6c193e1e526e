"""Issue 13, cases 2, 4 (collector side) and 11 (contract) on a real Mosquitto and influxd.

Each hostile message is published as an attacker would, then normal traffic; the
hostile one is dead-lettered with its reason and the normal one is written and
rolled up as if the attack had not happened.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from collector.testing import publish
from takt_cli.localservices import Influxd, Mosquitto
from takt_wire import Batch, encode_batch
from takt_wire.topics import events_topic
from tests.collector.conftest import SettingsFactory, eventually, running
from tests.collector.helpers import raw_batch, rows, unit, unit_dict

TOPIC_A1 = events_topic("s1", "a1")
TOPIC_A2 = events_topic("s1", "a2")


async def test_a_year_1_event_is_refused_and_later_hours_are_still_rolled_up(
    mosquitto: Mosquitto, influxd: Influxd, make_settings: SettingsFactory
) -> None:
    settings = make_settings(mosquitto.port, influxd.url)
    db = settings.influx.database
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    hostile = [
        (TOPIC_A1, raw_batch([unit_dict(0, ts="0001-01-01T00:00:00Z")])),
        (TOPIC_A1, raw_batch([unit_dict(1, ts="2262-04-12T00:00:00Z")])),
        (TOPIC_A1, raw_batch([unit_dict(2, ts=(now + timedelta(days=3)).isoformat())])),
    ]
    counts = [3, 4, 5]
    normal = encode_batch(
        Batch(
            agent="a1",
            boot="b1",
            sent_at=now,
            events=[
                unit(10 + i, count=n, ts=hour + timedelta(minutes=i)) for i, n in enumerate(counts)
            ],
        )
    )
    async with running(settings) as collector:
        await asyncio.to_thread(
            publish, "127.0.0.1", mosquitto.port, [*hostile, (TOPIC_A1, normal)]
        )
        await eventually(
            lambda: collector.written == 3 and collector._unacked == 0, what="normal events"
        )
        await collector.rollups.flush()
        letters = collector.dlq.list()
    assert [(d.kind, d.reason) for d in letters] == [
        ("message", "invalid"),
        ("message", "invalid"),
        ("event", "future_timestamp"),
    ]
    assert "2000-01-01" in letters[0].detail and "2100-01-01" in letters[1].detail
    rollup = rows(influxd.query('SELECT sum("count") FROM "rollup"."units_1h"', db=db))
    assert rollup and rollup[0][1] == sum(counts)


async def test_an_agent_cannot_write_or_pre_empt_another_agents_events(
    mosquitto: Mosquitto, influxd: Influxd, make_settings: SettingsFactory
) -> None:
    settings = make_settings(mosquitto.port, influxd.url)
    db = settings.influx.database
    now = datetime.now(UTC)
    ts = now - timedelta(minutes=2)

    # a2 (its own topic, its own envelope) sends events claiming a1's identities with
    # other counts: before this fix they overwrote a1's points or made a1's real ones
    # be dropped as duplicates.
    forged = encode_batch(
        Batch(
            agent="a2",
            boot="b1",
            sent_at=now,
            events=[unit(s, count=99, ts=ts + timedelta(seconds=s)) for s in range(3)],
        )
    )
    # A batch whose later event goes back to an earlier boot is not how an agent sends.
    boots_mixed = encode_batch(
        Batch(
            agent="a1",
            boot="b2",
            sent_at=now,
            events=[unit(50, boot="b2", ts=ts), unit(51, boot="b1", ts=ts)],
        )
    )
    real = encode_batch(
        Batch(
            agent="a1",
            boot="b1",
            sent_at=now,
            events=[unit(s, count=s + 1, ts=ts + timedelta(seconds=s)) for s in range(3)],
        )
    )
    async with running(settings) as collector:
        messages = [(TOPIC_A2, forged), (TOPIC_A1, boots_mixed), (TOPIC_A1, real)]
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, messages)
        await eventually(lambda: collector.written == 3 and collector._unacked == 0)
        letters = collector.dlq.list()
    assert [(d.kind, d.reason) for d in letters] == [
        ("message", "agent_mismatch"),
        ("message", "boot_mismatch"),
    ]
    counts = rows(influxd.query('SELECT "count" FROM "units"', db=db))
    assert [row[1] for row in counts] == [1, 2, 3], "a1's own figures, none of a2's 99"


async def test_loosely_typed_figures_are_refused_not_coerced(
    mosquitto: Mosquitto, influxd: Influxd, make_settings: SettingsFactory
) -> None:
    settings = make_settings(mosquitto.port, influxd.url)
    db = settings.influx.database
    ts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    hostile = [
        raw_batch([unit_dict(0, ts=ts, count="7")]),
        raw_batch([unit_dict(1, ts=ts, count=True)]),
        raw_batch([unit_dict(2, ts=ts, count=7.0)]),
        raw_batch([{**unit_dict(3, ts=ts), "seq": 2**64}]),
        raw_batch([{**unit_dict(3, ts=ts), "seq": "3"}]),
        raw_batch([unit_dict(4, ts=ts, historical="false")]),
    ]
    good = raw_batch([unit_dict(5, ts=ts, count=2)])
    async with running(settings) as collector:
        messages = [(TOPIC_A1, p) for p in [*hostile, good]]
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, messages)
        await eventually(lambda: collector.written == 1 and collector._unacked == 0)
        letters = collector.dlq.list()
    assert [(d.kind, d.reason) for d in letters] == [("message", "invalid")] * len(hostile)
    counts = rows(influxd.query('SELECT "count", "seq" FROM "units"', db=db))
    assert [row[1:] for row in counts] == [[2, 5]]
