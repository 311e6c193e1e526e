"""``takt sim``: validate, run, make-load."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from simulators import load_scenario
from simulators.cli import app
from simulators.ledger import build_ledger, ledger_json
from simulators.plan import plan_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "simulators" / "scenarios"
runner = CliRunner()


def test_validate_ok_and_bad(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["validate", str(SCENARIOS / "demo.yaml")])
    assert ok.exit_code == 0 and "4 stations, 5 workers" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text((SCENARIOS / "test_tiny.yaml").read_text().replace("seed: 1", "seed: one"))
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 1
    assert str(bad) in res.output and "seed" in res.output


def test_run_writes_the_ledger(tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["run", str(SCENARIOS / "test_tiny.yaml"), "--out", str(tmp_path), "--opcua-port", "0"]
    )
    assert res.exit_code == 0, res.output
    sc = load_scenario(SCENARIOS / "test_tiny.yaml")
    assert (tmp_path / "ledger.json").read_text() == ledger_json(
        build_ledger(sc, plan_scenario(sc))
    )
    stats = json.loads(res.output.splitlines()[-2])
    assert stats["sim_ms"] == 120_000
    assert stats["serial_B1"]["frames"] + stats["serial_B1"]["dropped"] >= 120


def test_run_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", str(SCENARIOS / "test_small.yaml"), "--out", str(tmp_path)])
    assert res.exit_code == 1 and "mqtt" in res.output.lower()
    res = runner.invoke(
        app,
        ["run", str(SCENARIOS / "test_tiny.yaml"), "--opcua-user", "agent", "--out", str(tmp_path)],
        env={"TAKT_SIM_OPCUA_PASSWORD": ""},
    )
    assert res.exit_code == 2 and "TAKT_SIM_OPCUA_PASSWORD" in res.output
    res = runner.invoke(
        app, ["run", str(SCENARIOS / "test_tiny.yaml"), "--opcua-security", "rot13"]
    )
    assert res.exit_code == 2


def test_run_from_another_start(tmp_path: Path) -> None:
    """Compose runs the demo line from 'now', so dashboards show today's shift."""
    res = runner.invoke(
        app,
        ["run", str(SCENARIOS / "test_tiny.yaml"), "--out", str(tmp_path), "--opcua-port", "0",
         "--start", "2026-11-23T06:00:00+01:00"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "ledger.json").read_text())["start"].startswith(
        "2026-11-23T05:00:00"
    )
    res = runner.invoke(
        app, ["run", str(SCENARIOS / "test_tiny.yaml"), "--start", "2026-11-23T06:00:00"]
    )
    assert res.exit_code == 2 and "time zone" in res.output


def test_make_load(tmp_path: Path) -> None:
    out = tmp_path / "load.yaml"
    res = runner.invoke(app, ["make-load", str(out), "--stations", "30", "--hours", "0.5"])
    assert res.exit_code == 0, res.output
    sc = load_scenario(out)
    protocols = [st.protocol for _, st in sc.stations()]
    assert len(protocols) == 30 and set(protocols) == {"mqtt", "opcua"}
    assert len(sc.workers) == 60 and len(sc.lines) == 2
