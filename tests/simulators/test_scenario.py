"""Scenario files: the shipped ones are valid; bad ones fail naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simulators.scenario import ScenarioError, load_scenario, parse_duration

SCENARIOS = Path(__file__).resolve().parents[2] / "simulators" / "scenarios"


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_are_valid(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.stations()


def test_demo_has_what_the_demo_needs() -> None:
    sc = load_scenario(SCENARIOS / "demo.yaml")
    assert sorted(st.protocol for _, st in sc.stations()) == ["modbus", "mqtt", "opcua", "serial"]
    assert len(sc.workers) == 5
    assert any(w.defect_spikes for w in sc.workers)
    assert any(d.reason == "fault" for _, st in sc.stations() for d in st.downtime)
    per_station: dict[str, set[str]] = {}
    for w in sc.workers:
        for a in w.assignments:
            per_station.setdefault(a.station, set()).add(w.id)
    assert any(len(ids) > 1 for ids in per_station.values()), "an operator change mid-shift"
    assert 60 <= sc.duration / sc.time_acceleration <= 120


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("01:30:00", 5400.0),
        ("1:30", 5400.0),
        ("2.5", 2.5),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "-5", "1h-3m", True, None, "1:2:3:4", float("nan")])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load((SCENARIOS / "test_small.yaml").read_text())
    mutate(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _set(path: list[object], value: object):
    def mutate(raw):
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            _set(["lines", 0, "stations", 0, "protocol"], "profinet"),
            "lines.0[L1].stations.0[S1].protocol",
        ),
        (_set(["lines", 0, "stations", 0, "standard_cycle_s"], 0), "standard_cycle_s"),
        (_set(["lines", 0, "stations", 0, "colour"], "red"), "lines.0[L1].stations.0[S1].colour"),
        (_set(["workers", 1, "assignments", 0, "station"], "S9"), "station 'S9' does not exist"),
        (_set(["workers", 1, "assignments", 0, "start"], "9m"), "logged in at the same time"),
        (_set(["workers", 0, "defect_codes"], {"E99": 1}), "not listed at S1"),
        (_set(["workers", 0, "shift"], "night"), "shift 'night'"),
        (_set(["workers", 1, "badge"], "A1"), "badge must be unique"),
        (_set(["start"], "2026-03-14T06:00:00"), "time zone"),
        (_set(["duration"], "forever"), "duration"),
        (_set(["lines", 0, "stations", 0, "downtime", 0, "end"], "4m"), "must be after start"),
        (_set(["lines", 0, "stations", 0, "duplicate_p"], 0.1), "only MQTT"),
        (_set(["lines", 1, "stations", 0, "unattended", 0, "start"], "17m"), "overlaps W4"),
    ],
)
def test_errors_name_file_and_field(tmp_path: Path, mutate, expected: str) -> None:
    path = _write(tmp_path, mutate)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ScenarioError, match="mapping"):
        load_scenario(bad)
