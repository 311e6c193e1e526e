"""The agent reads the simulated PLC over Basic256Sha256 SignAndEncrypt with a user login."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.config import load_config
from edge_agent.runtime import Agent
from simulators import ShopFloor, load_scenario
from takt_cli.localservices import Mosquitto
from takt_cli.stack import REPO, agent_stations
from tests.agent.helpers import EventSubscriber

SCENARIO = REPO / "simulators" / "scenarios" / "test_tiny.yaml"
PASSWORD_ENV = "TAKT_TEST_PLC_PASSWORD"


@pytest.mark.timeout(180)
async def test_secured_opcua_events_equal_the_ledger(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "plc-secret")
    scenario = load_scenario(SCENARIO)
    floor = ShopFloor(
        scenario,
        tmp_path / "floor",
        opcua_port=0,
        opcua_security="Basic256Sha256",
        opcua_user=("takt", "plc-secret"),
        start_paused=True,
    )
    async with floor:
        pki = tmp_path / "floor" / "pki"
        stations = [s for s in agent_stations(floor.endpoints, mosquitto.port) if s["id"] == "P1"]
        stations[0]["connection"] |= {
            "security": {
                "policy": "Basic256Sha256",
                "mode": "SignAndEncrypt",
                "certificate": str(pki / "client-cert.der"),
                "private_key": str(pki / "client-key.pem"),
                "server_certificate": str(pki / "server-cert.der"),
            },
            "username": "takt",
            "password_env": PASSWORD_ENV,
        }
        config_path = tmp_path / "gateway.yaml"
        config_path.write_text(
            yaml.safe_dump(
                {
                    "agent_id": "gw-secure",
                    "site": scenario.site,
                    "broker": {
                        "host": "127.0.0.1",
                        "port": mosquitto.port,
                        "allow_anonymous": True,
                    },
                    "outbox": {"path": str(tmp_path / "outbox.db"), "synchronous": "NORMAL"},
                    "http": {"port": 0},
                    "roster": str(tmp_path / "floor" / "roster.yaml"),
                    "stations": stations,
                }
            )
        )
        config, profiles = load_config(config_path)
        sub = EventSubscriber(mosquitto.port, site=config.site, client_id="sub-secure")
        agent = Agent(config, profiles)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            source: Any = agent.sources[0]
            await asyncio.wait_for(source.connected.wait(), 30)
            floor.start_clock()
            await asyncio.wait_for(floor.wait_done(), 60)
            want: dict[tuple[str, str], int] = {}
            for row in floor.ledger["rows"]:  # one row per worker, station and time bucket
                if row["station"] == "P1":
                    key = (row["worker"], "good")
                    want[key] = want.get(key, 0) + row["good"]
                    for code, n in row["defects"].items():
                        want[(row["worker"], code)] = want.get((row["worker"], code), 0) + n
            want = {k: n for k, n in want.items() if n}
            assert sum(want.values()) > 10
            assert any(code != "good" for _w, code in want), "the scenario has defects"

            def seen() -> dict[tuple[str, str], int]:
                totals = sub.totals()
                got = {(w, "good"): n for w, n in totals.good.items() if n}
                return got | {key: n for key, n in totals.defects.items() if n}

            for _ in range(150):  # up to 30 s for the last batches
                if seen() == want:
                    break
                await asyncio.sleep(0.2)
            assert seen() == want
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            sub.close()
