"""The whole Takt stack on one machine: broker, database, agent, collector, KPI service.

Used by ``takt demo`` and by the end-to-end tests, so the path a newcomer runs is
the path the tests prove. Every service runs with authentication, as in
production: passwords are generated per run and passed to the children through
their environment, never written into a config file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml

from takt_cli.localservices import Influxd, Mosquitto, free_port, influxd, mosquitto
from takt_cli.processes import Child, ProcessGroup
from takt_common.errors import TaktError
from takt_wire.batch import MAX_PAYLOAD_BYTES

if TYPE_CHECKING:
    from simulators.floor import ShopFloor, StationEndpoint
    from simulators.scenario import Scenario

REPO = Path(__file__).resolve().parent.parent
ACL_FILE = REPO / "deploy" / "mosquitto" / "acl"
MQTT_USERS = ("takt-agent", "takt-collector", "takt-kpi", "takt-devices")
"""Service accounts; each gateway also has its own user, named like its agent id."""
MAX_PACKET_SIZE = MAX_PAYLOAD_BYTES + 64 * 1024
"""The broker's packet limit: the largest batch the contract allows plus room for the topic,
properties and signature; deploy/mosquitto/mosquitto.conf carries the same (tested)."""
INFLUX_DB = "takt"
SIGNING_KEY_LABEL = "k1"
"""Label of the agent's signing key: its id is ``<agent id>@k1`` (keys are bound to agents)."""


class StackError(TaktError, RuntimeError):
    """A component of the local stack did not come up."""


def takt_command(*args: str) -> list[str]:
    """Run the ``takt`` CLI with this interpreter (works without activating the venv)."""
    return [sys.executable, "-m", "takt_cli.main", *args]


@dataclass(frozen=True)
class StackSecrets:
    """Per-run secrets; nothing here is ever written to disk except hashed by the services."""

    mqtt: Mapping[str, str]
    agent_mqtt: str
    """The gateway's own MQTT password (its user is its agent id)."""
    influx_admin: str
    kpi_secret: str
    batch_signing_key: str

    @classmethod
    def generate(cls) -> StackSecrets:
        return cls(
            mqtt={user: secrets.token_urlsafe(16) for user in MQTT_USERS},
            agent_mqtt=secrets.token_urlsafe(16),
            influx_admin=secrets.token_urlsafe(16),
            kpi_secret=secrets.token_urlsafe(32),
            batch_signing_key=secrets.token_urlsafe(32),
        )


@dataclass
class Ports:
    agent_http: int = field(default_factory=free_port)
    collector_http: int = field(default_factory=free_port)
    kpi_http: int = field(default_factory=free_port)


def wait_http(url: str, timeout_s: float, child: Child | None = None) -> None:
    """Wait until ``url`` answers 2xx; fail early (with its log) if ``child`` died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and not child.alive:
            raise StackError(f"{child.name} exited:\n{child.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).is_success:
                return
        time.sleep(0.1)
    tail = f":\n{child.log_tail()}" if child is not None else ""
    raise StackError(f"{url} did not answer within {timeout_s:.0f}s{tail}")


@dataclass
class LocalStack:
    """Starts the services in order and knows how each one is configured."""

    workdir: Path
    group: ProcessGroup
    site: str = "plant1"
    agent_id: str = "gw-demo"
    secrets: StackSecrets = field(default_factory=StackSecrets.generate)
    ports: Ports = field(default_factory=Ports)
    broker: Mosquitto | None = None
    database: Influxd | None = None
    gateways: tuple[str, ...] = ()
    """Gateways besides ``agent_id`` (the site bench runs several): each its own MQTT user
    and signing key id, as a real site has."""
    collectors: int = 1
    """Collectors sharing one subscription group (they then do not report sequence gaps:
    each sees only part of every stream)."""
    agent_ports: dict[str, int] = field(default_factory=dict)
    collector_ports: dict[int, int] = field(default_factory=dict)

    @property
    def agent_ids(self) -> tuple[str, ...]:
        return (self.agent_id, *self.gateways)

    # -- infrastructure ---------------------------------------------------------
    def start_services(self) -> tuple[Mosquitto, Influxd]:
        broker = mosquitto(
            self.workdir / "mosquitto",
            users={**self.secrets.mqtt, **dict.fromkeys(self.agent_ids, self.secrets.agent_mqtt)},
            extra_config=f"acl_file {ACL_FILE}\n",
            max_packet_size=MAX_PACKET_SIZE,
        )
        database = influxd(self.workdir / "influxd", admin=("admin", self.secrets.influx_admin))
        self.group.add_service(broker)
        self.group.add_service(database)
        self.broker, self.database = broker, database
        return broker, database

    def _broker(self) -> Mosquitto:
        if self.broker is None:
            raise StackError("start_services() first")
        return self.broker

    def _database(self) -> Influxd:
        if self.database is None:
            raise StackError("start_services() first")
        return self.database

    # -- edge agent -------------------------------------------------------------
    @property
    def signing_key_id(self) -> str:
        """The agent's key id, bound to it: the collector refuses it on another agent's batch."""
        return self.key_id(self.agent_id)

    @staticmethod
    def key_id(agent_id: str) -> str:
        return f"{agent_id}@{SIGNING_KEY_LABEL}"

    @property
    def signing_keys_json(self) -> str:
        """The consumers' key table (collector and alert engine get the same one)."""
        return json.dumps(
            dict.fromkeys(map(self.key_id, self.agent_ids), self.secrets.batch_signing_key)
        )

    def agent_http_port(self, agent_id: str | None = None) -> int:
        if agent_id is None or agent_id == self.agent_id:
            return self.ports.agent_http
        return self.agent_ports.setdefault(agent_id, free_port())

    def agent_config(
        self, stations: Iterable[Mapping[str, Any]], roster: Path, agent_id: str | None = None
    ) -> Path:
        agent_id = agent_id or self.agent_id
        folder = "agent" if agent_id == self.agent_id else f"agent-{agent_id}"
        path = self.workdir / folder / "gateway.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "agent_id": agent_id,
            "site": self.site,
            "broker": {
                "host": "127.0.0.1",
                "port": self._broker().port,
                "username": agent_id,  # its own user: the ACL lets it write only its topics
                "reconnect_max_s": 2.0,
            },
            "outbox": {"path": str(path.parent / "outbox.db")},
            "publish": {"historical_after_s": 5.0, "signing_key_id": self.key_id(agent_id)},
            "http": {"port": self.agent_http_port(agent_id)},
            "roster": str(roster),
            "signing": True,
            "work_interval_s": 60,
            "stations": list(stations),
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def shop_floor(self, scenario: Scenario, acceleration: float | None = None) -> ShopFloor:
        """The scenario's devices on this stack's broker, clock paused until the agent listens."""
        from simulators import ShopFloor

        return ShopFloor(
            scenario,
            self.workdir / "floor",
            mqtt_host="127.0.0.1",
            mqtt_port=self._broker().port,
            mqtt_username="takt-devices",
            mqtt_password=self.secrets.mqtt["takt-devices"],
            opcua_port=0,
            start_paused=True,
            acceleration=acceleration,
        )

    def start_agent_for(self, floor: ShopFloor) -> Child:
        """An edge agent reading every device of a running floor, with its roster."""
        stations = agent_stations(floor.endpoints, self._broker().port)
        return self.start_agent(stations, floor.workdir / "roster.yaml")

    def start_agent(
        self, stations: Iterable[Mapping[str, Any]], roster: Path, agent_id: str | None = None
    ) -> Child:
        agent_id = agent_id or self.agent_id
        config = self.agent_config(stations, roster, agent_id)
        env = {
            "TAKT_AGENT_BROKER__PASSWORD": self.secrets.agent_mqtt,
            DEVICE_PASSWORD_ENV: self.secrets.mqtt["takt-agent"],
            "TAKT_AGENT_SIGNING_KEY": self.secrets.batch_signing_key,
        }
        name = "agent" if agent_id == self.agent_id else f"agent-{agent_id}"
        child = self.group.spawn(name, takt_command("agent", "run", "--config", str(config)), env)
        wait_http(f"http://127.0.0.1:{self.agent_http_port(agent_id)}/healthz", 30, child)
        return child

    # -- collector --------------------------------------------------------------
    def collector_http_port(self, index: int = 0) -> int:
        if index == 0:
            return self.ports.collector_http
        return self.collector_ports.setdefault(index, free_port())

    def collector_config(self, index: int = 0) -> Path:
        """Collector ``index`` (0: the only one, usually); all share one subscription group."""
        suffix = f"-{index}" if index else ""
        path = self.workdir / f"collector{suffix}" / "collector.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "mqtt": {
                "host": "127.0.0.1",
                "port": self._broker().port,
                "username": "takt-collector",
                "client_id": f"takt-collector-demo{suffix}",
            },
            "influx": {
                "url": self._database().url,
                "database": INFLUX_DB,
                "username": "admin",
            },
            "http": {"port": self.collector_http_port(index)},
            "validation": {"require_signature": True, "report_gaps": self.collectors == 1},
            "dlq_path": str(path.parent / "dead-letters.sqlite"),
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start_collector(self, index: int = 0) -> Child:
        config = self.collector_config(index)
        env = {
            "TAKT_COLLECTOR_MQTT__PASSWORD": self.secrets.mqtt["takt-collector"],
            "TAKT_COLLECTOR_INFLUX__PASSWORD": self.secrets.influx_admin,
            "TAKT_COLLECTOR_VALIDATION__SIGNING_KEYS": self.signing_keys_json,
        }
        name = f"collector-{index}" if index else "collector"
        child = self.group.spawn(
            name, takt_command("collector", "run", "--config", str(config)), env
        )
        wait_http(f"http://127.0.0.1:{self.collector_http_port(index)}/healthz", 30, child)
        return child

    # -- checks after a run -----------------------------------------------------
    async def drained(self, timeout_s: float) -> bool:
        """Until every agent's outbox is empty and every collector's rollups are done."""
        urls = [f"http://127.0.0.1:{self.agent_http_port(a)}/healthz" for a in self.agent_ids]
        collectors = [
            f"http://127.0.0.1:{self.collector_http_port(i)}/healthz"
            for i in range(self.collectors)
        ]
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() < deadline:
                try:
                    agents = [(await client.get(url)).json() for url in urls]
                    health = [(await client.get(url)).json() for url in collectors]
                except (httpx.HTTPError, ValueError):
                    await asyncio.sleep(1)
                    continue
                rollups = [h.get("detail", h).get("rollup_pending_hours") for h in health]
                if all(a.get("outbox_pending") == 0 for a in agents) and all(
                    r == 0 for r in rollups
                ):
                    return True
                await asyncio.sleep(1)
        return False

    def sums(self, source: str, fld: str, by: str) -> dict[tuple[str, ...], float]:
        """``sum(fld)`` of ``source`` grouped by the tags ``by`` (comma-separated)."""
        tags = [t.strip() for t in by.split(",")]
        out: dict[tuple[str, ...], float] = {}
        query = f'SELECT sum("{fld}") FROM {source} GROUP BY {by}'
        for series in self._database().query(query, INFLUX_DB):
            tagged: Any = series["tags"]
            values: Any = series["values"]
            out[tuple(str(tagged[t]) for t in tags)] = float(values[0][1])
        return out

    # -- KPI service ------------------------------------------------------------
    def kpi_env(
        self,
        rules_file: Path | None = None,
        timezone: str = "UTC",
        scenario: Scenario | None = None,
    ) -> dict[str, str]:
        """The KPI service's environment; with a scenario, its stations' standard cycles."""
        state = self.workdir / "kpi"
        env = {
            "TAKT_KPI_ENVIRONMENT": "production",
            "TAKT_KPI_SECRET_KEY": self.secrets.kpi_secret,
            "TAKT_KPI_INFLUX__URL": self._database().url,
            "TAKT_KPI_INFLUX__DATABASE": INFLUX_DB,
            "TAKT_KPI_INFLUX__USERNAME": "admin",
            "TAKT_KPI_INFLUX__PASSWORD": self.secrets.influx_admin,
            "TAKT_KPI_STATE_DIR": str(state),
            "TAKT_KPI_TIMEZONE": timezone,
        }
        if scenario is not None:
            env["TAKT_KPI_STANDARDS"] = json.dumps(scenario_standards(scenario))
        if rules_file is not None:
            env.update(
                {
                    "TAKT_ALERTS_ENABLED": "true",
                    "TAKT_ALERTS_RULES_FILE": str(rules_file),
                    "TAKT_ALERTS_STATE_DB": str(state / "alerts.sqlite"),
                    "TAKT_ALERTS_MQTT_HOST": "127.0.0.1",
                    "TAKT_ALERTS_MQTT_PORT": str(self._broker().port),
                    "TAKT_ALERTS_MQTT_USERNAME": "takt-kpi",
                    "TAKT_ALERTS_MQTT_PASSWORD": self.secrets.mqtt["takt-kpi"],
                    "TAKT_ALERTS_MQTT_CLIENT_ID": "takt-alerts-demo",
                    # The engine admits exactly what the collector admits.
                    "TAKT_ALERTS_REQUIRE_SIGNATURE": "true",
                    "TAKT_ALERTS_SIGNING_KEYS": self.signing_keys_json,
                }
            )
        return env

    def create_api_key(self, env: Mapping[str, str], name: str, scopes: str) -> str:
        result = subprocess.run(
            takt_command("kpi", "apikey", "create", "--name", name, "--scopes", scopes),
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"could not create an API key: {result.stderr or result.stdout}")
        return result.stdout.strip().splitlines()[-1]

    def start_kpi(self, env: Mapping[str, str]) -> Child:
        argv = takt_command("kpi", "run", "--port", str(self.ports.kpi_http))
        child = self.group.spawn("kpi", argv, env)
        wait_http(f"{self.kpi_url}/healthz", 60, child)
        return child

    @property
    def kpi_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.kpi_http}"


DEVICE_PASSWORD_ENV = "TAKT_AGENT_DEVICE_BROKER_PASSWORD"
"""Password the agent uses for device topics on the broker (here: its own account)."""


def agent_stations(
    endpoints: Mapping[str, StationEndpoint], broker_port: int
) -> list[dict[str, Any]]:
    """Gateway-config stations for a simulated floor: one per device, by protocol."""
    stations = []
    for station_id, ep in sorted(endpoints.items()):
        connection: dict[str, Any]
        if ep.protocol == "opcua":
            connection = {"type": "opcua", "endpoint": ep.url}
        elif ep.protocol == "mqtt":
            connection = {
                "type": "mqtt",
                "host": "127.0.0.1",
                "port": broker_port,
                "username": "takt-agent",
                "password_env": DEVICE_PASSWORD_ENV,
            }
        elif ep.protocol == "modbus":
            from simulators.modbus_counter import agent_connection

            assert ep.modbus is not None and ep.unit is not None
            connection = agent_connection(ep.modbus, ep.unit)
        else:
            connection = {"type": "serial", "port": ep.serial_path}
        stations.append(
            {"id": station_id, "line": ep.line, "profile": ep.model, "connection": connection}
        )
    return stations


def scenario_standards(scenario: Scenario) -> list[dict[str, Any]]:
    """Standard cycle times of a scenario's stations, as the KPI service's `standards`."""
    return [
        {"station": st.id, "line": line.id, "cycle_s": st.standard_cycle_s}
        for line in scenario.lines
        for st in line.stations
        if st.standard_cycle_s
    ]
