"""``takt agent check-config`` reports every error of a gateway file at once (issue 12, item 6).

The broken files are written by hand, as a person would get them wrong; the
expected line of each error is found in the text, not taken from the loader.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.config import ConfigError, load_config
from edge_agent.profile import ProfileError, load_profile

SHIPPED = Path(__file__).resolve().parents[2] / "device_profiles"

BROKEN_GATEWAY = """\
agent_id: gw1
site: plant1
brokr:
  host: 127.0.0.1
broker:
  host: 127.0.0.1
  allow_anonymous: true
  port: 70000
outbox:
  path: outbox.db
stations:
  - id: S1
    line: L1
    profile: takt-sim-countr
    connection: {type: mqtt, host: 127.0.0.1}
  - id: S2
    line: L1
    profile: takt-sim-counter
    conection: {type: mqtt, host: 127.0.0.1}
"""


def line_of(text: str, needle: str) -> int:
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert hits, needle
    return hits[0]


def test_every_error_of_a_gateway_file_at_once_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(BROKEN_GATEWAY)
    result = CliRunner().invoke(app, ["check-config", str(path)])
    assert result.exit_code == 2, result.output
    out = result.output
    assert "Traceback" not in out
    expected = {
        "brokr": ("brokr:", "did you mean 'broker'"),
        "broker.port": ("port: 70000", "65535"),
        "stations.0.profile": ("takt-sim-countr", "did you mean 'takt-sim-counter'"),
        "stations.1.conection": ("conection:", "did you mean 'connection'"),
        "stations.1.connection": ("- id: S2", "Field required"),
    }
    for field, (needle, advice) in expected.items():
        line = line_of(BROKEN_GATEWAY, needle)
        hits = [row for row in out.splitlines() if f"{path}:{line}: {field}: " in row]
        assert len(hits) == 1, (field, out)
        assert advice in hits[0], hits[0]
    assert out.count("config error:") == len(expected), out


def test_load_config_raises_the_same_problems(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(BROKEN_GATEWAY)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    fields = {p.field for p in caught.value.problems}
    assert {"brokr", "broker.port", "stations.0.profile"} <= fields
    assert caught.value.file == str(path) and caught.value.line is not None


def profile_text(state_map: str) -> str:
    text = (SHIPPED / "takt-sim-counter.yaml").read_text()
    old = next(line for line in text.splitlines() if line.strip().startswith("map:"))
    return text.replace(old, f"    map: {state_map}")


@pytest.mark.parametrize(
    ("state_map", "advice"),
    [
        ("{0: idle, 1: runing}", "did you mean 'running'"),
        ("{0: idel, 1: running}", "did you mean 'idle'"),
        ("{0: idle, 1: running, 2: down-fault}", "down:<reason>"),
    ],
)
def test_unknown_state_names_get_advice_and_a_line(
    tmp_path: Path, state_map: str, advice: str
) -> None:
    text = profile_text(state_map)
    path = tmp_path / "takt-sim-counter.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    (problem,) = caught.value.problems
    assert problem.field.startswith("signals.state.map.")
    assert problem.line == line_of(text, "map:") and advice in problem.message, problem
    result = CliRunner().invoke(app, ["check-profile", str(path)])
    assert result.exit_code == 2 and f"{path}:{problem.line}:" in result.output


def test_a_broken_profile_and_a_broken_gateway_are_reported_together(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    bad_profile = profile_text("{0: idle, 1: runing}")
    (profiles / "takt-sim-counter.yaml").write_text(bad_profile)
    gateway = BROKEN_GATEWAY.replace("agent_id: gw1\n", "agent_id: gw1\nprofiles_dir: profiles\n")
    path = tmp_path / "gateway.yaml"
    path.write_text(gateway)
    result = CliRunner().invoke(app, ["check-config", str(path)])
    assert result.exit_code == 2
    assert "takt-sim-counter.yaml" in result.output and "did you mean 'running'" in result.output
    assert "did you mean 'broker'" in result.output


def test_a_password_anywhere_in_a_gateway_file_is_refused_and_never_echoed(
    tmp_path: Path,
) -> None:
    text = BROKEN_GATEWAY.replace(
        "    connection: {type: mqtt, host: 127.0.0.1}\n",
        "    connection: {type: mqtt, host: 127.0.0.1, password: hunter2-device}\n",
    ).replace("  port: 70000\n", "  port: 1883\n  password: hunter2-broker\n")
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = {p.field: p for p in caught.value.problems}
    broker = problems["broker.password"]
    assert broker.line == line_of(text, "hunter2-broker")
    assert "TAKT_AGENT_BROKER__PASSWORD" in broker.message
    device = problems["stations.0.connection.password"]
    assert device.line == line_of(text, "hunter2-device") and "environment" in device.message
    assert "hunter2" not in str(caught.value)
