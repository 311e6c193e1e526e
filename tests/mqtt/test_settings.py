"""The shared MQTT settings: one model, the old YAML/env names of each service still work."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from collector.config import load_settings
from edge_agent.config import BrokerConfig
from kpi_service.alerts.config import AlertSettings
from takt_common.errors import TaktError
from takt_common.mqtt import (
    MqttConfigError,
    MqttError,
    MqttNotConnectedError,
    MqttSession,
    MqttSettings,
)


def test_ca_file_implies_tls_and_old_names_are_accepted(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    settings = MqttSettings.model_validate({"tls_ca_file": str(ca), "keepalive": 45})
    assert settings.tls and settings.ca_file == ca and settings.keepalive_s == 45


def test_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValidationError, match="cert_file and key_file go together"):
        MqttSettings(cert_file=Path("client.pem"))


def test_insecure_is_refused_outside_development() -> None:
    with pytest.raises(Exception, match="insecure"):
        load_settings(None, environment="production", mqtt={"insecure": True})
    dev = load_settings(None, environment="development", mqtt={"insecure": True})
    assert dev.mqtt.insecure and dev.mqtt.tls
    with pytest.raises(ValidationError, match="insecure"):
        BrokerConfig(username="gw", insecure=True)
    with pytest.raises(ValidationError, match="insecure"):
        AlertSettings(mqtt={"insecure": True})


def test_collector_keeps_its_yaml_keys(tmp_path: Path) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text(
        "environment: development\n"
        "mqtt: {host: b.local, port: 8883, tls_ca_file: ca.pem, keepalive_s: 20,\n"
        "       reconnect_min_s: 0.5, reconnect_max_s: 4, group: g1}\n"
    )
    m = load_settings(path).mqtt
    assert (m.host, m.port, m.keepalive_s, m.group) == ("b.local", 8883, 20, "g1")
    assert m.tls and m.ca_file == Path("ca.pem")
    assert (m.reconnect_min_s, m.reconnect_max_s, m.client_id) == (0.5, 4.0, "takt-collector-1")


def test_agent_broker_keeps_its_yaml_keys() -> None:
    broker = BrokerConfig.model_validate(
        {"host": "b", "tls": True, "ca_file": "ca.pem", "keepalive": 40, "username": "gw",
         "reconnect_max_s": 9}
    )  # fmt: skip
    assert broker.tls and broker.keepalive_s == 40 and broker.reconnect_max_s == 9
    with pytest.raises(ValidationError, match="no username"):
        BrokerConfig()


def test_alert_engine_flat_names_fold_into_the_mqtt_section(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TAKT_ALERTS_MQTT_HOST", "mosquitto")
    monkeypatch.setenv("TAKT_ALERTS_MQTT_USERNAME", "takt-kpi")
    monkeypatch.setenv("TAKT_ALERTS_MQTT_PASSWORD", "kpi-pw")
    monkeypatch.setenv("TAKT_ALERTS_MQTT__CA_FILE", "/etc/takt/ca.pem")
    settings = AlertSettings(mqtt_group="g2", mqtt_port=8883)
    m = settings.mqtt
    assert (m.host, m.port, m.username, m.group) == ("mosquitto", 8883, "takt-kpi", "g2")
    assert m.password is not None and m.password.get_secret_value() == "kpi-pw"
    assert m.tls and m.ca_file == Path("/etc/takt/ca.pem")
    assert (m.session_expiry_s, m.receive_maximum, m.client_id) == (3600, 100, "takt-alerts")


def test_errors_have_the_one_root() -> None:
    assert issubclass(MqttError, TaktError) and issubclass(MqttError, RuntimeError)
    assert issubclass(MqttConfigError, ValueError)


def test_a_missing_ca_file_is_named_at_start(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(MqttConfigError, match=r"ca_file: .*nope\.pem"):
        MqttSession(MqttSettings(ca_file=missing), client_id="x")


async def test_publish_without_a_connection_is_a_clear_error() -> None:
    session = MqttSession(MqttSettings(port=1), client_id="nobody")
    with pytest.raises(MqttNotConnectedError):
        session.publish("t", b"x")
    async with session:
        with pytest.raises(MqttNotConnectedError, match=r"within 0\.5 s"):
            await session.wait_connected(0.5)
