"""Issue 13, case 4 on the broker: per-gateway MQTT users, the production ACL and size limit.

A real Mosquitto runs with deploy/mosquitto/acl and the production packet limit; a
real collector reads from it. Gateway gw-2 cannot publish on gw-1's topic (the
broker refuses it), what it publishes on its own topic in gw-1's name is refused by
the collector, an oversized packet never reaches anyone, and gw-1's own batch is
written.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from takt_cli.localservices import Influxd, Mosquitto
from takt_cli.stack import ACL_FILE, MAX_PACKET_SIZE, MQTT_USERS
from takt_wire import MAX_PAYLOAD_BYTES, Batch, encode_batch
from takt_wire.topics import events_topic
from tests.collector.conftest import SettingsFactory, eventually, running
from tests.collector.helpers import rows, unit

PASSWORDS = {user: f"{user}-password" for user in (*MQTT_USERS, "gw-1", "gw-2")}


def connect(broker: Mosquitto, user: str) -> tuple[mqtt.Client, queue.Queue[Any]]:
    """A gateway's client; returns it with the queue of its PUBACK reason codes."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, PASSWORDS[user])
    connected: queue.Queue[Any] = queue.Queue()
    acks: queue.Queue[Any] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, reason, _p: connected.put(reason)
    client.on_publish = lambda _c, _u, _mid, reason, _p: acks.put(reason)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert not connected.get(timeout=10).is_failure
    return client, acks


def batch_of(agent: str, seq: int, count: int) -> bytes:
    now = datetime.now(UTC)
    event = unit(seq, agent="gw-1", count=count, ts=now - timedelta(seconds=30))
    return encode_batch(Batch(agent=agent, boot="b1", sent_at=now, events=[event]))


async def test_a_gateway_cannot_publish_as_another_and_oversized_packets_stop_at_the_broker(
    mosquitto_factory: Callable[..., Mosquitto],
    influxd: Influxd,
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = mosquitto_factory(
        users=PASSWORDS, extra_config=f"acl_file {ACL_FILE}\n", max_packet_size=MAX_PACKET_SIZE
    )
    monkeypatch.setenv("TAKT_COLLECTOR_MQTT__PASSWORD", PASSWORDS["takt-collector"])
    settings = make_settings(broker.port, influxd.url, mqtt={"username": "takt-collector"})
    db = settings.influx.database
    gw1, gw1_acks = connect(broker, "gw-1")
    gw2, gw2_acks = connect(broker, "gw-2")
    try:
        async with running(settings) as collector:
            # gw-2 on gw-1's topic: refused by the broker (PUBACK "not authorized").
            gw2.publish(events_topic("s1", "gw-1"), batch_of("gw-1", 0, 99), qos=1)
            assert gw2_acks.get(timeout=10).is_failure
            # gw-2 on its own topic, events in gw-1's name: refused by the collector.
            gw2.publish(events_topic("s1", "gw-2"), batch_of("gw-2", 0, 99), qos=1)
            assert not gw2_acks.get(timeout=10).is_failure
            # A packet over the limit: the broker drops the connection, nothing is delivered.
            gw2.publish(events_topic("s1", "gw-2"), b" " * (MAX_PAYLOAD_BYTES + 200_000), qos=1)
            # gw-1's own batch, with the identity gw-2 tried to pre-empt.
            gw1.publish(events_topic("s1", "gw-1"), batch_of("gw-1", 0, 3), qos=1)
            assert not gw1_acks.get(timeout=10).is_failure
            await eventually(lambda: collector.written == 1 and collector._unacked == 0)
            await asyncio.sleep(0.5)  # anything else in flight would arrive now
            letters = collector.dlq.list()
        assert [(d.kind, d.reason) for d in letters] == [("message", "agent_mismatch")]
        counts = rows(influxd.query('SELECT "count", "agent" FROM "units"', db=db))
        assert [row[1:] for row in counts] == [[3, "gw-1"]]
        assert "disconnected due to oversize packet" in broker.log_path.read_text()
    finally:
        for client in (gw1, gw2):
            client.disconnect()
            client.loop_stop()
