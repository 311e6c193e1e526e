"""The simulated Modbus counters (TCP gateway and RS-485 line), read by the real agent.

The floor replays ``test_modbus.yaml``: two units on a pymodbus TCP server and
one on a pymodbus RTU server behind a socat pty pair. The agent polls them with
the shipped profile ``takt-sim-modbus`` and nothing else; its events (good and
defects by code, per worker, unattended units to nobody) must equal the
floor's ledger, which is computed from the plan, not from what the devices
showed. The floor runs at 1200x (a simulated second is under a millisecond,
far shorter than a poll): a device that did not hold its changes until the
master read them (``modbus_held``) merges units across operator changes and
codes, and this test fails (checked by disabling the hold).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import load_config
from edge_agent.runtime import Agent
from simulators import ShopFloor, load_scenario
from simulators.modbus_counter import agent_connection
from takt_cli.localservices import Mosquitto
from takt_wire import UNATTRIBUTED
from tests.agent.helpers import EventSubscriber, Ledger, assert_matches, gateway_config

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "simulators" / "scenarios" / "test_modbus.yaml"


def connection(endpoint: Any) -> dict[str, Any]:
    return agent_connection(endpoint.modbus, endpoint.unit, poll_interval_s=0.02)


def ledger_totals(ledger: dict[str, Any]) -> Ledger:
    """Good and defects by worker from the floor's ledger rows (nobody: unattributed)."""
    out = Ledger()
    for row in ledger["rows"]:
        out.good[row["worker"]] += row["good"]
        for code, n in row["defects"].items():
            out.defects[(row["worker"], code)] += n
    for row in ledger["unattributed"]:
        out.good[UNATTRIBUTED] += row["good"]
        for code, n in row["defects"].items():
            out.defects[(UNATTRIBUTED, code)] += n
    return out


@pytest.mark.integration
@pytest.mark.timeout(300)
async def test_modbus_floor_adds_up_through_the_agent(mosquitto: Mosquitto, tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIO)
    floor = ShopFloor(scenario, tmp_path / "run", start_paused=True, acceleration=1200)
    sub = EventSubscriber(mosquitto.port, client_id="sub-modbus-sim")
    try:
        async with floor:
            assert {ep.modbus.split(":")[0] for ep in floor.endpoints.values() if ep.modbus} == {
                "tcp",
                "rtu",
            }
            stations = [
                {
                    "id": sid,
                    "line": ep.line,
                    "profile": ep.model,
                    "connection": connection(ep),
                }
                for sid, ep in floor.endpoints.items()
            ]
            path = gateway_config(
                tmp_path,
                mosquitto.port,
                stations,
                agent_id="gw-modbus-sim",
                profiles_dir=str(ROOT / "device_profiles"),
                roster=str(floor.roster_path),
            )
            config, profiles = load_config(path)
            agent = Agent(config, profiles)
            stop = asyncio.Event()
            task = asyncio.create_task(agent.run(stop))
            try:
                for source in agent.sources:
                    await asyncio.wait_for(source.connected.wait(), 15)  # type: ignore[attr-defined]
                await asyncio.sleep(0.5)  # every unit polled once: the baselines
                floor.start_clock()
                async with asyncio.timeout(200):
                    await floor.wait_done()
                want = ledger_totals(floor.ledger)
                assert sum(want.defects.values()) > 10 and sum(want.good.values()) > 100
                got = await asyncio.to_thread(sub.wait_for, want, 30.0, 10**9)
                assert_matches(Ledger(good=got.good, defects=got.defects), want)
                stats = floor.stats()
                assert stats["modbus_held"] > 0 and stats["modbus_unread"] == 0, stats
                errors: dict[str, float] = defaultdict(float)
                for metric in agent.metrics.registry.collect():
                    for sample in metric.samples:
                        if sample.name == "takt_agent_station_errors_total":
                            errors[sample.labels["reason"]] += sample.value
                assert not errors, dict(errors)
                assert not task.done()
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
    finally:
        sub.close()
