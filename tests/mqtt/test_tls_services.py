"""The alert engine and the dead-letter replay against the TLS-only broker.

Mosquitto serves TLS only (a plain client is refused) with a test CA; the services
verify the broker's certificate against it. The devices and subscribers on the
other side are plain paho clients over TLS.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import CollectorSettings, load_settings
from collector.dlq import DeadLetter, DeadLetterStore
from collector.replay import replay
from takt_cli.localservices import Influxd, Mosquitto
from takt_common.mqtt import MqttNotConnectedError
from takt_wire import Batch, encode_batch
from takt_wire.topics import events_topic
from tests.alerts.factory import Line
from tests.alerts.harness import make_app, now_aligned, serve, service
from tests.alerts.receivers import HttpReceiver, receiver_fixture
from tests.collector.helpers import unit
from tests.deploy.test_tls import make_pki, plain_client_refused

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

USERS = {"takt-kpi": "kpi-pw-0123456789", "takt-collector": "col-pw-0123456789",
         "device": "dev-pw-0123456789"}  # fmt: skip


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def tls_broker(mosquitto_factory: Callable[..., Mosquitto], pki: dict[str, Path]) -> Mosquitto:
    broker = mosquitto_factory(
        users=USERS,
        extra_config=f"cafile {pki['ca']}\ncertfile {pki['cert']}\nkeyfile {pki['key']}\n",
    )
    assert plain_client_refused(broker.port), "the broker must serve TLS only"
    return broker


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from receiver_fixture()


class TlsClient:
    """A plain paho client over TLS (the device or observer on the other side)."""

    def __init__(self, port: int, ca: Path, subscribe: str | None = None) -> None:
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.username_pw_set("device", USERS["device"])
        self.client.tls_set(ca_certs=str(ca))

        def on_connect(c: mqtt.Client, *_: Any) -> None:
            if subscribe:
                c.subscribe(subscribe, qos=1)
            else:
                ready.set()

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = lambda _c, _u, m: self.received.put((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(15), "TLS test client did not connect"

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_alert_engine_over_tls(
    tmp_path: Path,
    tls_broker: Mosquitto,
    pki: dict[str, Path],
    influxd: Influxd,
    receiver: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TAKT_TEST_HOOK_SECRET", "tls-hook-secret")
    monkeypatch.setenv("TAKT_ALERTS_MQTT__PASSWORD", USERS["takt-kpi"])
    app, _ = make_app(
        tmp_path, tls_broker.port, receiver.url, influxd.url, "alerts_tls",
        max_future_s=3600,
        mqtt={"username": "takt-kpi", "ca_file": str(pki["ca"]), "port": tls_broker.port},
    )  # fmt: skip
    observer = await asyncio.to_thread(TlsClient, tls_broker.port, pki["ca"], "takt/v1/s1/alerts/#")
    device = await asyncio.to_thread(TlsClient, tls_broker.port, pki["ca"])
    line = Line(t0=now_aligned())
    try:
        async with serve(app):
            svc = service(app)
            assert svc.settings.mqtt.tls and svc.settings.mqtt.ca_file == pki["ca"]
            sent = 0
            for i in range(60):  # one batch a second: W2 at S2 turns out defects after 30 s
                defect = i >= 30 and i % 2 == 0
                events = [line.unit(i, station="S1", worker="W1"),
                          line.unit(i + 0.5, station="S2", worker="W2", defect=defect)]  # fmt: skip
                payload = encode_batch(line.batch(events))
                await asyncio.to_thread(device.publish, events_topic("s1", "a1"), payload)
                sent += 1
            # The engine consumed the batches and published the alert, both through TLS
            # (channel "bus" of the rules).
            topic, body = await asyncio.to_thread(observer.received.get, True, 30)
            assert svc.invalid_batches == 0 and sent == 60
            assert topic == "takt/v1/s1/alerts/L1/S2"
            alert = json.loads(body)["alert"]
            assert (alert["worker"], alert["metric"]) == ("W2", "defect_rate")
    finally:
        observer.close()
        device.close()


def _collector_settings(
    tmp_path: Path, broker: Mosquitto, ca: Path, monkeypatch: pytest.MonkeyPatch
) -> CollectorSettings:
    monkeypatch.setenv("TAKT_COLLECTOR_MQTT__PASSWORD", USERS["takt-collector"])
    return load_settings(
        None,
        environment="development",
        mqtt={"port": broker.port, "username": "takt-collector", "tls_ca_file": str(ca),
              "client_id": "tls-replay"},
        dlq_path=str(tmp_path / "dlq.sqlite"),
    )  # fmt: skip


def test_replay_over_tls(
    tmp_path: Path, tls_broker: Mosquitto, pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _collector_settings(tmp_path, tls_broker, pki["ca"], monkeypatch)
    now = datetime.now(UTC)
    payload = encode_batch(Batch(agent="a1", boot="b1", sent_at=now, events=[unit(0, ts=now)]))
    store = DeadLetterStore(settings.dlq_path)
    store.add([DeadLetter("message", "invalid", "test", events_topic("s1", "a1"), payload, {})])
    observer = TlsClient(tls_broker.port, pki["ca"], events_topic("s1", "+"))
    try:
        assert replay(store, settings, store.list()) == 1
        topic, body = observer.received.get(timeout=15)
    finally:
        observer.close()
    assert (topic, body) == (events_topic("s1", "a1"), payload), "the letter's bytes, unchanged"
    assert store.list() == [], "replayed letters are marked"


def test_replay_refuses_a_broker_its_ca_did_not_sign(
    tmp_path: Path, tls_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_ca = make_pki(tmp_path / "other")["ca"]
    settings = _collector_settings(tmp_path, tls_broker, other_ca, monkeypatch)
    settings.mqtt.connect_timeout_s = 3
    now = datetime.now(UTC)
    payload = encode_batch(Batch(agent="a1", boot="b1", sent_at=now, events=[unit(0, ts=now)]))
    store = DeadLetterStore(settings.dlq_path)
    store.add([DeadLetter("message", "invalid", "test", events_topic("s1", "a1"), payload, {})])
    with pytest.raises(MqttNotConnectedError, match="certificate verify failed"):
        replay(store, settings, store.list())
    assert len(store.list()) == 1, "nothing is marked replayed"
