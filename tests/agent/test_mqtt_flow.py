"""MQTT source end to end: a device on a real Mosquitto, the agent, and a subscriber.

The events published over a scripted shift must add up exactly to its ledger
(units and defects by code per worker; work and effective seconds per worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_agent.config import load_config
from edge_agent.runtime import Agent
from takt_cli.localservices import Mosquitto, free_port
from tests.agent.helpers import (
    EventSubscriber,
    MqttDevice,
    assert_matches,
    gateway_config,
    make_script,
    mqtt_stations,
)


async def start_agent(config_path: Path) -> tuple[Agent, asyncio.Event, asyncio.Task[None]]:
    config, profiles = load_config(config_path)
    agent = Agent(config, profiles)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await asyncio.wait_for(agent.ready.wait(), 10)
    for source in agent.sources:
        await asyncio.wait_for(source.connected.wait(), 10)  # type: ignore[attr-defined]
    return agent, stop, task


async def stop_agent(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, 30)


async def test_mqtt_events_add_up_to_the_ledger(mosquitto: Mosquitto, tmp_path: Path) -> None:
    stations = ["S1", "S2", "S3"]
    steps, ledger = make_script(stations, 400, seed=11, start_cnt=65450)  # rolls over mid-shift
    http_port = free_port()
    path = gateway_config(
        tmp_path,
        mosquitto.port,
        mqtt_stations(stations, mosquitto.port, line="LM"),
        agent_id="gw-mqtt",
        http={"port": http_port},
    )
    sub = EventSubscriber(mosquitto.port, client_id="sub-mqtt-flow")
    _agent, stop, task = await start_agent(path)
    device = MqttDevice(mosquitto.port, line="LM")
    try:
        await asyncio.to_thread(device.publish, steps)
        got = await asyncio.to_thread(sub.wait_for, ledger, 30.0)
        assert_matches(got, ledger, slack_s=0.01)
        assert sub.invalid == 0
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{http_port}/metrics")).text
            health = (await http.get(f"http://127.0.0.1:{http_port}/healthz")).json()
        assert 'takt_agent_counter_anomalies_total{kind="rollover",station="S1"}' in metrics
        assert health["status"] == "ok" and health["broker_connected"] is True
        seqs = sorted(k[2] for k in sub.events)
        assert seqs == list(range(len(seqs)))  # strictly increasing, no gaps
    finally:
        device.close()
        await stop_agent(stop, task)
        sub.close()


async def test_bad_device_messages_are_counted_not_fatal(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    import paho.mqtt.publish as publish

    path = gateway_config(
        tmp_path,
        mosquitto.port,
        mqtt_stations(["S9"], mosquitto.port, line="LB"),
        agent_id="gw-bad",
    )
    sub = EventSubscriber(mosquitto.port, client_id="sub-bad")
    agent, stop, task = await start_agent(path)
    try:
        bad: list[Any] = [
            b"{not json",
            b"[1,2]",
            b"x" * 70_000,
            json.dumps({"ts": 1763884800000, "cnt": -5, "st": 1, "op": "B1"}),
            json.dumps({"ts": 1763884801000, "cnt": 10, "st": 1, "op": "B1"}),
            json.dumps({"ts": 1763884802000, "cnt": 13, "st": 1, "op": "B1"}),
        ]
        for payload in bad:
            await asyncio.to_thread(
                publish.single,
                "plant/LB/S9/counter",
                payload,
                qos=1,
                hostname="127.0.0.1",
                port=mosquitto.port,
            )
        for _ in range(100):
            if sum(e.get("count", 0) for e in sub.events.values() if e["kind"] == "unit") == 3:
                break
            await asyncio.sleep(0.1)
        units = [e for e in sub.events.values() if e["kind"] == "unit"]
        assert [(u["worker"], u["count"]) for u in units] == [("w1", 3)]
        bad_fields = agent.metrics.bad_fields.labels("S9")._value.get()
        assert bad_fields >= 4
    finally:
        with contextlib.suppress(Exception):
            await stop_agent(stop, task)
        sub.close()


@pytest.mark.timeout(120)
async def test_broker_outage_loses_nothing_and_backlog_is_historical(
    mosquitto: Mosquitto, mosquitto_factory: Any, tmp_path: Path
) -> None:
    events_broker = mosquitto_factory()
    stations = ["S1", "S2"]
    steps, ledger = make_script(stations, 600, seed=5)
    path = gateway_config(
        tmp_path,
        events_broker.port,
        mqtt_stations(stations, mosquitto.port, line="LO"),
        agent_id="gw-outage",
    )
    sub = EventSubscriber(events_broker.port, client_id="sub-outage")
    agent, stop, task = await start_agent(path)
    device = MqttDevice(mosquitto.port, line="LO")
    try:
        third = len(steps) // 3
        await asyncio.to_thread(device.publish, steps[:third])
        await asyncio.sleep(1.0)
        live = len(sub.events)
        assert live > 0
        events_broker.stop()  # graceful: persistence written
        await asyncio.to_thread(device.publish, steps[third:])
        await asyncio.sleep(30)
        assert agent.outbox.pending > 0
        events_broker.start()
        got = await asyncio.to_thread(sub.wait_for, ledger, 40.0)
        assert_matches(got, ledger, slack_s=0.01)
        historical = [e for e in sub.events.values() if e["historical"]]
        assert historical, "the backlog sent after the outage must be flagged historical"
        assert all(e["seq"] >= live for e in historical) or len(historical) < len(sub.events)
    finally:
        device.close()
        await stop_agent(stop, task)
        sub.close()
