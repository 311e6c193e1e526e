"""Configuration is checked at start-up and names the file and field that are wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from collector.cli import app
from collector.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text(text)
    return path


def test_production_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  username: collector\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(path) in str(err.value) and "TAKT_COLLECTOR_MQTT__PASSWORD" in str(err.value)


def test_credentials_from_the_environment_satisfy_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "mqtt:\n  username: collector\ninflux:\n  username: writer\n")
    monkeypatch.setenv("TAKT_COLLECTOR_MQTT__PASSWORD", "m-secret")
    monkeypatch.setenv("TAKT_COLLECTOR_INFLUX__PASSWORD", "i-secret")
    settings = load_settings(path)
    assert settings.environment == "production"
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "m-secret"
    assert "m-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("section", "name"),
    [("mqtt", "password"), ("influx", "password"), ("validation", "signing_keys")],
)
def test_secrets_in_the_file_are_refused(tmp_path: Path, section: str, name: str) -> None:
    path = write(tmp_path, f"environment: development\n{section}:\n  {name}: oops\n")
    with pytest.raises(ConfigError, match=rf"{section}\.{name}: secrets come from the environment"):
        load_settings(path)


def test_wrong_values_name_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "environment: development\ninflux:\n  batch_size: 0\n  bogus: 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "influx.batch_size" in str(err.value) and "influx.bogus" in str(err.value)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "environment: development\ninflux:\n  batch_size: 100\n  gzip: false\n")
    monkeypatch.setenv("TAKT_COLLECTOR_INFLUX__BATCH_SIZE", "7")
    settings = load_settings(path)
    assert (settings.influx.batch_size, settings.influx.gzip) == (7, False)


def test_signatures_required_without_keys_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "environment: development\nvalidation:\n  require_signature: true\n")
    with pytest.raises(ConfigError, match="signing_keys"):
        load_settings(path)


def test_cli_reports_config_errors_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "influx: [not, a, mapping]\n")
    result = CliRunner().invoke(app, ["run", "--config", str(path)])
    assert result.exit_code == 2
    assert str(path) in result.output


def test_past_cap_is_a_setting_and_dead_letters_are_on_metrics(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from collector.service import Collector, rules_from

    base = {"environment": "development", "dlq_path": str(tmp_path / "dlq.sqlite")}
    assert rules_from(load_settings(None, **base)).policy.max_past_s == 730 * 86_400
    backfill = load_settings(None, validation={"max_past_s": None}, **base)
    assert rules_from(backfill).policy.max_past_s is None
    collector = Collector(load_settings(None, **base))
    try:
        exposed = generate_latest(collector.metrics.registry).decode()
    finally:
        collector.dlq.close()
        collector.rollup_queue.close()
    assert "takt_collector_dead_letters " in exposed
