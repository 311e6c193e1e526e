"""Gateway config and device profile validation: errors name the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.config import ConfigError, load_config
from edge_agent.outbox import Outbox
from edge_agent.profile import ProfileError, load_profile
from takt_wire import StateEvent

BASE: dict[str, Any] = {
    "agent_id": "gw1",
    "site": "plant1",
    "broker": {"host": "127.0.0.1", "port": 1883, "allow_anonymous": True},
    "outbox": {"path": "outbox.db"},
    "stations": [
        {
            "id": "S1",
            "line": "L1",
            "profile": "takt-sim-counter",
            "connection": {"type": "mqtt", "host": "127.0.0.1", "port": 1883},
        }
    ],
}


def write(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_valid_config_loads_and_rebases_paths(tmp_path: Path) -> None:
    config, profiles = load_config(write(tmp_path, BASE))
    assert config.outbox.path == tmp_path / "outbox.db"
    assert "takt-sim-counter" in profiles


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKT_AGENT_BROKER__PORT", "1999")
    monkeypatch.setenv("TAKT_AGENT_BROKER__PASSWORD", "s3cret")
    config, _ = load_config(write(tmp_path, BASE))
    assert config.broker.port == 1999
    assert config.broker.password is not None
    assert config.broker.password.get_secret_value() == "s3cret"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"broker": {"host": "x", "password": "pw", "allow_anonymous": True}}, "broker.password"),
        ({"broker": {"host": "x"}}, "broker"),
        ({"stations": [dict(BASE["stations"][0], profile="nope")]}, "stations.0.profile"),
        ({"stations": [dict(BASE["stations"][0], id="bad id")]}, "stations.0.id"),
        (
            {"stations": [dict(BASE["stations"][0], profile="takt-sim-plc")]},
            "stations.0.connection.type",
        ),
        ({"pseudonymise": True}, "(root)"),
    ],
)
def test_config_errors_name_file_and_field(
    tmp_path: Path, patch: dict[str, object], field: str
) -> None:
    path = write(tmp_path, BASE | patch)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    message = str(err.value)
    assert f"{field}:" in message or f"'{field}'" in message, message


def test_profile_error_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": "m",
                "protocol": "mqtt",
                "time_source": "device",
                "signals": {"good": {"at": "cnt", "bits": 3}, "time": {"at": "ts"}},
                "mqtt": {"topics": ["a"]},
            }
        )
    )
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert str(path) in str(err.value) and "signals.good.bits" in str(err.value)


def test_check_config_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["check-config", str(write(tmp_path, BASE))])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["check-config", str(write(tmp_path, BASE | {"site": "a b"}))])
    assert bad.exit_code == 2 and "site" in bad.output


def state_event(boot: str, state: str) -> StateEvent:
    return StateEvent.model_validate(
        {"site": "s", "line": "l", "station": "S1", "device": "d", "worker": "w1", "agent": "a"}
        | {"ts": "2026-11-23T08:00:00Z", "boot": boot, "seq": 0, "state": state}
    )


def test_outbox_sequence_survives_restart_and_drop_policy(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path, agent="a", boot="b1", max_events=100)
    box.commit([state_event("b1", "idle")] * 3, {"S1": "{}"})
    box.acked(0, 2)
    box.close()
    box = Outbox(path, agent="a", boot="b2", max_events=5, on_full="drop_oldest")
    assert box.last_seq == 2 and box.pending == 0 and box.load_states() == {"S1": "{}"}
    box.commit([state_event("b2", "running")] * 7, {})
    rows = box.fetch(-1, 100)
    assert [r[0] for r in rows] == [5, 6, 7, 8, 9] and box.dropped == 2
    assert b'"boot":"b2"' in rows[0][2]
    with pytest.raises(ValueError, match="boot 'b1'"):
        box.commit([state_event("b1", "idle")], {})  # an event of another boot is a bug


MODBUS_PROFILE: dict[str, Any] = {
    "model": "test-mb",
    "protocol": "modbus",
    "time_source": "gateway",
    "signals": {"good": {"at": "GOOD"}},
    "modbus": {"registers": {"GOOD": {"address": 0}}},
}


def modbus_config(tmp_path: Path, a: dict[str, Any], b: dict[str, Any]) -> Path:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "test-mb.yaml").write_text(yaml.safe_dump(MODBUS_PROFILE))
    stations = [
        {
            "id": sid,
            "line": "L1",
            "profile": "test-mb",
            "connection": {"type": "modbus", "unit": unit} | conn,
        }
        for sid, unit, conn in (("M1", 1, a), ("M2", 2, b))
    ]
    return write(tmp_path, BASE | {"stations": stations, "profiles_dir": str(profiles)})


RTU = {"transport": "rtu", "serial_port": "/dev/ttyUSB0"}
TCP = {"transport": "tcp", "host": "10.0.0.9"}


@pytest.mark.parametrize(
    ("a", "b", "field"),
    [
        (RTU | {"baudrate": 9600}, RTU, "baudrate"),
        (RTU, RTU | {"parity": "N"}, "parity"),
        (RTU, RTU | {"stopbits": 2}, "stopbits"),
        (RTU, RTU | {"bytesize": 7}, "bytesize"),
        (RTU, RTU | {"timeout_s": 0.5}, "timeout_s"),
        (TCP, TCP | {"timeout_s": 0.5}, "timeout_s"),
    ],
)
def test_modbus_stations_on_one_connection_must_agree_on_its_settings(
    tmp_path: Path, a: dict[str, Any], b: dict[str, Any], field: str
) -> None:
    path = modbus_config(tmp_path, a, b)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert f"'stations.1.connection.{field}'" in message, message
    assert "station M2" in message and "station M1" in message, message


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (RTU | {"baudrate": 9600}, RTU | {"baudrate": 9600, "poll_interval_s": 5}),
        (RTU, RTU | {"serial_port": "/dev/ttyUSB1", "baudrate": 9600}),  # another line
        (TCP, TCP | {"port": 5020, "timeout_s": 0.5}),  # another endpoint
        (TCP, TCP | {"baudrate": 9600}),  # no serial settings on TCP
    ],
)
def test_modbus_stations_on_separate_connections_or_agreeing_load(
    tmp_path: Path, a: dict[str, Any], b: dict[str, Any]
) -> None:
    config, _ = load_config(modbus_config(tmp_path, a, b))
    assert [s.id for s in config.stations] == ["M1", "M2"]
