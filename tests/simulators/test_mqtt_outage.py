"""The MQTT gateway rides out a broker restart: QoS 1 messages are resent, nothing is lost."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from simulators import ShopFloor
from simulators.frames import epoch_ms
from simulators.scenario import Scenario
from takt_cli.localservices import Mosquitto
from tests.simulators.readers import Replayer, ledger_by_worker_station

TINY = Path(__file__).resolve().parents[2] / "simulators" / "scenarios" / "test_tiny.yaml"


def _mqtt_only() -> Scenario:
    raw = yaml.safe_load(TINY.read_text())
    raw["lines"][0]["stations"] = [raw["lines"][0]["stations"][0] | {"protocol": "mqtt"}]
    raw["workers"] = raw["workers"][:1]
    return Scenario.model_validate(raw)


async def test_broker_restart_mid_run(
    tmp_path: Path, mosquitto_factory: Callable[..., Mosquitto]
) -> None:
    broker = mosquitto_factory()
    scenario = _mqtt_only()
    end = epoch_ms(scenario.start, round(scenario.duration * 1000))
    got: list[bytes] = []
    finished = threading.Event()

    def on_message(client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/counter"):
            got.append(bytes(msg.payload))
            if json.loads(msg.payload)["ts"] >= end:
                finished.set()

    def on_connect(client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe("plant/L1/P1/#", qos=1)

    # A persistent session, as the edge agent keeps: the broker queues for it while away.
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="outage-sub", clean_session=False)
    sub.reconnect_delay_set(1, 2)
    sub.on_message, sub.on_connect = on_message, on_connect
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    try:
        floor = ShopFloor(
            scenario, tmp_path, mqtt_host="127.0.0.1", mqtt_port=broker.port, start_paused=True
        )
        async with floor:
            floor.start_clock()
            async with asyncio.timeout(60):
                await floor.wait_until(30)
                await asyncio.to_thread(broker.stop)
                await floor.wait_until(60)  # the floor keeps running; the gateway queues
                await asyncio.to_thread(broker.start)
                await floor.wait_done()
                assert await asyncio.to_thread(finished.wait, 30)
            assert floor.mqtt is not None and floor.mqtt.published > 120
            assert floor.stats()["mqtt_disconnects"] >= 1
    finally:
        sub.loop_stop()
        sub.disconnect()
    rep = Replayer(epoch_ms(scenario.start, 0))
    for payload in sorted(set(got), key=lambda p: json.loads(p)["ts"]):
        m = json.loads(payload)
        rep.feed(m["ts"], good=m["cnt"], rejects=m["rej"], badge=m["op"], state=m["st"])
    truth = ledger_by_worker_station(floor.ledger)[("W1", "P1")]
    seen = rep.by_badge["A1"]
    assert seen.good == truth.good > 0
    assert dict(seen.defects) == dict(truth.defects)
    assert seen.work_ms == truth.work_ms
