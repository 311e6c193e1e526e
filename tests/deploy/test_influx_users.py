"""The compose InfluxDB's init script on a real influxd: the collector works without admin.

The influxdb image sources deploy/influxdb/init-takt.sh with ``INFLUX_CMD`` set to an
admin ``influx -execute``; here the Debian ``influx`` CLI plays that part against a
private influxd with authentication. The collector then runs with the compose
collector.yaml's account (``takt-collector``, ``create: false``): it writes, its
rollups work, and it cannot do what an admin can.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml

from collector.config import load_settings
from collector.testing import Scenario, publish
from takt_cli.localservices import Influxd, Mosquitto, find_binary
from takt_cli.stack import REPO
from tests.collector.conftest import eventually, running
from tests.collector.test_end_to_end import influx_totals

ADMIN = ("admin", "admin-password-0123")
COLLECTOR_PASSWORD = "collector-password-0123"


def run_init_script(server: Influxd) -> None:
    cmd = (
        f"{find_binary('influx')} -host 127.0.0.1 -port {server.port} "
        f"-username {ADMIN[0]} -password {ADMIN[1]} -execute"
    )
    env = {**os.environ, "INFLUX_CMD": cmd, "INFLUX_COLLECTOR_PASSWORD": COLLECTOR_PASSWORD}
    script = REPO / "deploy" / "influxdb" / "init-takt.sh"
    result = subprocess.run(
        ["sh", "-c", f'. "{script}"'], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def as_collector(server: Influxd, q: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/query",
        data={"q": q, "db": "takt"},
        auth=("takt-collector", COLLECTOR_PASSWORD),
        timeout=30,
    )


async def test_collector_writes_and_rolls_up_without_admin_rights(
    influxd_factory: Callable[..., Influxd], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    server = influxd_factory(admin=ADMIN)
    run_init_script(server)
    compose_file = yaml.safe_load((REPO / "deploy" / "takt" / "collector.yaml").read_text())
    influx = compose_file["influx"] | {"url": server.url, "flush_interval_s": 0.1}
    assert (influx["username"], influx["create"]) == ("takt-collector", False)
    settings = load_settings(
        None,
        environment="development",
        mqtt={"port": mosquitto.port, "client_id": "influx-users-c1", "group": "influx-users"},
        influx=influx | {"password": COLLECTOR_PASSWORD},
        rollup={"debounce_s": 0.2},
        http={"port": 0},
        dlq_path=str(tmp_path / "dlq.sqlite"),
    )
    scenario = Scenario(agents=1, events_per_agent=500, batch_size=100, site="compose")
    async with running(settings) as collector:
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, scenario.all_batches())
        await eventually(
            lambda: influx_totals(server, "takt") == scenario.totals(), what="all written"
        )
        assert await collector.rollups.flush() == 0
    rollup = server.query('SELECT sum("count") FROM "rollup"."units_1h"', "takt")
    raw = server.query('SELECT sum("count") FROM "raw"."units"', "takt")
    assert rollup and rollup[0]["values"] == raw[0]["values"]
    # ... and no more than that: no admin statement, no other database.
    for statement in ('DROP DATABASE "takt"', "SHOW USERS", 'CREATE DATABASE "other"'):
        answer = as_collector(server, statement)
        assert answer.status_code == 403 or "error" in answer.text, (statement, answer.text)
    assert server.query("SHOW DATABASES")  # takt is still there
