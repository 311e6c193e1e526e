"""The collector keeps the daily rollups of its zone after the hours: real Mosquitto and
influxd, the 25-hour day of 25 October 2026 in Europe/Berlin, and a late batch."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

from collector.testing import publish
from takt_cli.localservices import Influxd, Mosquitto
from takt_wire import Batch, encode_batch
from takt_wire.topics import events_topic
from tests.collector.conftest import SettingsFactory, eventually, running
from tests.collector.helpers import rows, unit


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text + "+00:00")


def ns(text: str) -> int:
    return round(utc(text).timestamp()) * 10**9


# Local midnights (calendar facts): 24 Oct 00:00 CEST, 25 Oct 00:00 CEST, 26 Oct 00:00 CET.
OCT24, OCT25, OCT26 = (
    ns("2026-10-23T22:00:00"),
    ns("2026-10-24T22:00:00"),
    ns("2026-10-25T23:00:00"),
)


def batch_of(agent: str, units: list[tuple[str, int]]) -> tuple[str, bytes]:
    events = [
        unit(seq, agent=agent, ts=utc(ts), count=n) for seq, (ts, n) in enumerate(units, start=1)
    ]
    sent = max(e.ts for e in events) + timedelta(seconds=1)
    return events_topic("s1", agent), encode_batch(
        Batch(agent=agent, boot="b1", sent_at=sent, events=events)
    )


def daily(influxd: Influxd, db: str) -> Counter[tuple[int, str]]:
    out: Counter[tuple[int, str]] = Counter()
    answer: list[dict[str, object]] = influxd.query(
        'SELECT "count" FROM "rollup"."units_1d" GROUP BY "tz"', db=db
    )
    for series in answer:
        zone = series["tags"]["tz"]  # type: ignore[index]
        for time_ns, count in series["values"]:  # type: ignore[attr-defined]
            out[(time_ns, zone)] += count
    return out


async def test_daily_rollups_follow_the_hours_and_late_batches(
    mosquitto: Mosquitto, influxd: Influxd, make_settings: SettingsFactory
) -> None:
    settings = make_settings(
        mosquitto.port, influxd.url,
        rollup={"timezone": "Europe/Berlin", "debounce_s": 60},
        validation={"max_past_s": None},
    )  # fmt: skip
    db = settings.influx.database
    first = batch_of("a1", [
        ("2026-10-24T21:59:59.999", 1),  # 23:59:59.999 CEST, 24 October
        ("2026-10-24T22:00:00", 10),  # 00:00 CEST, 25 October
        ("2026-10-25T00:30:00", 100),  # 02:30 CEST
        ("2026-10-25T01:30:00", 1000),  # 02:30 CET, the repeated hour: still the 25th
        ("2026-10-25T22:59:59", 10_000),  # 23:59:59 CET, the 25th's last second (25 h)
        ("2026-10-25T23:00:00", 100_000),  # 00:00 CET, 26 October
    ])  # fmt: skip
    async with running(settings) as collector:
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, [first])
        await eventually(lambda: collector.written == 6 and collector._unacked == 0)
        assert await collector.rollups.flush() == 0
        assert daily(influxd, db) == {
            (OCT24, "Europe/Berlin"): 1,
            (OCT25, "Europe/Berlin"): 11_110,
            (OCT26, "Europe/Berlin"): 100_000,
        }
        # Another gateway back online: its units of the 25th arrive now.
        late = batch_of("a2", [("2026-10-25T12:00:00", 7), ("2026-10-25T12:00:01", 8)])
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, [late])
        await eventually(lambda: collector.written == 8 and collector._unacked == 0)
        assert await collector.rollups.flush() == 0
        assert collector.rollups.queue.stats()[0] == 0
    assert daily(influxd, db) == {
        (OCT24, "Europe/Berlin"): 1,
        (OCT25, "Europe/Berlin"): 11_125,
        (OCT26, "Europe/Berlin"): 100_000,
    }
    hourly = rows(influxd.query('SELECT sum("count") FROM "rollup"."units_1h"', db=db))
    assert hourly[0][1] == 111_126
    # October (from 30 Sep 22:00 UTC, local midnight) holds all three days.
    monthly: Counter[tuple[int, str]] = Counter()
    for t, count, zone in rows(
        influxd.query('SELECT "count", "tz" FROM "rollup"."units_1mo"', db=db)
    ):
        monthly[(t, zone)] += count  # one series per agent (edge)
    assert monthly == {(ns("2026-09-30T22:00:00"), "Europe/Berlin"): 111_126}
