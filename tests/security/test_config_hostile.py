"""Issue 13, cases 10 and 11 (configuration): broken rosters and weak secrets are refused.

``takt agent check-config`` (the real CLI) and the agent's own start-up read the
same files; each mistake is refused with the file, the line where it is known,
and what is wrong, instead of a traceback or a worker called "None".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from collector.config import ConfigError as CollectorConfigError
from collector.config import load_settings
from edge_agent.cli import app
from edge_agent.config import ConfigError, load_config
from tests.agent.test_config import BASE

ROSTERS = {
    "broken YAML": ("badges:\n  B1: w1\n  B2: [w2\n", ":3", "not valid YAML"),
    "badge with no worker": ("badges:\n  B1: w1\n  B2:\n", ":3", "has no worker id"),
    "invalid worker id": ("badges:\n  B1: w1\n  B2: 'w 2/x'\n", ":3", "is not valid"),
    "unattributed as a worker": ("badges:\n  B1: unattributed\n", ":2", "is not a worker"),
    "unknown field": ("badges: {B1: w1}\nworkers: {}\n", "", "one field 'badges'"),
}


def gateway(tmp_path: Path, roster: str, **extra: Any) -> Path:
    (tmp_path / "roster.yaml").write_text(roster)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(BASE | {"roster": "roster.yaml"} | extra))
    return path


@pytest.mark.parametrize("case", list(ROSTERS))
def test_a_broken_roster_fails_check_config_and_start_with_file_and_line(
    tmp_path: Path, case: str
) -> None:
    text, line, message = ROSTERS[case]
    path = gateway(tmp_path, text)
    result = CliRunner().invoke(app, ["check-config", str(path)])
    assert result.exit_code == 2, result.output
    assert f"roster.yaml{line}" in result.output and message in result.output
    assert "Traceback" not in result.output
    with pytest.raises(ConfigError, match=message):
        load_config(path)  # what `takt agent run` does before it starts anything


def test_a_good_roster_passes(tmp_path: Path) -> None:
    path = gateway(tmp_path, "badges:\n  B1: w1\n  4711: W-0042\n")
    result = CliRunner().invoke(app, ["check-config", str(path)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"work_interval_s": 1e-9}, "work_interval_s"),
        ({"work_interval_s": 86_400}, "work_interval_s"),
        ({"signing": True}, "SIGNING_KEY"),
        ({"signing": True, "publish": {"signing_key_id": "gw9"}}, "not bound to agent"),
    ],
)
def test_check_config_refuses_out_of_range_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], message: str
) -> None:
    monkeypatch.setenv("TAKT_AGENT_SIGNING_KEY", "a-signing-key-long-enough")
    if extra == {"signing": True}:
        monkeypatch.setenv("TAKT_AGENT_SIGNING_KEY", "")
    path = gateway(tmp_path, "badges: {B1: w1}\n", **extra)
    result = CliRunner().invoke(app, ["check-config", str(path)])
    assert result.exit_code == 2 and message in result.output, result.output


def test_signing_with_an_empty_or_short_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = gateway(tmp_path, "badges: {B1: w1}\n", signing=True)
    for key in ("", "x", "fifteen-chars-k"):
        monkeypatch.setenv("TAKT_AGENT_SIGNING_KEY", key)
        with pytest.raises(ConfigError, match="at least 16"):
            load_config(path)
    monkeypatch.setenv("TAKT_AGENT_SIGNING_KEY", "sixteen-chars-ky")
    config, _ = load_config(path)
    assert config.publish.signing_key_id == "gw1", "the key id defaults to the agent's own"


def test_collector_refuses_short_signing_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKT_COLLECTOR_VALIDATION__SIGNING_KEYS", '{"gw1": "x"}')
    with pytest.raises(CollectorConfigError, match="shorter than 16"):
        load_settings(None, environment="development", validation={"require_signature": True})


@pytest.mark.parametrize(
    ("serial", "message"),
    [
        ({"baudrate": -1}, "baudrate"),
        ({"baudrate": 0}, "baudrate"),
        ({"framing": {"start": 2, "end": 2}}, "start and end bytes are both 0x02"),
    ],
)
def test_a_serial_profile_with_impossible_framing_is_refused(
    tmp_path: Path, serial: dict[str, Any], message: str
) -> None:
    from edge_agent.profile import ProfileError, load_profiles
    from edge_agent.sources.serial.models import SerialBinding

    shipped = Path(__file__).parents[2] / "device_profiles" / "takt-sim-serialbox.yaml"
    data = yaml.safe_load(shipped.read_text())
    section = SerialBinding.model_validate(data["serial"]).model_dump()
    for key, value in serial.items():
        section[key] = section[key] | value if isinstance(value, dict) else value
    data["serial"] = section
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "takt-sim-serialbox.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError) as err:
        load_profiles(folder)
    assert message in str(err.value) and "takt-sim-serialbox.yaml" in str(err.value)
