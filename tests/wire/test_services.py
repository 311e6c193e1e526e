"""The real-service harness: a batch through real Mosquitto, points through real influxd."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from takt_cli.localservices import Influxd, Mosquitto, ServiceError, find_binary
from takt_wire import Batch, UnitEvent, decode_batch, encode_batch
from takt_wire.signing import SIGNATURE_PROPERTY, sign, verify
from takt_wire.topics import events_filter, events_topic

TIMEOUT = 10


def client(client_id: str) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)


def sample_batch(n: int = 50) -> Batch:
    now = datetime.now(UTC)
    events = [
        UnitEvent(
            site="P1", line="L1", station="S1", device="plc-1", worker="W001", ts=now,
            agent="gw-1", boot="b1", seq=i, outcome="good",
        )
        for i in range(n)
    ]  # fmt: skip
    return Batch(agent="gw-1", boot="b1", sent_at=now, events=events)


def test_signed_batch_through_real_mosquitto(mosquitto: Mosquitto) -> None:
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    sub = client(f"sub-{uuid.uuid4().hex[:8]}")
    sub.on_message = lambda _c, _u, msg: received.put(msg)
    sub.on_subscribe = lambda *_args: subscribed.put(True)
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    try:
        sub.subscribe(events_filter(), qos=1)
        subscribed.get(timeout=TIMEOUT)

        batch = sample_batch()
        payload = encode_batch(batch)
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [(SIGNATURE_PROPERTY, sign(payload, "k1", b"key"))]
        pub = client("pub")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        info = pub.publish(events_topic("P1", "gw-1"), payload, qos=1, properties=props)
        info.wait_for_publish(TIMEOUT)
        pub.disconnect()
        pub.loop_stop()

        msg = received.get(timeout=TIMEOUT)
        assert msg.topic == "takt/v1/P1/events/gw-1"
        signature = dict(msg.properties.UserProperty)[SIGNATURE_PROPERTY]  # type: ignore[union-attr]
        assert verify(msg.payload, signature, {"k1": b"key"}) == "k1"
        assert decode_batch(msg.payload) == batch
    finally:
        sub.disconnect()
        sub.loop_stop()


def test_broker_with_users_refuses_anonymous_clients(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    broker = mosquitto_factory(users={"agent": "s3cret"})
    results: queue.Queue[int] = queue.Queue()
    for username, password in [(None, None), ("agent", "wrong"), ("agent", "s3cret")]:
        c = client(f"c-{username}-{password}")
        if username:
            c.username_pw_set(username, password)
        c.on_connect = lambda _c, _u, _f, reason, _p: results.put(reason.value)
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        try:
            code = results.get(timeout=TIMEOUT)
        finally:
            c.loop_stop()
            c.disconnect()
        assert (code == 0) == (password == "s3cret"), (username, password, code)


def test_points_through_real_influxd(influxd: Influxd) -> None:
    influxd.query('CREATE DATABASE "harness"')
    influxd.write(
        "harness",
        "units,station=S1,worker=W001 count=3i 1000000000\n"
        "units,station=S1,worker=W001 count=3i 1000000000\n"  # same key: overwrite
        "units,station=S1,worker=W002 count=2i 1000000000\n",
    )
    series = influxd.query('SELECT sum("count") FROM "units" GROUP BY "worker"', "harness")
    sums = {s["tags"]["worker"]: s["values"][0][1] for s in series}  # type: ignore[index]
    assert sums == {"W001": 3, "W002": 2}


def test_influxd_keeps_its_data_across_a_restart_on_the_same_port(
    influxd_factory: Callable[..., Influxd],
) -> None:
    server = influxd_factory(admin=("admin", "pw"))
    port = server.port
    server.query('CREATE DATABASE "keep"')
    server.write("keep", "m v=1i 1")
    server.kill()
    server.start()
    assert server.port == port
    assert server.query('SELECT count("v") FROM "m"', "keep")[0]["values"] == [[0, 1]]


def test_missing_binary_says_how_to_install() -> None:
    with pytest.raises(ServiceError, match="make setup"):
        find_binary("takt-no-such-binary")
