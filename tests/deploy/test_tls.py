"""MQTT over TLS, as across a factory network: agent → broker → collector → InfluxDB.

A CA and a server certificate are generated for the test; Mosquitto serves TLS
only (a plain client is refused); the agent publishes and the collector consumes
through it, both verifying the broker's certificate against the CA.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import queue
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import load_settings
from edge_agent.config import load_config
from edge_agent.runtime import Agent
from takt_cli.localservices import Influxd, Mosquitto
from tests.collector.conftest import eventually, running


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool,
) -> x509.Certificate:  # fmt: skip
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1, as PEM files."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Takt test CA")])
    ca = _cert("Takt test CA", ca_key, ca_name, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert("127.0.0.1", server_key, ca_name, ca_key, ca=False)
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def plain_client_refused(port: int) -> bool:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="plain", protocol=mqtt.MQTTv5)
    client.username_pw_set("takt-agent", "agent-pw")
    answers: queue.Queue[Any] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, reason, _p: answers.put(reason)
    try:
        client.connect("127.0.0.1", port)
    except OSError:
        return True
    client.loop_start()
    try:
        return bool(answers.get(timeout=3).is_failure)
    except queue.Empty:
        return True  # the TLS listener never answers a plain CONNECT
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.mark.timeout(120)
async def test_agent_and_collector_over_tls(
    tmp_path: Path,
    mosquitto: Mosquitto,
    mosquitto_factory: Callable[..., Mosquitto],
    influxd: Influxd,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pki = make_pki(tmp_path / "pki")
    broker = mosquitto_factory(
        users={"takt-agent": "agent-pw", "takt-collector": "collector-pw"},
        extra_config=f"cafile {pki['ca']}\ncertfile {pki['cert']}\nkeyfile {pki['key']}\n",
    )
    assert await asyncio.to_thread(plain_client_refused, broker.port)

    monkeypatch.setenv("TAKT_COLLECTOR_MQTT__PASSWORD", "collector-pw")
    monkeypatch.setenv("TAKT_AGENT_BROKER__PASSWORD", "agent-pw")
    settings = load_settings(
        None,
        environment="development",
        mqtt={"port": broker.port, "username": "takt-collector", "tls_ca_file": str(pki["ca"]),
              "client_id": "tls-collector", "group": "tls"},
        influx={"url": influxd.url, "database": "tls_chain", "flush_interval_s": 0.1},
        http={"port": 0},
        dlq_path=str(tmp_path / "dlq.sqlite"),
    )  # fmt: skip
    gateway = tmp_path / "gateway.yaml"
    gateway.write_text(
        yaml.safe_dump(
            {
                "agent_id": "gw-tls",
                "site": "plant1",
                "broker": {"host": "127.0.0.1", "port": broker.port, "username": "takt-agent",
                           "tls": True, "ca_file": str(pki["ca"])},
                "outbox": {"path": str(tmp_path / "outbox.db")},
                "http": {"port": 0},
                "stations": [{"id": "S1", "line": "L1", "profile": "takt-sim-counter",
                              "connection": {"type": "mqtt", "host": "127.0.0.1",
                                             "port": mosquitto.port}}],
            }
        )
    )  # fmt: skip
    config, profiles = load_config(gateway)
    agent = Agent(config, profiles)
    stop = asyncio.Event()
    async with running(settings):
        task = asyncio.create_task(agent.run(stop))
        try:
            source: Any = agent.sources[0]
            await asyncio.wait_for(source.connected.wait(), 15)
            device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tls-device")
            device.connect("127.0.0.1", mosquitto.port)
            device.loop_start()
            t0 = int(time.time() * 1000)
            for i, payload in enumerate(
                [{"cnt": 0, "op": "B1", "st": 1}, {"cnt": 4, "op": "B1", "st": 1}]
            ):
                message = json.dumps(payload | {"ts": t0 + 1000 * i, "rej": {}})
                device.publish("plant/L1/S1/counter", message, qos=1).wait_for_publish(10)
            device.loop_stop()
            device.disconnect()

            def units_written() -> bool:
                series = influxd.query('SELECT sum("count") FROM "raw"."units"', "tls_chain")
                return bool(series) and series[0]["values"][0][1] == 4  # type: ignore[index]

            await eventually(units_written, within=30, what="units through TLS in InfluxDB")
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
