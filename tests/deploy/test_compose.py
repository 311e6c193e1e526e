"""The docker-compose stack: valid, secret-free, and every config it mounts loads for real.

There is no Docker engine here, so images are not built or run; what can be
checked without one is checked: the compose file (docker-compose config), the
configs each service reads (with the services' own loaders), the Mosquitto
config (a real mosquitto starts from it), and Grafana's queries (run against a
real influxd holding points written as the collector writes them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.config import load_settings as load_collector_settings
from edge_agent.config import load_config as load_gateway_config
from kpi_service.alerts.config import AlertSettings
from kpi_service.core.config import Settings as KpiSettings
from takt_cli.localservices import Influxd
from takt_cli.stack import REPO

SECRETS = {
    "MQTT_AGENT_PASSWORD": "agent-secret",
    "MQTT_GATEWAY_PASSWORD": "gateway-secret",
    "SIGNING_KEY_GW_COMPOSE": "gateway-signing-key-0123456789",
    "MQTT_COLLECTOR_PASSWORD": "collector-secret",
    "MQTT_KPI_PASSWORD": "kpi-secret",
    "MQTT_DEVICES_PASSWORD": "devices-secret",
    "INFLUX_ADMIN_PASSWORD": "influx-secret",
    "INFLUX_READ_PASSWORD": "influx-read-secret",
    "INFLUX_COLLECTOR_PASSWORD": "influx-collector-secret",
    "GRAFANA_ADMIN_PASSWORD": "grafana-secret",
    "KPI_SECRET_KEY": "kpi-key-secret-0123456789",
}


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: run `make setup`", pytrace=False)
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [binary, "-f", str(REPO / "docker-compose.yml"), *args],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rendered() -> dict[str, object]:
    result = compose("config", env=SECRETS)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = yaml.safe_load(result.stdout)
    return loaded


def test_compose_file_is_valid() -> None:
    result = compose("config", "-q", env=SECRETS)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_secrets() -> None:
    result = compose("config", "-q", env={})
    assert result.returncode != 0
    assert "set MQTT_AGENT_PASSWORD in .env" in result.stderr


def test_services_wait_for_healthy_dependencies() -> None:
    services = rendered()["services"]
    assert isinstance(services, dict)
    assert {"mosquitto", "influxdb", "grafana", "collector", "kpi", "agent", "simulators"} <= set(
        services
    )
    for name in ("collector", "kpi"):
        deps = services[name]["depends_on"]
        assert deps["influxdb"]["condition"] == "service_healthy", name
        assert "healthcheck" in services[name], name
    assert "1.8" in services["influxdb"]["image"]  # serves the v1 HTTP API
    assert services["influxdb"]["environment"]["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"


def test_no_secret_is_written_in_the_repository() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    for value in SECRETS.values():
        assert value not in text
    for path in (REPO / "deploy").rglob("*"):
        if path.is_file():
            content = path.read_text(errors="replace").lower()
            assert "password:" not in content or "${" in content, path


def test_collector_and_agent_configs_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAKT_COLLECTOR_MQTT__PASSWORD", "x")
    monkeypatch.setenv("TAKT_COLLECTOR_INFLUX__PASSWORD", "y")
    keys = rendered()["services"]["collector"]["environment"]  # type: ignore[index]
    monkeypatch.setenv(
        "TAKT_COLLECTOR_VALIDATION__SIGNING_KEYS", keys["TAKT_COLLECTOR_VALIDATION__SIGNING_KEYS"]
    )
    settings = load_collector_settings(REPO / "deploy/takt/collector.yaml")
    assert settings.environment == "production" and settings.mqtt.username == "takt-collector"
    assert settings.validation.require_signature
    assert list(settings.validation.signing_keys) == ["gw-compose"]

    # The gateway example as the image runs it: relative paths, secrets from the env.
    agent_env = rendered()["services"]["agent"]["environment"]  # type: ignore[index]
    for key, value in agent_env.items():
        monkeypatch.setenv(key, value)
    config, _profiles = load_gateway_config(REPO / "deploy/takt/gateway.yaml")
    assert {s.id for s in config.stations} == {"S1", "S2", "S3"}
    assert config.profiles_dir is not None
    assert config.profiles_dir.resolve() == (REPO / "device_profiles").resolve()
    # Its own MQTT user, named like its agent id, and every batch signed with its own key.
    assert config.broker.username == config.agent_id == "gw-compose"
    assert config.signing and config.publish.signing_key_id == "gw-compose"


def test_readme_gateway_example_passes_check_config_on_a_plain_checkout() -> None:
    """`takt agent check-config` on the file the README links, from the checkout itself.

    Only the variables docker-compose hands the agent (each one from .env.example) are
    set; without them the command fails and names each missing one.
    """
    readme = (REPO / "README.md").read_text()
    assert "(deploy/takt/gateway.yaml)" in readme
    agent_env = rendered()["services"]["agent"]["environment"]  # type: ignore[index]
    compose_text = (REPO / "docker-compose.yml").read_text()
    example_names = {
        line.split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    for key in agent_env:
        source = compose_text.split(f"{key}: ${{", 1)[1].split(":", 1)[0]
        assert source in example_names, f"{key} comes from {source}, not in .env.example"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TAKT_")}
    takt = [sys.executable, "-m", "takt_cli.main"]
    args = [*takt, "agent", "check-config", "deploy/takt/gateway.yaml"]
    run = subprocess.run(
        args, env={**clean, **agent_env}, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ok: agent gw-compose at site plant1, 3 stations" in run.stdout
    bare = subprocess.run(args, env=clean, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and "TAKT_AGENT_SIGNING_KEY" in bare.stderr, bare.stderr


def test_example_roster_is_the_demo_scenario_s(tmp_path: Path) -> None:
    """The shipped roster equals what the simulator writes for the demo line."""
    from simulators.ledger import write_roster
    from simulators.scenario import load_scenario

    written = write_roster(load_scenario(REPO / "simulators/scenarios/demo.yaml"), tmp_path)
    shipped = yaml.safe_load((REPO / "deploy/takt/roster.yaml").read_text())
    assert shipped == yaml.safe_load(written.read_text())


def test_kpi_environment_from_compose_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    env = rendered()["services"]["kpi"]["environment"]  # type: ignore[index]
    for key, value in env.items():
        if key.startswith(("TAKT_KPI_", "TAKT_ALERTS_")) and key not in (
            "TAKT_KPI_STATE_DIR",
            "TAKT_ALERTS_STATE_DB",
            "TAKT_ALERTS_RULES_FILE",
        ):
            monkeypatch.setenv(key, str(value))
    settings = KpiSettings()
    assert settings.environment == "production"
    assert settings.influx_username == "takt-read", "the KPI service reads with a read-only user"
    alerts = AlertSettings(**{})  # from the same environment
    assert alerts.require_signature and list(alerts.signing_keys) == ["gw-compose"]
    assert {s.station for s in settings.standards} == {"S1", "S2", "S3"}


def test_grafana_dashboard_queries_run_on_collector_points(influxd: Influxd) -> None:
    """Every panel and variable query runs on points shaped as the collector writes them,
    the filters narrow them, and the defect percentage is the one computed here."""
    influxd.query('CREATE DATABASE "grafana_check"')
    influxd.query(
        'CREATE RETENTION POLICY "raw" ON "grafana_check" DURATION 0s REPLICATION 1 DEFAULT'
    )
    t = 1_773_468_000_000_000_000
    influxd.write(
        "grafana_check",
        f"units,site=P,line=L1,station=S1,worker=W1,outcome=good,defect_code=none count=3i {t}\n"
        f"units,site=P,line=L1,station=S1,worker=W1,outcome=defect,defect_code=E07 count=1i {t}\n"
        f"units,site=P,line=L2,station=S9,worker=W2,outcome=good,defect_code=none count=9i {t}\n"
        f"units,site=P,line=L2,station=S9,worker=W2,outcome=defect,defect_code=E01 count=1i {t}\n"
        f"work,site=P,line=L1,station=S1,worker=W1 work_s=60,effective_s=50,down_s=10 {t}\n"
        f"downtime,site=P,line=L1,station=S1,worker=W1,reason=fault seconds=10 {t}\n"
        f"downtime,site=P,line=L1,station=S1,worker=W1,reason=material seconds=50 {t}\n"
        f"gaps,site=P,line=L1,station=S1,worker=W1,reason=no_history seconds=120 {t}\n",
    )
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/takt-production.json").read_text())
    assert dashboard["panels"]

    def run(query: str, **chosen: str) -> list[dict[str, Any]]:
        query = (
            query.replace("$timeFilter", f"time >= {t - 10**12} AND time <= {t + 10**12}")
            .replace("$__interval", "1m")
            .replace('"raw".', '"grafana_check"."raw".')
        )
        for name in ("site", "line", "station", "worker"):
            query = query.replace(f"${name}", chosen.get(name, ".*"))  # Grafana's "All"
        result: list[dict[str, Any]] = influxd.query(query, "grafana_check")
        return result

    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"site", "line", "station", "worker"}
    assert [r[1] for r in run(variables["line"]["query"])[0]["values"]] == ["L1", "L2"]
    only_l2 = run(variables["worker"]["query"], line="L2")[0]["values"]
    assert [r[1] for r in only_l2] == ["W2"]  # the variables narrow each other
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert run(target["query"]), f"panel {panel['title']!r} returns nothing"
            assert "$line" in target["query"], f"panel {panel['title']!r} ignores the filters"
    by_title = {p["title"]: p for p in dashboard["panels"]}

    def per(tag: str, target: dict[str, Any], **chosen: str) -> dict[str, float]:
        return {s["tags"][tag]: s["values"][0][1] for s in run(target["query"], **chosen)}

    # Defect %: Grafana divides query A by query B per row (merge + calculateField); the
    # inputs are checked against the points written above.
    panel = by_title["Defect % per worker"]
    defects, units = (per("worker", target) for target in panel["targets"])
    assert (defects, units) == ({"W1": 1, "W2": 1}, {"W1": 4, "W2": 10})
    calc = [x["options"]["binary"] for x in panel["transformations"] if x["id"] == "calculateField"]
    assert calc[0] == {"left": "defects", "operator": "/", "right": "units"}
    assert per("worker", panel["targets"][1], line="L1") == {"W1": 4}
    assert per("line", by_title["Defect % per line"]["targets"][1]) == {"L1": 4, "L2": 10}
    pareto_panel = by_title["Machine down time by reason (Pareto, min)"]["targets"][0]["query"]
    pareto = run(pareto_panel)
    assert {s["tags"]["reason"]: s["values"][0][1] for s in pareto} == {
        "fault": 10 / 60,
        "material": 50 / 60,
    }


def test_the_deployed_broker_limit_is_the_contract_s() -> None:
    """The broker refuses packets past the largest batch the contract allows (plus headers),
    in the deployed config and in the local stack alike."""
    from takt_cli.stack import MAX_PACKET_SIZE
    from takt_wire.batch import MAX_PAYLOAD_BYTES

    conf = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    (line,) = [x for x in conf if x.startswith("max_packet_size ")]
    deployed = int(line.split()[1])
    assert deployed == MAX_PACKET_SIZE
    assert MAX_PAYLOAD_BYTES < deployed <= MAX_PAYLOAD_BYTES + 64 * 1024
