"""A broker crash while the collector is away must not cost the agent a single event.

The failure this guards against: Mosquitto restores a persistent session after a
restart but not its ``$share`` subscription, so until the collector is back the
broker answers the agent's batches with PUBACK 0x10 "no matching subscribers" and
drops them. An agent that deleted events on PUBACK lost its whole backlog there.
Now events leave the outbox only when the collector confirms them stored.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from collector.config import load_settings
from edge_agent.config import load_config
from edge_agent.runtime import Agent
from takt_cli.localservices import Influxd, Mosquitto
from tests.agent.helpers import MqttDevice, gateway_config, make_script, mqtt_stations
from tests.collector.conftest import running

pytestmark = pytest.mark.integration

DB = "t_broker_restart"


def collector_on(broker_port: int, influx_url: str, tmp_path: Path) -> Any:
    """An in-process collector on the events broker (the collector tests' runner)."""
    settings = load_settings(
        None,
        environment="development",
        mqtt={"port": broker_port, "client_id": "restart-c1", "group": "restart"},
        influx={"url": influx_url, "database": DB, "flush_interval_s": 0.1, "max_backoff_s": 1},
        rollup={"debounce_s": 0.2},
        http={"port": 0},
        dlq_path=str(tmp_path / "dlq.sqlite"),
    )
    return running(settings)


def stored(influxd: Influxd) -> tuple[dict[str, int], list[int]]:
    """Good units per worker and every stored sequence number, read back from InfluxDB."""
    good: dict[str, int] = {}
    for series in influxd.query(
        'SELECT sum("count") FROM "raw"."units" WHERE outcome=\'good\' GROUP BY worker', DB
    ):
        good[series["tags"]["worker"]] = int(series["values"][0][1])  # type: ignore[index]
    seqs: list[int] = []
    for m in ("units", "work", "sessions", "states"):
        for series in influxd.query(f'SELECT "seq" FROM "raw"."{m}"', DB):
            values: Any = series["values"]
            seqs += [int(v[1]) for v in values]
    return good, sorted(seqs)


@pytest.mark.timeout(240)
async def test_broker_crash_without_collector_keeps_every_event(
    mosquitto: Mosquitto, mosquitto_factory: Any, influxd: Influxd, tmp_path: Path
) -> None:
    events_broker: Mosquitto = mosquitto_factory()
    stations = ["S1", "S2"]
    steps, ledger = make_script(stations, 900, seed=23)
    path = gateway_config(
        tmp_path,
        events_broker.port,
        mqtt_stations(stations, mosquitto.port, line="LR"),
        agent_id="gw-restart",
        publish={"confirm_timeout_s": 2.0, "confirm_timeout_max_s": 4.0},
    )
    config, profiles = load_config(path)
    agent = Agent(config, profiles)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await asyncio.wait_for(agent.ready.wait(), 10)
    device = MqttDevice(mosquitto.port, line="LR")
    third = len(steps) // 3
    try:
        async with collector_on(events_broker.port, influxd.url, tmp_path):
            await asyncio.to_thread(device.publish, steps[:third])
            for _ in range(300):
                if agent.outbox.pending == 0 and agent.outbox.last_seq > 10:
                    break
                await asyncio.sleep(0.1)
            assert agent.outbox.pending == 0, "the collector confirms what it stored"
        # The collector is gone (its persistent session stays); the broker crashes.
        events_broker.kill()
        await asyncio.to_thread(device.publish, steps[third : 2 * third])
        await asyncio.to_thread(events_broker.start)
        refused = agent.metrics.resent_events.labels("refused")
        for _ in range(300):
            if refused._value.get() > 0:
                break
            await asyncio.sleep(0.1)
        assert refused._value.get() > 0, "the broker should answer 'no matching subscribers'"
        await asyncio.sleep(3)
        backlog = agent.outbox.pending
        assert backlog > 0, "unconfirmed events must stay in the outbox"
        await asyncio.to_thread(device.publish, steps[2 * third :])
        async with collector_on(events_broker.port, influxd.url, tmp_path):
            for _ in range(600):
                if agent.outbox.pending == 0:
                    break
                await asyncio.sleep(0.1)
            assert agent.outbox.pending == 0, "everything is confirmed once the collector is back"
        good, seqs = await asyncio.to_thread(stored, influxd)
        assert seqs == list(range(agent.outbox.last_seq + 1)), "a gap or a double in InfluxDB"
        want = {w: n for w, n in ledger.good.items() if n}
        assert good == want
    finally:
        device.close()
        stop.set()
        await asyncio.wait_for(task, 60)
