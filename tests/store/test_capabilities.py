"""The start-up capability check, and the collector with 1.x-only features switched off.

On 1.x the check sees everything; with ``retention_policies: false`` nothing but the
database is created or needed (what 2.x/3.x offer through the v1 API), and the collector
writes, rolls up and confirms as with the default. A server lacking what the settings
require stops the start with a message naming it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from collector.config import load_settings
from collector.service import Collector
from collector.testing import Scenario, publish
from takt_cli.localservices import Influxd, Mosquitto
from takt_store.capabilities import check
from takt_store.client import InfluxClient
from takt_store.errors import CapabilityError
from takt_store.settings import InfluxSettings
from tests.collector.conftest import eventually, running
from tests.collector.test_end_to_end import influx_totals


def policies(server: Influxd, db: str) -> list[str]:
    series: list[dict[str, Any]] = server.query(f'SHOW RETENTION POLICIES ON "{db}"')
    return sorted(str(row[0]) for row in series[0]["values"])


async def checked(settings: InfluxSettings) -> Any:
    client = InfluxClient(settings)
    try:
        return await check(client)
    finally:
        await client.aclose()


async def test_default_creates_and_reports_everything(
    influxd: Influxd, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="takt_store.capabilities"):
        caps = await checked(InfluxSettings(url=influxd.url, database="store_caps_default"))
    assert caps.version.startswith("1.") and caps.database_exists and caps.can_query
    assert {"raw", "rollup"} <= caps.retention_policies
    [record] = [r for r in caplog.records if r.getMessage() == "influx capabilities"]
    assert record.influx_version == caps.version  # type: ignore[attr-defined]
    assert policies(influxd, "store_caps_default") == ["autogen", "raw", "rollup"]


async def test_without_retention_policies_only_the_database_is_needed(influxd: Influxd) -> None:
    db = "store_caps_no_rp"
    caps = await checked(InfluxSettings(url=influxd.url, database=db, retention_policies=False))
    assert caps.database_exists and caps.can_query
    assert policies(influxd, db) == ["autogen"], "no 1.x-only statement was needed"


async def test_missing_database_or_policies_fail_clearly(influxd: Influxd) -> None:
    absent = InfluxSettings(url=influxd.url, database="store_caps_absent", create=False)
    with pytest.raises(CapabilityError, match="database 'store_caps_absent' does not exist"):
        await checked(absent)
    influxd.query('CREATE DATABASE "store_caps_bare"')
    bare = InfluxSettings(url=influxd.url, database="store_caps_bare", create=False)
    with pytest.raises(CapabilityError, match=r"retention policies \['raw', 'rollup'\] missing"):
        await checked(bare)
    ok = await checked(bare.model_copy(update={"retention_policies": False}))
    assert ok.retention_policies == {"autogen"}


def collector_settings(mosquitto: Mosquitto, influxd: Influxd, tmp: Path, **influx: Any) -> Any:
    return load_settings(
        None,
        environment="development",
        mqtt={"port": mosquitto.port, "client_id": "store-no-rp-c1", "group": "store-no-rp"},
        influx={"url": influxd.url, "flush_interval_s": 0.1, "max_backoff_s": 1.0, **influx},
        rollup={"debounce_s": 0.2},
        http={"port": 0},
        dlq_path=str(tmp / "dlq.sqlite"),
    )


async def test_collector_without_retention_policies_writes_and_rolls_up(
    influxd: Influxd, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    db = "store_collector_no_rp"
    settings = collector_settings(
        mosquitto, influxd, tmp_path, database=db, retention_policies=False
    )
    scenario = Scenario(agents=2, events_per_agent=300, batch_size=50, site="norp")
    async with running(settings) as collector:
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, scenario.all_batches())
        await eventually(lambda: influx_totals(influxd, db) == scenario.totals(), what="written")
        assert await collector.rollups.flush() == 0
    assert policies(influxd, db) == ["autogen"]
    for measurement, field in (("units", "count"), ("work", "work_s"), ("downtime", "seconds")):
        raw: list[dict[str, Any]] = influxd.query(f'SELECT sum("{field}") FROM "{measurement}"', db)
        rolled: list[dict[str, Any]] = influxd.query(
            f'SELECT sum("{field}") FROM "{measurement}_1h"', db
        )
        assert rolled[0]["values"][0][1] == pytest.approx(raw[0]["values"][0][1]), measurement


async def test_collector_refuses_to_start_when_required_policies_are_missing(
    influxd: Influxd, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    db = "store_collector_missing_rp"
    influxd.query(f'CREATE DATABASE "{db}"')
    settings = collector_settings(mosquitto, influxd, tmp_path, database=db, create=False)
    with pytest.raises(CapabilityError, match="retention policies"):
        await asyncio.wait_for(Collector(settings).run(), 60)
