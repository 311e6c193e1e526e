"""The production ACL (deploy/mosquitto/acl) on a real Mosquitto: each component only its topics."""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from takt_cli.localservices import Mosquitto
from takt_cli.stack import ACL_FILE, MQTT_USERS

TIMEOUT = 10
GATEWAYS = ("gw-1", "gw-2")
"""Each gateway's own MQTT user, named like its agent id."""
PASSWORDS = {user: f"{user}-pw" for user in (*MQTT_USERS, *GATEWAYS)}


def connect(broker: Mosquitto, user: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"acl-{user}", protocol=mqtt.MQTTv5)
    client.username_pw_set(user, PASSWORDS[user])
    connected: queue.Queue[Any] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, reason, _p: connected.put(reason)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert not connected.get(timeout=TIMEOUT).is_failure
    return client


def inbox(client: mqtt.Client, topic: str) -> queue.Queue[str]:
    """Subscribe; Mosquitto grants any filter and enforces read access per message."""
    received: queue.Queue[str] = queue.Queue()
    subscribed: queue.Queue[Any] = queue.Queue()
    client.on_subscribe = lambda _c, _u, _mid, codes, _p: subscribed.put(codes[0])
    client.on_message = lambda _c, _u, msg: received.put(msg.topic)
    client.subscribe(topic, qos=1)
    subscribed.get(timeout=TIMEOUT)
    return received


def publish_accepted(client: mqtt.Client, topic: str) -> bool:
    answers: queue.Queue[Any] = queue.Queue()
    client.on_publish = lambda _c, _u, _mid, reason, _p: answers.put(reason)
    client.publish(topic, b"{}", qos=1)
    return not answers.get(timeout=TIMEOUT).is_failure


def test_each_component_reaches_only_its_topics(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    broker = mosquitto_factory(users=PASSWORDS, extra_config=f"acl_file {ACL_FILE}\n")
    clients = {user: connect(broker, user) for user in PASSWORDS}
    try:
        agent, collector = clients["gw-1"], clients["takt-collector"]
        reader = clients["takt-agent"]
        kpi, devices = clients["takt-kpi"], clients["takt-devices"]
        assert publish_accepted(agent, "takt/v1/plant1/events/gw-1")
        assert publish_accepted(agent, "takt/v1/plant1/agents/gw-1/status")
        assert not publish_accepted(agent, "takt/v1/plant1/events/gw-2")  # not another gateway's
        assert not publish_accepted(agent, "takt/v1/plant1/agents/gw-2/status")
        assert not publish_accepted(reader, "takt/v1/plant1/events/gw-1")  # read-only account
        assert not publish_accepted(devices, "takt/v1/plant1/events/gw-1")  # no forged events
        assert not publish_accepted(collector, "takt/v1/plant1/events/gw-1")
        assert publish_accepted(kpi, "takt/v1/plant1/alerts/L1/S1")
        assert not publish_accepted(agent, "takt/v1/plant1/alerts/L1/S1")  # no forged alerts
        # Only collectors confirm storage: a forged confirmation would delete events.
        assert publish_accepted(collector, "takt/v1/plant1/acks/gw-1")
        assert not publish_accepted(agent, "takt/v1/plant1/acks/gw-1")
        assert not publish_accepted(devices, "takt/v1/plant1/acks/gw-1")
        assert not publish_accepted(kpi, "takt/v1/plant1/acks/gw-1")

        collector_sees = inbox(collector, "#")
        agent_sees = inbox(reader, "plant/#")
        assert publish_accepted(devices, "plant/L1/S2/counter")
        assert publish_accepted(agent, "takt/v1/plant1/events/gw-1")
        assert agent_sees.get(timeout=TIMEOUT) == "plant/L1/S2/counter"
        # The collector gets the events only, never device data.
        assert collector_sees.get(timeout=TIMEOUT) == "takt/v1/plant1/events/gw-1"
        assert collector_sees.empty()
        agent_acks = inbox(agent, "takt/v1/plant1/acks/#")
        assert publish_accepted(collector, "takt/v1/plant1/acks/gw-1")
        assert agent_acks.get(timeout=TIMEOUT) == "takt/v1/plant1/acks/gw-1"
    finally:
        for client in clients.values():
            client.disconnect()
            client.loop_stop()
