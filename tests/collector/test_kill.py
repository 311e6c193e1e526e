"""kill -9 of a real collector process mid-stream, then a restart: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from collector.testing import Scenario, publish
from takt_cli.localservices import Influxd, Mosquitto, free_port
from tests.collector.conftest import eventually
from tests.collector.faultproxy import FaultProxy
from tests.collector.test_end_to_end import influx_totals

TAKT = str(Path(sys.executable).parent / "takt")


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAKT_COLLECTOR_")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [TAKT, "collector", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def read(log: Path) -> str:
    return log.read_text()


def kill(proc: subprocess.Popen[bytes]) -> None:
    """kill -9 of the collector's whole process group (if it still runs)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def stop_cleanly(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, read(log)


async def wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            assert proc.poll() is None, read(log)
            with contextlib.suppress(httpx.TransportError):  # not listening yet
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"collector never became healthy:\n{read(log)}")


async def test_kill_9_mid_batch_then_restart(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    scenario = Scenario(agents=3, events_per_agent=4_000, batch_size=100)
    expected = scenario.totals()
    points = sum(v for k, v in expected.items() if k != "count")
    http_port = free_port()
    log = tmp_path / "collector.log"
    async with FaultProxy(influxd.url, delay_s=0.2) as proxy:
        config = tmp_path / "collector.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "environment": "development",
                    "mqtt": {"port": mosquitto.port, "client_id": "kill-c1", "group": "kill"},
                    "influx": {"url": proxy.url, "database": "kill9", "batch_size": 500},
                    "http": {"port": http_port},
                    "dlq_path": str(tmp_path / "dlq.sqlite"),
                }
            )
        )
        proc = start(config, log)
        try:
            await wait_healthy(http_port, proc, log)
            await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, scenario.all_batches())
            await eventually(lambda: len(proxy.requests) >= 4, what="writes under way")
            kill(proc)
            written_before = sum(
                v for k, v in influx_totals(influxd, "kill9").items() if k != "count"
            )
            assert 0 < written_before < points, "the kill came mid-stream"

            proc = start(config, log)
            await wait_healthy(http_port, proc, log)
            await eventually(
                lambda: influx_totals(influxd, "kill9") == expected,
                within=90,
                every=0.5,
                what="every event written after the restart",
            )
            stop_cleanly(proc, log)
        finally:
            kill(proc)
    assert influx_totals(influxd, "kill9") == expected
    assert '"collector stopped"' in read(log) or "collector stopped" in read(log)
