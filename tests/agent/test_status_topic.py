"""The agent's retained status: 'online' while connected, 'offline' said on a clean stop,
also when nobody subscribes (a PUBACK 'no matching subscribers' is not a failure for a
retained message: the broker keeps it for whoever subscribes later)."""

from __future__ import annotations

import asyncio
import json
import logging
import queue
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import BrokerConfig, GatewayConfig, StationConfig
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox
from edge_agent.publisher import Publisher
from takt_cli.localservices import Mosquitto
from takt_wire.topics import agent_status_topic

pytestmark = pytest.mark.integration


def retained_status(port: int, topic: str) -> dict[str, str]:
    """What a subscriber arriving now is told (the retained message)."""
    got: queue.Queue[bytes] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, msg: got.put(bytes(msg.payload))
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        return dict(json.loads(got.get(timeout=10)))
    finally:
        client.disconnect()
        client.loop_stop()


async def test_offline_is_announced_without_subscribers(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    config = GatewayConfig(
        agent_id="gw-s",
        site="site1",
        broker=BrokerConfig(port=mosquitto.port, allow_anonymous=True),
        stations=[
            StationConfig.model_validate(
                {"id": "S1", "line": "L1", "profile": "takt-sim-counter"}
                | {"connection": {"type": "mqtt"}}
            )
        ],
    )
    box = Outbox(tmp_path / "outbox.db", agent="gw-s", boot="b7")
    publisher = Publisher(config, box, AgentMetrics(), "b7")
    topic = agent_status_topic("site1", "gw-s")
    task = asyncio.create_task(publisher.run())
    try:
        online = await asyncio.to_thread(retained_status, mosquitto.port, topic)
        assert online == {"agent": "gw-s", "boot": "b7", "status": "online"}
        # The subscriber is gone again: the offline status finds nobody.
        with caplog.at_level(logging.WARNING):
            await publisher.announce_offline()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        box.close()
    assert "could not announce offline" not in caplog.text
    offline = await asyncio.to_thread(retained_status, mosquitto.port, topic)
    assert offline == {"agent": "gw-s", "boot": "b7", "status": "offline"}
