"""Rollups are never stale for good: the hours to recompute are durable and independent.

Two failures this guards against: a collector killed after writing (and acknowledging)
but before rolling up used to forget the hours, so the API, which reads rollups for
whole hours, stayed below the raw data; and one hour InfluxDB refuses (an event dated
year 1) used to block every later hour, because the queue was retried in order, whole.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from collector.testing import Scenario, publish
from takt_cli.localservices import Influxd, Mosquitto, free_port
from tests.collector.conftest import SettingsFactory, eventually, running
from tests.collector.test_end_to_end import influx_totals
from tests.collector.test_kill import kill, start, stop_cleanly, wait_healthy

HOUR_NS = 3_600 * 10**9
LAST_HOUR_NS = (2**63 - 1) // HOUR_NS * HOUR_NS
"""The last hour InfluxDB can hold (year 2262): InfluxDB refuses its recomputation.
An hour before 1677 (year 1) cannot hold a point at all and is not even queued."""


def sums(influxd: Influxd, db: str, source: str) -> dict[str, float]:
    """sum(count) of units per worker in ``source`` (raw points or the hourly rollup)."""
    out: dict[str, float] = {}
    for series in influxd.query(f'SELECT sum("count") FROM {source} GROUP BY worker', db=db):
        values: Any = series["values"]
        out[str(series["tags"]["worker"])] = float(values[0][1])  # type: ignore[index]
    return out


async def test_a_failing_hour_never_blocks_the_others(
    mosquitto: Mosquitto, influxd: Influxd, make_settings: SettingsFactory
) -> None:
    scenario = Scenario(agents=2, events_per_agent=600, batch_size=100)
    settings = make_settings(mosquitto.port, influxd.url, rollup={"debounce_s": 3600})
    db = settings.influx.database
    async with running(settings) as collector:
        points = sum(v for k, v in scenario.totals().items() if k != "count")
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, scenario.all_batches())
        await eventually(lambda: collector.written >= points, what="all written", every=0.1)
        assert influx_totals(influxd, db) == scenario.totals()
        collector.rollup_queue.add([-62_135_596_800 * 10**9])  # year 1: ignored, logged
        collector.rollup_queue.add([LAST_HOUR_NS])  # fails every time
        pending_before, _ = collector.rollup_queue.stats()
        assert pending_before >= 2
        failures = await collector.rollups.flush()
        assert failures == 1
        raw = sums(influxd, db, '"raw"."units"')
        assert raw and sums(influxd, db, '"rollup"."units_1h"') == raw
        failing = collector.rollup_queue.failing()
        assert [(hour, attempts) for hour, attempts, _ in failing] == [(LAST_HOUR_NS, 1)]
        assert collector.rollup_queue.stats()[0] == 1
        ok, detail = collector.rollups.health()
        assert ok, "one pending hour younger than stale_after_s is not stale"
        assert detail["rollup_pending_hours"] == 1
        assert collector.metrics.rollup_failures._value.get() == 1
        # New writes keep being rolled up while the failing hour waits for its retry.
        more = Scenario(agents=1, events_per_agent=300, batch_size=100, boot="b2")
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, more.all_batches())
        await eventually(
            lambda: collector.rollup_queue.stats()[0] > 1, what="new hours queued", every=0.1
        )
        assert await collector.rollups.flush() == 0, "the failing hour is not due yet"
        assert sums(influxd, db, '"rollup"."units_1h"') == sums(influxd, db, '"raw"."units"')
        assert collector.rollup_queue.stats()[0] == 1


async def test_rollups_are_done_after_a_kill_9_that_left_them_pending(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    scenario = Scenario(agents=2, events_per_agent=1_000, batch_size=100)
    http_port = free_port()
    log = tmp_path / "collector.log"
    config: dict[str, Any] = {
        "environment": "development",
        "mqtt": {"port": mosquitto.port, "client_id": "rollkill-c1", "group": "rollkill"},
        "influx": {"url": influxd.url, "database": "rollkill", "flush_interval_s": 0.1},
        "rollup": {"debounce_s": 3600},  # nothing is rolled up before the kill
        "http": {"port": http_port},
        "dlq_path": str(tmp_path / "dlq.sqlite"),
    }
    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = start(path, log)
    try:
        await wait_healthy(http_port, proc, log)
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, scenario.all_batches())
        await eventually(
            lambda: influx_totals(influxd, "rollkill") == scenario.totals(),
            what="all written and acknowledged",
            every=0.2,
        )
        kill(proc)
        raw = sums(influxd, "rollkill", '"raw"."units"')
        assert raw and not sums(influxd, "rollkill", '"rollup"."units_1h"'), "no rollup yet"

        config["rollup"] = {"debounce_s": 0.2}
        path.write_text(yaml.safe_dump(config))
        proc = start(path, log)  # nothing is redelivered: only the durable queue knows
        await wait_healthy(http_port, proc, log)
        await eventually(
            lambda: sums(influxd, "rollkill", '"rollup"."units_1h"') == raw,
            within=30,
            every=0.2,
            what="the rollups of the hours written before the kill",
        )
        stop_cleanly(proc, log)
    finally:
        kill(proc)
