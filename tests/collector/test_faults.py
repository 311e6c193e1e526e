"""InfluxDB misbehaving: overloaded, failing, size-limited, refusing points, or gone for 30 s.

Nothing may be lost: every good point ends up in the real influxd, every refused
one in the dead-letter store with InfluxDB's reason, and no MQTT message is
acknowledged before that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from collector.dlq import DeadLetterStore
from collector.testing import Scenario, publish
from takt_cli.localservices import Influxd, Mosquitto
from takt_wire import Batch, encode_batch
from takt_wire.topics import events_topic
from tests.collector.conftest import SettingsFactory, eventually, running
from tests.collector.faultproxy import FaultProxy, limit_lines, reject_lines_containing
from tests.collector.helpers import rows, unit
from tests.collector.test_end_to_end import influx_totals


def point_count(influxd: Influxd, db: str) -> int:
    return sum(v for k, v in influx_totals(influxd, db).items() if k != "count")


async def test_status_code_policy_loses_nothing(
    mosquitto: Mosquitto, influxd: Influxd, make_settings: SettingsFactory
) -> None:
    scenario = Scenario(agents=2, events_per_agent=1_000, batch_size=250)
    expected = scenario.totals()
    now = datetime.now(UTC)
    poison = [
        unit(seq, agent="agent9", worker="poison", ts=now - timedelta(minutes=2))
        for seq in (0, 1, 2)
    ]
    poison_batch = encode_batch(Batch(agent="agent9", boot="b1", sent_at=now, events=poison))
    async with FaultProxy(influxd.url) as proxy:
        settings = make_settings(
            mosquitto.port, proxy.url, influx={"batch_size": 1_000, "flush_interval_s": 0.5}
        )
        db = settings.influx.database
        proxy.script = [
            (503, {"Retry-After": "1"}, b'{"error":"overloaded"}'),
            (500, {}, b'{"error":"engine hiccup"}'),
            (429, {}, b'{"error":"slow down"}'),
        ]
        proxy.rules = [reject_lines_containing(b"worker=poison"), limit_lines(300)]
        async with running(settings) as collector:
            await asyncio.to_thread(
                publish,
                "127.0.0.1",
                mosquitto.port,
                [*scenario.all_batches(), (events_topic("s1", "agent9"), poison_batch)],
            )
            await eventually(
                lambda: collector._unacked == 0 and collector.metrics.messages._value.get() == 9,
                within=60,
                what="every message acknowledged",
            )
    statuses = [status for status, _, _ in proxy.requests]
    assert statuses[:3] == [503, 500, 429]
    assert proxy.requests[1][2] - proxy.requests[0][2] >= 0.95, "Retry-After was honoured"
    assert 413 in statuses and 400 in statuses
    assert all(lines <= 300 for status, lines, _ in proxy.requests if status == 204)
    assert influx_totals(influxd, db) == expected
    letters = DeadLetterStore(settings.dlq_path).list()
    assert [(d.kind, d.reason) for d in letters] == [("point", "influx_rejected")] * 3
    assert all("worker=poison" in d.payload.decode() for d in letters)
    assert all(d.detail == "HTTP 400: unable to parse: bad point" for d in letters)


async def test_points_influxdb_itself_refuses_are_found_and_dead_lettered(
    mosquitto: Mosquitto, influxd: Influxd, make_settings: SettingsFactory
) -> None:
    """A real 400 (points older than the retention policy) costs only those points."""
    settings = make_settings(mosquitto.port, influxd.url, influx={"raw_duration": "1h"})
    now = datetime.now(UTC)
    events = [
        unit(seq, ts=now - (timedelta(hours=3) if seq in (3, 17) else timedelta(minutes=1)))
        for seq in range(40)
    ]
    payload = encode_batch(Batch(agent="a1", boot="b1", sent_at=now, events=events))
    async with running(settings) as collector:
        await asyncio.to_thread(
            publish, "127.0.0.1", mosquitto.port, [(events_topic("s1", "a1"), payload)]
        )
        await eventually(
            lambda: collector.metrics.messages._value.get() == 1 and collector._unacked == 0
        )
    seqs = rows(influxd.query('SELECT "seq" FROM "units"', db=settings.influx.database))
    assert sorted(r[1] for r in seqs) == [s for s in range(40) if s not in (3, 17)]
    letters = DeadLetterStore(settings.dlq_path).list()
    assert len(letters) == 2 and all("retention" in d.detail for d in letters)
    assert sorted(int(d.payload.split(b"seq=")[1].split(b"i")[0]) for d in letters) == [3, 17]


async def test_influxdb_down_for_30_seconds_then_back(
    mosquitto: Mosquitto,
    influxd_factory: Callable[..., Influxd],
    make_settings: SettingsFactory,
) -> None:
    server = influxd_factory()
    scenario = Scenario(agents=2, events_per_agent=3_000, batch_size=100)
    expected = scenario.totals()
    settings = make_settings(
        mosquitto.port, server.url, mqtt={"receive_maximum": 10}, influx={"batch_size": 500}
    )
    db = settings.influx.database
    async with running(settings) as collector:
        first, rest = scenario.all_batches()[:5], scenario.all_batches()[5:]
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, first)
        await eventually(lambda: collector._unacked == 0 and collector.written > 0)
        server.stop()
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, rest)
        most_unacked = 0
        for _ in range(300):  # 30 s down
            most_unacked = max(most_unacked, collector._unacked)
            await asyncio.sleep(0.1)
        assert 0 < most_unacked <= 10, "nothing acknowledged, at most receive-maximum in flight"
        healthy, detail = collector.health()
        assert not healthy and float(detail["influx_failing_s"]) >= 29  # type: ignore[arg-type]
        server.start()
        await eventually(
            lambda: collector._unacked == 0 and collector.metrics.messages._value.get() == 60,
            within=60,
        )
        assert collector.health()[0]
    assert influx_totals(server, db) == expected
    assert DeadLetterStore(settings.dlq_path).list() == []


async def test_shutdown_while_influxdb_is_down_loses_nothing(
    mosquitto: Mosquitto,
    influxd_factory: Callable[..., Influxd],
    make_settings: SettingsFactory,
) -> None:
    server = influxd_factory()
    scenario = Scenario(agents=1, events_per_agent=2_000, batch_size=100)
    settings = make_settings(
        mosquitto.port, server.url, shutdown_timeout_s=1.0, influx={"batch_size": 300}
    )
    async with running(settings) as collector:
        server.stop()
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, scenario.all_batches())
        await eventually(lambda: collector._unacked > 0, what="messages held")
        started = asyncio.get_running_loop().time()
    assert asyncio.get_running_loop().time() - started < 15, "shutdown did not hang"
    assert collector.written == 0
    server.start()
    async with running(settings) as again:
        await eventually(
            lambda: (
                again._unacked == 0
                and influx_totals(server, settings.influx.database) == scenario.totals()
            ),
            within=60,
            every=0.5,
            what="everything written by the next run",
        )
