"""The MQTT source: routing by exact topic, and device messages handed over in groups.

Messages that arrive while the sink is busy reach it together (one call, one ack for
the group), which is what lets the agent keep up with a flood; these tests hold the
properties that must survive that: every message arrives once per delivery, in device
order per station, and a message is acknowledged to the broker only through the ack
the sink calls after its commit (not acked: the broker delivers it again).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import load_config
from edge_agent.mapping import RawReading
from edge_agent.metrics import AgentMetrics
from edge_agent.sources import build_sources
from edge_agent.sources.mqtt.source import MqttSource
from takt_cli.localservices import Mosquitto
from tests.agent.helpers import gateway_config, mqtt_stations

STATIONS = ["G1", "G2", "G3"]
PER_STATION = 100


def _source(tmp_path: Path, port: int, client_id: str) -> MqttSource:
    stations = mqtt_stations(STATIONS, port, line="LG")
    for station in stations:
        station["connection"]["client_id"] = client_id
    config, profiles = load_config(gateway_config(tmp_path, port, stations))
    (source,) = build_sources(config, profiles, AgentMetrics())
    assert isinstance(source, MqttSource)
    return source


def test_routing_is_by_exact_topic(tmp_path: Path) -> None:
    source = _source(tmp_path, 1883, "route-test")
    assert source.route("plant/LG/G2/counter") == "G2"
    assert source.route("plant/LG/G3/state") == "G3"
    # neither MQTT wildcards nor longer, shorter or other lines' topics name a station
    for topic in ("plant/+/G2/counter", "plant/LG/#", "plant/LG/G2/counter/x", "plant/LG/G2"):
        assert source.route(topic) is None
    assert source.route("plant/L1/G2/counter") is None
    assert sorted(source.subscriptions) == sorted(
        f"plant/LG/{s}/{kind}" for s in STATIONS for kind in ("counter", "state")
    )


class Recorder:
    """A sink that records what it is handed and acks (after a yield) only if told to."""

    def __init__(self, acking: bool) -> None:
        self.acking = acking
        self.calls: list[list[RawReading]] = []
        self.arrived = asyncio.Event()
        self.expect = 0

    @property
    def readings(self) -> list[RawReading]:
        return [r for call in self.calls for r in call]

    async def __call__(
        self, readings: list[RawReading], ack: Callable[[], None] | None = None
    ) -> None:
        self.calls.append(readings)
        await asyncio.sleep(0.01)  # the commit: more messages arrive meanwhile
        if self.acking and ack is not None:
            ack()
        if len(self.readings) >= self.expect:
            self.arrived.set()


async def _run_until(source: MqttSource, sink: Recorder, expect: int) -> None:
    sink.expect = expect
    task = asyncio.create_task(source.run(sink))
    try:
        await asyncio.wait_for(sink.arrived.wait(), 60)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        source.connected.clear()


def _publish(port: int, messages: list[tuple[str, dict[str, Any]]]) -> None:
    device = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    device.connect("127.0.0.1", port)
    device.loop_start()
    infos = [device.publish(topic, json.dumps(doc), qos=1) for topic, doc in messages]
    for info in infos:
        info.wait_for_publish(30)
    device.disconnect()
    device.loop_stop()


def _in_device_order(readings: list[RawReading]) -> None:
    per_station: dict[str, list[int]] = {}
    for raw in readings:
        per_station.setdefault(raw.station, []).append(int(raw.values["cnt"]))
    assert per_station == {s: list(range(1, PER_STATION + 1)) for s in STATIONS}


@pytest.mark.integration
async def test_queued_messages_arrive_grouped_in_order_and_unacked_ones_come_again(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    source = _source(tmp_path, mosquitto.port, "groups-test")
    # The persistent session exists once the source has subscribed.
    opening = asyncio.create_task(source.run(Recorder(acking=True)))
    await asyncio.wait_for(source.connected.wait(), 30)
    opening.cancel()
    await asyncio.gather(opening, return_exceptions=True)
    source.connected.clear()

    messages = [
        (f"plant/LG/{s}/counter", {"ts": 1_763_884_800_000 + n * 1000, "cnt": n, "st": 1})
        for n in range(1, PER_STATION + 1)
        for s in STATIONS
    ]
    await asyncio.to_thread(_publish, mosquitto.port, messages)
    total = len(messages)

    # 1. handed over but never acknowledged (the agent died before its commit)
    lost = Recorder(acking=False)
    await _run_until(source, lost, total)
    assert len(lost.readings) == total
    _in_device_order(lost.readings)
    assert len(lost.calls) < total  # grouped: fewer sink calls than messages

    # 2. the broker delivers every one of them again; this time they are acknowledged
    kept = Recorder(acking=True)
    await _run_until(source, kept, total)
    assert len(kept.readings) == total
    _in_device_order(kept.readings)

    # 3. nothing is delivered a third time: a new message is the only one to arrive
    sentinel = ("plant/LG/G1/counter", {"ts": 1_763_899_000_000, "cnt": 4242, "st": 1})
    after = Recorder(acking=True)
    task = asyncio.create_task(_run_until(source, after, 1))
    await asyncio.wait_for(source.connected.wait(), 30)
    await asyncio.to_thread(_publish, mosquitto.port, [sentinel])
    await task
    assert [r.values["cnt"] for r in after.readings] == [4242]
